"""Where and how a run computes: seeds, the distribution strategy, mixed precision and XLA.

One code path serves the three profiles: a CPU run is made deterministic by
:func:`set_seed`; a GPU run may switch on mixed precision and XLA through
:func:`gpu_speedups` and spread over devices with :func:`distribution_strategy`.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from common.errors import ParameterError


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic.

    With op determinism on, a CPU rerun with the same seed gives identical
    weights and metrics (at some speed cost; some GPU ops then raise instead
    of running non-deterministically).

    Args:
        seed: The run's seed.
    """
    random.seed(seed)
    np.random.seed(seed)
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
        json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ParameterError(
        f"Unknown distribution strategy {name!r}; use auto, default, mirrored or multi-worker."
    )


def gpu_speedups(enabled: bool | str = "auto") -> dict:
    """Switch mixed precision (float16 compute) and XLA on or off together.

    Call before building models: the Keras dtype policy applies to layers
    created afterwards (every model here keeps its softmax in float32, and
    Keras wraps Adam in a loss-scale optimizer under mixed precision). Pass
    the returned ``jit_compile`` to :func:`compile_model`.

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
