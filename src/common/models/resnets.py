"""Residual networks of basic blocks (He et al. 2016), in 2D and 3D.

Seed 000's Table I lists ResNet-18, ResNet-32 and a "3D ResNet" without
defining them; this module builds them from their published definitions
(He, Zhang, Ren and Sun 2016, "Deep Residual Learning for Image Recognition",
CVPR):

* :data:`RESNET18`: the ImageNet design of the paper's Table 1, a 7x7 stride-2
  convolution and a 3x3 stride-2 max pooling (the *stem*), then four stages of
  two basic blocks (two 3x3 convolutions each) with 64, 128, 256 and 512
  filters; a stage that halves the grid opens with a stride-2 convolution and
  a projection shortcut (1x1 convolution and batch norm; the paper's option B).
* :data:`RESNET32`: the CIFAR-10 design of the paper's section 4.2, a 3x3
  convolution of 16 filters, then three stages of n = 5 basic blocks with 16,
  32 and 64 filters (6n + 2 = 32 layers with weights); shortcuts are identities,
  and where the grid halves and the filters double the identity is subsampled
  and padded with zero channels (option A, no weights).
* :data:`RESNET3D_18`: the 3D ResNet-18 of Hara, Kataoka and Satoh (2018,
  "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?",
  CVPR): :data:`RESNET18` with every kernel, stride and pooling a cube and
  option A shortcuts, as theirs. Their stem keeps the first axis (time) at
  stride 1; a CT volume's axes are all space, so here every axis halves (the
  weights are the same). :func:`build_resnet`'s ``width`` scales every filter
  count for a CPU.

Every convolution is followed by batch norm (so it has no bias) and every block
ends with ReLU after the addition, as in the paper; the classifier is global
average pooling and the softmax layer ``predictions`` every model of the study
ends with. Layers are named ``stem_*`` and ``stage<s>_block<b>_*``, and each
block's output ``stage<s>_block<b>_out`` (where a CAM can be taken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

from common.errors import ParameterError
from common.models.layers import softmax_output

STEMS = ("imagenet", "cifar")
SHORTCUTS = ("projection", "zero_pad")


@dataclass(frozen=True)
class ResNetDesign:
    """A residual network of basic blocks, as published.

    Attributes:
        name: The model name its builder gives (``resnet18``, ``resnet32``, ``resnet3d_18``).
        blocks: Basic blocks per stage.
        filters: Filters of every convolution of each stage.
        stem: ``"imagenet"`` (7x7 stride-2 convolution, 3x3 stride-2 max pooling) or
            ``"cifar"`` (one 3x3 convolution at full resolution).
        shortcut: Where a stage changes the grid or the filters, ``"projection"`` (a
            strided 1x1 convolution with batch norm; option B) or ``"zero_pad"`` (the
            subsampled identity padded with zero channels; option A).
        ndim: 2 for images, 3 for volumes (every kernel, stride and pooling a cube).
    """

    name: str
    blocks: tuple[int, ...]
    filters: tuple[int, ...]
    stem: str
    shortcut: str
    ndim: int = 2

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.filters) or not self.blocks:
            raise ParameterError(f"{self.name}: give one filter count per stage ({self.blocks}, {self.filters}).")
        if self.stem not in STEMS or self.shortcut not in SHORTCUTS:
            raise ParameterError(
                f"{self.name}: stem must be one of {STEMS} and shortcut one of {SHORTCUTS}, "
                f"got {self.stem!r} and {self.shortcut!r}."
            )
        if self.ndim not in (2, 3):
            raise ParameterError(f"{self.name}: ndim={self.ndim}; residual networks are built in 2D or 3D.")

    @property
    def depth(self) -> int:
        """Layers with weights: the stem's convolution, two per block and the classifier."""
        return 2 * sum(self.blocks) + 2


# He et al. 2016, Table 1 (the 18-layer column).
RESNET18 = ResNetDesign("resnet18", (2, 2, 2, 2), (64, 128, 256, 512), stem="imagenet", shortcut="projection")
# He et al. 2016, section 4.2: n = 5 for 6n + 2 = 32 layers; option A shortcuts on CIFAR-10.
RESNET32 = ResNetDesign("resnet32", (5, 5, 5), (16, 32, 64), stem="cifar", shortcut="zero_pad")
# Hara et al. 2018, Table 1 (ResNet-18, shortcut type A).
RESNET3D_18 = ResNetDesign(
    "resnet3d_18", (2, 2, 2, 2), (64, 128, 256, 512), stem="imagenet", shortcut="zero_pad", ndim=3
)
DESIGNS = {design.name: design for design in (RESNET18, RESNET32, RESNET3D_18)}


@keras.saving.register_keras_serializable(package="camstudy")
class ZeroPadChannels(keras.layers.Layer):
    """Append ``extra`` channels of zeros (the last axis): He et al.'s option A shortcut, without weights."""

    def __init__(self, extra: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if extra < 0:
            raise ParameterError(f"extra={extra}: a shortcut cannot drop channels.")
        self.extra = int(extra)

    def call(self, inputs):
        padding = [(0, 0)] * (len(inputs.shape) - 1) + [(0, self.extra)]
        return keras.ops.pad(inputs, padding)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.extra)

    def get_config(self) -> dict:
        return {**super().get_config(), "extra": self.extra}


class _Layers:
    """The layer classes of one dimensionality."""

    def __init__(self, ndim: int) -> None:
        self.conv = keras.layers.Conv2D if ndim == 2 else keras.layers.Conv3D
        self.max_pool = keras.layers.MaxPooling2D if ndim == 2 else keras.layers.MaxPooling3D
        self.gap = keras.layers.GlobalAveragePooling2D if ndim == 2 else keras.layers.GlobalAveragePooling3D

    def conv_bn(
        self, x, filters: int, kernel: int, stride: int, name: str, bn_momentum: float | None, relu: bool = True
    ):
        x = self.conv(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        momentum = {} if bn_momentum is None else {"momentum": bn_momentum}
        x = keras.layers.BatchNormalization(name=f"{name}_bn", **momentum)(x)
        return keras.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _shortcut(layers: _Layers, x, filters: int, stride: int, kind: str, name: str, bn_momentum: float | None):
    """The block's shortcut: the identity, or option A / B where the grid or the filters change."""
    channels = int(x.shape[-1])
    if stride == 1 and channels == filters:
        return x
    if kind == "projection":
        return layers.conv_bn(x, filters, 1, stride, f"{name}_shortcut", bn_momentum, relu=False)
    if stride > 1:  # a pooling of size 1 keeps every stride-th position: the subsampling of option A
        x = layers.max_pool(pool_size=1, strides=stride, padding="same", name=f"{name}_subsample")(x)
    return ZeroPadChannels(filters - channels, name=f"{name}_pad")(x)


def _basic_block(layers: _Layers, x, filters: int, stride: int, kind: str, name: str, bn_momentum: float | None):
    """Two 3x3 convolutions with batch norm, added to the shortcut, then ReLU."""
    shortcut = _shortcut(layers, x, filters, stride, kind, name, bn_momentum)
    y = layers.conv_bn(x, filters, 3, stride, f"{name}_1", bn_momentum)
    y = layers.conv_bn(y, filters, 3, 1, f"{name}_2", bn_momentum, relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def build_resnet(
    design: ResNetDesign,
    input_shape: Sequence[int],
    n_classes: int,
    width: float = 1.0,
    bn_momentum: float | None = 0.9,
    name: str | None = None,
) -> keras.Model:
    """Build a residual network of basic blocks as a functional model.

    Args:
        design: :data:`RESNET18`, :data:`RESNET32`, :data:`RESNET3D_18` or another :class:`ResNetDesign`.
        input_shape: One sample, channels last: ``(H, W, C)``, or ``(H, W, D, C)`` in 3D.
        n_classes: Softmax units (2 for a binary task; 1000 for ImageNet, 10 for CIFAR-10).
        width: Multiplier of every filter count (1.0 = the published design).
        bn_momentum: Momentum of every batch norm's moving statistics; 0.9 as in the
            study's other from-scratch models (Keras' 0.99, kept with None, lags behind a
            short CPU run).
        name: Model name; default the design's.

    Returns:
        A functional model from ``image`` to the softmax ``predictions``.

    Raises:
        ParameterError: ``input_shape`` of the wrong rank for the design, or a width that is not positive.
    """
    ndim = design.ndim
    layers = _Layers(ndim)
    if len(input_shape) != ndim + 1:
        raise ParameterError(
            f"input_shape={tuple(input_shape)}: {design.name} is a {ndim}D network; give {ndim} axes and channels."
        )
    if width <= 0:
        raise ParameterError(f"width={width} must be positive.")

    def scaled(filters: int) -> int:
        return max(1, int(round(filters * width)))

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if design.stem == "imagenet":
        x = layers.conv_bn(inputs, scaled(design.filters[0]), 7, 2, "stem", bn_momentum)
        x = layers.max_pool(pool_size=3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = layers.conv_bn(inputs, scaled(design.filters[0]), 3, 1, "stem", bn_momentum)
    for stage, (n_blocks, filters) in enumerate(zip(design.blocks, design.filters), start=1):
        for block in range(1, n_blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(
                layers, x, scaled(filters), stride, design.shortcut, f"stage{stage}_block{block}", bn_momentum
            )
    x = layers.gap(name="avg_pool")(x)
    return keras.Model(inputs, softmax_output(x, n_classes), name=name or design.name)
