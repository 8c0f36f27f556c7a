"""Where and how a run computes: seeds, the distribution strategy, mixed precision and XLA.

:func:`for_run` turns a run's parameters into a :class:`Runtime`, which builds and
compiles models in its strategy's scope, under its training dtype policy.

One code path serves the three profiles: a CPU run is made deterministic by
:func:`set_seed` and trains in bfloat16 where the CPU has it
(:mod:`common.training.precision`); a GPU run may switch on float16 mixed
precision and XLA through :func:`gpu_speedups` and spread over devices with
:func:`distribution_strategy`. Whatever the training policy, a trained model is
evaluated and explained in float32 (:func:`common.training.fit.fit` ends with
:func:`common.training.precision.to_float32`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from common.config.params import RunParams
from common.errors import ParameterError
from common.training import fit, precision


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic.

    With op determinism on, a CPU rerun with the same seed gives identical
    weights and metrics (at some speed cost; some GPU ops then raise instead
    of running non-deterministically).

    Args:
        seed: The run's seed.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global generator is the one legacy code and libraries draw from
    keras.utils.set_random_seed(seed)  # also seeds TensorFlow's global generator
    tf.config.experimental.enable_op_determinism()


def distribution_strategy(name: str = "auto", devices: Sequence[str] | None = None):
    """Return a ``tf.distribute`` strategy; build and compile models in its scope.

    Args:
        name: ``"auto"`` (mirrored over the local GPUs when there are at least
            two, the default strategy otherwise), ``"default"`` (one device),
            ``"mirrored"`` (all local GPUs, or ``devices``) or
            ``"multi-worker"`` (the cluster described by the TF_CONFIG
            environment variable).
        devices: Devices for ``"mirrored"``, e.g. ``["/gpu:0", "/gpu:1"]``.

    Returns:
        The strategy; use ``with strategy.scope():`` around model building
        and compiling. Batch sizes are global (split over the replicas).

    Raises:
        ParameterError: Unknown name, or multi-worker without TF_CONFIG.
    """
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) >= 2 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ParameterError(
                "distribution 'multi-worker' needs the TF_CONFIG environment variable "
                "describing the cluster and this worker's task."
            )
        try:
            json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
        except json.JSONDecodeError as error:
            raise ParameterError(
                f"TF_CONFIG is not valid JSON ({error}); see the GPU page's multi-worker example."
            ) from None
        from common.training import multi_worker

        multi_worker.enable()  # Keras 3's fit needs two repairs under this strategy (see the module)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ParameterError(f"Unknown distribution strategy {name!r}; use auto, default, mirrored or multi-worker.")


def gpu_speedups(enabled: bool | str = "auto") -> dict:
    """Switch mixed precision (float16 compute) and XLA on or off together.

    Sets the global Keras dtype policy, which applies to layers created
    afterwards (every model here keeps its softmax in float32, and Keras wraps
    Adam in a loss-scale optimizer under mixed precision). A :class:`Runtime`
    applies the returned ``dtype_policy`` only while models are built in its
    :meth:`Runtime.scope`, and passes ``jit_compile`` to the compile step.

    Args:
        enabled: True, False or ``"auto"`` (on iff a GPU is visible).

    Returns:
        The settings used: ``{"enabled", "mixed_precision", "jit_compile",
        "dtype_policy", "gpus"}``, for the run's record.
    """
    if enabled not in (True, False, "auto"):
        raise ParameterError(f"gpu_speedups(enabled={enabled!r}): use True, False or 'auto'.")
    n_gpus = len(tf.config.list_physical_devices("GPU"))
    on = n_gpus > 0 if enabled == "auto" else bool(enabled)
    policy = "mixed_float16" if on else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return {
        "enabled": on,
        "mixed_precision": on,
        "jit_compile": on,
        "dtype_policy": policy,
        "gpus": n_gpus,
    }


GPU_SPEEDUP_SWITCH = {"auto": "auto", "on": True, "off": False}


@dataclass
class Runtime:
    """Where and how a run computes: its ``tf.distribute`` strategy, GPU speed-ups and training precision.

    Attributes:
        strategy: The ``tf.distribute`` strategy models are built and compiled in.
        speedups: What :func:`gpu_speedups` switched (``dtype_policy``, ``jit_compile``, ...).
        precision: What the run's ``precision`` parameter resolved to here, ``"float32"`` or ``"bfloat16"``.
    """

    strategy: Any
    speedups: dict
    precision: str = "float32"

    @property
    def training_policy(self) -> str:
        """The Keras dtype policy models are built under: bfloat16's, else the speed-ups' (float16 on a GPU)."""
        if self.precision == "bfloat16":
            return precision.TRAINING_POLICY["bfloat16"]
        return str(self.speedups.get("dtype_policy", "float32"))

    @property
    def record(self) -> dict:
        """JSON-ready description for ``metrics.json``."""
        return {
            **self.speedups,
            "dtype_policy": self.training_policy,
            "precision": self.precision,
            "evaluated_in": "float32",
            "cpu_bf16": precision.native_bf16(),
            "strategy": type(self.strategy).__name__,
            "replicas": int(self.strategy.num_replicas_in_sync),
        }

    @classmethod
    def local(cls) -> Runtime:
        """The current device set-up as it is: TensorFlow's current strategy, no speed-ups.

        What a caller without a chosen runtime gets, so building and compiling
        take one path; unlike :func:`for_run` it leaves the dtype policy alone.
        """
        return cls(tf.distribute.get_strategy(), {"enabled": False, "jit_compile": False, "dtype_policy": "float32"})

    def with_precision(self, name: str) -> Runtime:
        """This runtime, training in ``name`` (``auto``, ``float32`` or ``bfloat16``) instead: a per-model setting."""
        return dataclasses.replace(self, precision=precision.resolve(name, int(self.speedups.get("gpus", 0))))

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build the models a run trains here: the strategy's scope (variables mirrored) and the training policy.

        The dtype policy is set for the block and restored after it, so a model
        built outside (a released model rebuilt for its heat maps, say) computes
        in float32.
        """
        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.training_policy)
        try:
            with self.strategy.scope():
                yield
        finally:
            keras.config.set_dtype_policy(before)

    def compile(self, model, learning_rate, epsilon: float = 1e-7):
        """Compile ``model`` with Adam in the strategy's scope, with XLA when the speed-ups are on."""
        with self.scope():
            return fit.compile_model(
                model, learning_rate, epsilon=epsilon, jit_compile=bool(self.speedups["jit_compile"])
            )


def for_run(params: RunParams) -> Runtime:
    """Choose the strategy (``params.strategy``), GPU speed-ups (``params.gpu_speedups``) and precision.

    ``auto`` mirrors over all local GPUs when there are two or more and turns
    float16 mixed precision and XLA on when a GPU is present; on a CPU both stay
    off. ``params.precision`` decides the policy models are trained under
    (:func:`common.training.precision.resolve`: ``auto`` is bfloat16 on a CPU
    with native support and no GPU); an explicit bfloat16 takes precedence over
    the speed-ups' float16. The global policy is left at float32: the training
    policy applies inside :meth:`Runtime.scope` only.
    """
    switch = params.gpu_speedups
    if switch not in GPU_SPEEDUP_SWITCH:
        raise ParameterError(f"Parameter 'gpu_speedups' must be auto, on or off, got {switch!r}.")
    speedups = gpu_speedups(GPU_SPEEDUP_SWITCH[switch])
    keras.config.set_dtype_policy("float32")
    trains_in = precision.resolve(params.precision, speedups["gpus"])
    return Runtime(distribution_strategy(params.strategy), speedups, trains_in)
