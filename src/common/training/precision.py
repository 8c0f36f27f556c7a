"""Training precision: bfloat16 where the CPU computes it natively, float32 for evaluation and explanation.

A run's ``precision`` parameter is ``auto``, ``float32`` or ``bfloat16``.
``auto`` becomes ``bfloat16`` on a machine without a GPU whose CPU reports the
AVX512-BF16 or AMX-BF16 instruction flags, and ``float32`` elsewhere
(:func:`resolve`; on a GPU the ``gpu_speedups`` switch decides on float16).
The run's runtime resolves it, and ``metrics.json`` records the result under
``runtime`` (``precision`` and ``dtype_policy``).

Under ``bfloat16`` the models a run trains are built with Keras'
``mixed_bfloat16`` policy (:meth:`common.training.runtime.Runtime.scope`):
weights, optimizer state and the softmax stay float32, layers compute in
bfloat16. When training ends, :func:`to_float32` switches every layer of the
model to float32 in place (the weights are float32 already), so the test split
is predicted, the heat maps are computed and the saved model runs in float32:
only training is approximate, and what is reported is the trained network at
full precision.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from common.errors import ParameterError

PRECISIONS = ("auto", "float32", "bfloat16")
# Instruction-set flags (Linux /proc/cpuinfo names) of CPUs that multiply bfloat16 natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# The Keras dtype policy a model is trained under, per resolved precision.
TRAINING_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@cache
def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags the first CPU reports; empty where ``/proc/cpuinfo`` does not exist.

    Args:
        cpuinfo: The file to read (Linux's; a test passes its own).

    Returns:
        The flags, e.g. ``{"avx512f", "avx512_bf16", ...}``.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU multiplies bfloat16 natively (it reports one of :data:`BF16_FLAGS`)."""
    return bool(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))


def resolve(requested: str, gpus: int = 0, flags: frozenset[str] | None = None) -> str:
    """The precision a run trains in: ``auto`` made concrete for this machine.

    Args:
        requested: ``auto``, ``float32`` or ``bfloat16``. An explicit ``bfloat16``
            is kept anywhere (on a CPU without native support TensorFlow emulates it, slowly).
        gpus: GPUs TensorFlow sees; with one or more, ``auto`` is ``float32`` and the
            GPU speed-ups decide on float16 (:func:`common.training.runtime.gpu_speedups`).
        flags: The CPU's flags; None reads this machine's.

    Returns:
        ``"float32"`` or ``"bfloat16"``.

    Raises:
        ParameterError: ``requested`` is none of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ParameterError(f"precision={requested!r}: use one of {', '.join(PRECISIONS)}.")
    if requested == "auto":
        return "bfloat16" if gpus == 0 and native_bf16(flags) else "float32"
    return requested


def to_float32(model: Any) -> Any:
    """Make every layer of a trained model compute in float32, in place, and return it.

    Under a mixed policy the variables are float32 already, so nothing is
    converted but the layers' compute dtype; the traced train, test and predict
    functions are dropped so the next call traces them in float32. A model that
    computes in float32 already is returned untouched.

    Args:
        model: A Keras model (a functional model, or any model whose layers are
            in ``model.layers``, nested models included).

    Returns:
        The same model.
    """
    changed = False
    for layer in _layers(model):
        if layer.dtype_policy.compute_dtype != "float32":
            layer.dtype_policy = "float32"
            changed = True
    if changed:
        model.train_function = model.test_function = model.predict_function = None
    return model


def _layers(model: Any) -> list[Any]:
    """Every layer of ``model``, the layers of nested models included (not the model itself)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_layers(layer))
    return found
