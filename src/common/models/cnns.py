"""The papers' own small CNNs, built from layer specs on an ``Input``.

The plain CNN baseline (seed 000's Table I row "CNN"), the multi-organ paper's
CNN (seed 003) and the 3D CNN of the 3D Grad-CAM paper (seed 001). Each is a
functional ``keras.Model`` (tf-keras-vis cannot explain a ``Sequential`` one)
ending in the softmax layer ``predictions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from common.errors import ParameterError
from common.models.heads import gap_head
from common.models.layers import apply_layer_spec, softmax_output


def build_from_spec(input_shape: Sequence[int], layers: Sequence[dict], n_classes: int, name: str) -> keras.Model:
    """Build a functional model: ``Input`` -> layer spec -> softmax ``predictions``.

    Args:
        input_shape: Shape of one sample, channels last.
        layers: Layer spec as in :func:`apply_layer_spec`.
        n_classes: Softmax units.
        name: Model name.

    Returns:
        The functional model.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    outputs = softmax_output(apply_layer_spec(inputs, layers), n_classes)
    return keras.Model(inputs, outputs, name=name)


def build_plain_cnn(
    input_shape: Sequence[int],
    n_classes: int,
    filters: Sequence[int] = (32, 64, 128),
    dropout: float = 0.3,
) -> keras.Model:
    """Small CNN baseline for seed 000's Table I row "CNN".

    The paper gives no architecture for that row, so this is a documented
    choice: per entry of ``filters`` a 3x3 same-padded ReLU convolution and a
    2x2 max pooling, then global average pooling, dropout and the softmax.

    Args:
        input_shape: ``(height, width, channels)``.
        n_classes: Softmax units.
        filters: Filters of each convolution block.
        dropout: Dropout rate before the softmax.

    Returns:
        The functional model ``plain_cnn``.
    """
    layers: list[dict] = []
    for n_filters in filters:
        layers += [
            {"layer": "conv2d", "filters": n_filters, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"layer": "maxpool2d", "pool_size": 2},
        ]
    layers += gap_head(dropout)["layers"]
    return build_from_spec(input_shape, layers, n_classes, name="plain_cnn")


def build_multi_organ_cnn(input_shape: Sequence[int] = (128, 128, 1), n_classes: int = 8) -> keras.Model:
    """The multi-organ paper's CNN (seed 003, Code snippet and model summary).

    Three valid 3x3 ReLU convolutions (32, 64, 128 filters) each followed by
    2x2 max pooling, Flatten, Dense(128, relu), softmax: 3,305,096 weights at
    128x128x1 (the paper's summary prints 3,305,098 because it also counts
    the compiled Adam's two scalar variables).

    Args:
        input_shape: ``(height, width, channels)``; the paper's 128x128x1.
        n_classes: Softmax units; the paper's 8 organ x tumour classes.

    Returns:
        The functional model ``multi_organ_cnn``.
    """
    layers: list[dict] = []
    for n_filters in (32, 64, 128):
        layers += [
            {"layer": "conv2d", "filters": n_filters, "kernel_size": 3, "activation": "relu"},
            {"layer": "maxpool2d", "pool_size": 2},
        ]
    layers += [{"layer": "flatten"}, {"layer": "dense", "units": 128, "activation": "relu"}]
    return build_from_spec(input_shape, layers, n_classes, name="multi_organ_cnn")


def build_cnn3d(
    input_shape: Sequence[int] = (64, 64, 32, 1),
    n_classes: int = 2,
    width: float = 1.0,
    hidden_units: int | None = None,
    dropout: float = 0.0,
    padding: str = "same",
    bn_momentum: float | None = None,
) -> keras.Model:
    """The 3D CNN of the 3D Grad-CAM paper (seed 001, section 3.4 and Fig. 3).

    Conv3D 32, 64, 128, 128 (3x3x3, ReLU), each followed by MaxPooling3D(2)
    and BatchNormalization; Conv3D 256 and 512 (1x1x1, ReLU); MaxPooling3D(2);
    Flatten; softmax. The paper says "there is only one dense layer", so by
    default the softmax is the only Dense; ``hidden_units`` adds one before
    it. The paper does not state the padding: ``"same"`` halves every axis
    per pooling, which keeps small CPU volumes (depth 32) valid; the paper's
    input is (512, 512, 64, 1).

    Args:
        input_shape: ``(height, width, depth, channels)``.
        n_classes: Softmax units (2: normal / tumour).
        width: Multiplier of every filter count (1.0 = the paper; smaller
            for CPU runs).
        hidden_units: Size of an optional hidden Dense(relu) after Flatten.
        dropout: Dropout rate after Flatten (and the hidden Dense); 0 = none.
        padding: Convolution and pooling padding, ``"same"`` or ``"valid"``.
        bn_momentum: Momentum of the BatchNorm moving statistics; None keeps
            Keras' 0.99, which lags behind the few steps of a small CPU run.

    Returns:
        The functional model ``cnn3d``.
    """
    if width <= 0:
        raise ParameterError(f"width={width} must be positive.")

    def scaled(n_filters: int) -> int:
        return max(1, int(round(n_filters * width)))

    layers: list[dict] = []
    for n_filters in (32, 64, 128, 128):
        layers += [
            {
                "layer": "conv3d",
                "filters": scaled(n_filters),
                "kernel_size": 3,
                "padding": padding,
                "activation": "relu",
            },
            {"layer": "maxpool3d", "pool_size": 2, "padding": padding},
            {"layer": "batchnorm", **({} if bn_momentum is None else {"momentum": bn_momentum})},
        ]
    for n_filters in (256, 512):
        layers.append({"layer": "conv3d", "filters": scaled(n_filters), "kernel_size": 1, "activation": "relu"})
    layers += [{"layer": "maxpool3d", "pool_size": 2, "padding": padding}, {"layer": "flatten"}]
    if hidden_units:
        if dropout:
            layers.append({"layer": "dropout", "rate": dropout})
        layers.append({"layer": "dense", "units": hidden_units, "activation": "relu"})
    if dropout:
        layers.append({"layer": "dropout", "rate": dropout})
    return build_from_spec(input_shape, layers, n_classes, name="cnn3d")
