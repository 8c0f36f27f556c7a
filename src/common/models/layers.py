"""Layer stacks as data, the softmax output every model ends with, and weight counts.

A layer spec is a list of dicts such as
``{"layer": "dense", "units": 256, "activation": "relu"}`` where ``layer`` is a
key of :data:`LAYER_TYPES` and the other keys are that Keras layer's
arguments. Layers built from a spec are named ``<prefix><layer>_<n>`` (e.g.
``head_dense_1``), counted per layer kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from common.errors import ParameterError

# Keras layer classes a spec may name.
LAYER_TYPES: dict[str, type[keras.layers.Layer]] = {
    "conv2d": keras.layers.Conv2D,
    "conv3d": keras.layers.Conv3D,
    "maxpool2d": keras.layers.MaxPooling2D,
    "maxpool3d": keras.layers.MaxPooling3D,
    "upsampling2d": keras.layers.UpSampling2D,
    "gap2d": keras.layers.GlobalAveragePooling2D,
    "batchnorm": keras.layers.BatchNormalization,
    "dropout": keras.layers.Dropout,
    "flatten": keras.layers.Flatten,
    "dense": keras.layers.Dense,
}

OUTPUT_LAYER_NAME = "predictions"
HEAD_PREFIX = "head_"


def apply_layer_spec(x, layers: Sequence[dict], prefix: str = ""):
    """Apply a stack of layers described as data to the tensor ``x``.

    Args:
        x: Symbolic Keras tensor.
        layers: Dicts with key ``layer`` (a :data:`LAYER_TYPES` key) plus that
            layer's keyword arguments.
        prefix: Prefix of the layer names (``"head_"`` for heads).

    Returns:
        The output tensor of the last layer.

    Raises:
        ParameterError: A dict names no known layer kind or has bad arguments.
    """
    counts: dict[str, int] = {}
    for entry in layers:
        arguments = dict(entry)
        kind = arguments.pop("layer", None)
        if kind not in LAYER_TYPES:
            raise ParameterError(f"Layer spec {entry!r} needs 'layer' set to one of {', '.join(LAYER_TYPES)}.")
        counts[kind] = counts.get(kind, 0) + 1
        try:
            layer = LAYER_TYPES[kind](name=f"{prefix}{kind}_{counts[kind]}", **arguments)
        except TypeError as error:
            raise ParameterError(f"Layer spec {entry!r}: {error}") from error
        x = layer(x)
    return x


def softmax_output(x, n_classes: int):
    """Append the softmax layer every model ends with, named :data:`OUTPUT_LAYER_NAME`.

    It computes in float32, so mixed precision stays stable.

    Args:
        x: Symbolic Keras tensor.
        n_classes: Softmax units; binary tasks use two, so metrics and CAMs
            treat all tasks alike.

    Returns:
        The output tensor of the softmax layer.

    Raises:
        ParameterError: ``n_classes`` is below 2.
    """
    if n_classes < 2:
        raise ParameterError(f"n_classes={n_classes}: the output is a softmax, so use 2 units for a binary task.")
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name=OUTPUT_LAYER_NAME)(x)


def is_head_layer(layer: keras.layers.Layer) -> bool:
    """Whether a layer of a :func:`~common.models.build_backbone_model` model belongs to the head."""
    return layer.name.startswith(HEAD_PREFIX) or layer.name == OUTPUT_LAYER_NAME


def count_params(model: keras.Model) -> tuple[int, int]:
    """Return ``(total, trainable)`` weight counts of ``model``."""

    def size(variables) -> int:
        return int(sum(np.prod(v.shape) for v in variables))

    return size(model.weights), size(model.trainable_weights)
