"""Finding the layers a CAM is taken at, from a functional model's layer order and output shapes.

* :func:`last_conv_layer`: the conventional Grad-CAM layer, the rectified
  output of the last convolutional block;
* :func:`finer_layers`: one layer per finer feature-grid scale, the
  candidates a CAM layer is chosen from on the validation split;
* :func:`layer_grid`: a layer's feature grid, for labels.
"""

from __future__ import annotations

import math

import keras

from common.errors import ParameterError

CONV_LAYER_TYPES = (
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)
"""Layer classes that count as convolutions when looking for the CAM layer."""


def output_shape(layer: keras.layers.Layer) -> tuple | None:
    """Return the layer's single output shape, or None (shared or multi-output layer).

    Args:
        layer: A layer of a built functional model.

    Returns:
        The shape including the batch axis (None for it), or None.
    """
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(output, (list, tuple)):
        return None
    return tuple(output.shape)


def layer_grid(model: keras.Model, layer: str) -> tuple[int, ...]:
    """The spatial size of a layer's feature maps, e.g. ``(3, 3)`` or ``(4, 4, 2)``.

    Args:
        model: A functional Keras model.
        layer: Name of one of its layers with spatial outputs.

    Returns:
        The output shape without the batch and channel axes.
    """
    return tuple(model.get_layer(layer).output.shape[1:-1])


def last_conv_layer(model: keras.Model) -> str:
    """Name the conventional Grad-CAM layer of a functional model.

    Rule: take the last convolution (one of :data:`CONV_LAYER_TYPES`) in the
    model's layer order, then follow the layers after it while their output
    keeps the convolution's rank and spatial size (batch norm, activation,
    residual add, concatenation, dropout); the last of these is the CAM layer.
    The first layer that changes the spatial size (pooling, upsampling) or drops
    the spatial axes (flatten, global pooling) ends the walk. So a plain CNN
    gives its last Conv2D/Conv3D (or the activation right after it), and
    keras.applications backbones give the rectified output of the last block:
    ResNet50 ``conv5_block3_out``, DenseNet121 ``relu``, VGG16 ``block5_conv3``,
    MobileNetV2 ``out_relu``, InceptionV3 ``mixed10``, Xception
    ``block14_sepconv2_act``, even when a head such as UpSampling2D follows.

    Args:
        model: A flat functional Keras model (backbone layers at top level).

    Returns:
        The layer name.

    Raises:
        ParameterError: The model has no 2D/3D convolution at its top level.
    """
    layers = list(model.layers)
    conv_positions = [i for i, layer in enumerate(layers) if isinstance(layer, CONV_LAYER_TYPES)]
    if not conv_positions:
        raise ParameterError(
            f"model {model.name!r} has no Conv2D/Conv3D/DepthwiseConv2D/SeparableConv2D layer at its "
            "top level; build it flat (backbone outputs wired into the head, not nested as one layer) "
            "or pass layer= explicitly"
        )
    position = conv_positions[-1]
    chosen = layers[position]
    conv_shape = output_shape(chosen)
    assert conv_shape is not None, "a top-level convolution has one output"
    for layer in layers[position + 1 :]:
        shape = output_shape(layer)
        if shape is None or len(shape) != len(conv_shape) or shape[1:-1] != conv_shape[1:-1]:
            break
        chosen = layer
    return chosen.name


def finer_layers(model: keras.Model, finest_stride: int = 4) -> list[str]:
    """Name a CAM layer for each feature-grid scale finer than the last convolutional layer's.

    A backbone halves its feature grid several times; at a CPU-sized input
    the last convolutional layer is a 1 x 1 to 4 x 4 grid, too coarse for a
    heatmap to point at a small lesion. Grids are grouped by scale, the input
    side over the grid side rounded to a power of two (unpadded convolutions
    shrink a 17 x 17 grid to 15 x 15 at one scale); for every scale between
    the last layer's and ``finest_stride`` input pixels per cell, this takes
    the scale's widest layer (most channels; the last of them on a tie): a
    stage's output before the grid shrinks, such as ResNet's
    ``conv4_block6_out``, InceptionV3's ``mixed7`` or VGG's last convolution of
    a block, rather than a narrow branch of the next, shrinking module. It
    looks at output shapes only, so it works for any flat functional backbone.
    Zero-padding layers are not feature maps, and only layers up to the last
    convolutional layer count (an UpSampling2D head is not a grid).

    Args:
        model: A flat functional Keras model.
        finest_stride: Input pixels per grid cell of the finest scale kept.

    Returns:
        Layer names, deepest (coarsest grid) first; empty when no scale is
        finer than the last layer's and coarse enough.
    """
    layers = list(model.layers)
    last = last_conv_layer(model)
    last_shape = output_shape(model.get_layer(last))
    assert last_shape is not None, "the CAM layer has one output"
    input_side = min(model.input_shape[1:-1])

    def scale(shape: tuple) -> int:
        return round(math.log2(input_side / max(1, min(shape[1:-1]))))

    padding = (keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D, keras.layers.InputLayer)
    widest: dict[int, tuple[int, int, str]] = {}  # scale -> (channels, position, name)
    for position, layer in enumerate(layers[: [candidate.name for candidate in layers].index(last) + 1]):
        shape = output_shape(layer)
        if not isinstance(layer, padding) and shape is not None and len(shape) == len(last_shape):
            level, entry = scale(shape), (shape[-1], position, layer.name)
            widest[level] = max(widest.get(level, entry), entry)
    kept = [
        (position, name)
        for level, (_, position, name) in widest.items()
        if math.log2(finest_stride) <= level < scale(last_shape)
    ]
    return [name for _, name in sorted(kept, reverse=True)]
