"""Model builders of the study: ImageNet backbones with data-defined heads, and
the papers' own small CNNs.

Every model is a *functional* ``keras.Model`` (tf-keras-vis cannot explain a
``Sequential`` one). Transfer models are built flat: the head is attached to
``base.output``, so the backbone's layers are the model's own layers and
Grad-CAM can reach any of them (a backbone nested as one layer breaks
Grad-CAM with "Graph disconnected").

Layer stacks are data: a spec is a list of dicts such as
``{"layer": "dense", "units": 256, "activation": "relu"}`` where ``layer`` is a
key of :data:`LAYER_TYPES` and the other keys are that Keras layer's
arguments. :func:`build_backbone_model` appends such a head to a backbone, the
small CNNs are such stacks on an ``Input``. Every model ends with the same
softmax layer named ``predictions`` (binary tasks use two units, so metrics and
CAMs treat all tasks alike). Layers built from a spec are named
``<prefix><layer>_<n>`` (e.g. ``head_dense_1``), counted per layer kind.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import keras
import numpy as np

from common.errors import DataError, ParameterError


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One ImageNet architecture of ``keras.applications``.

    Attributes:
        constructor: The ``keras.applications`` function that builds it.
        preprocess: Module of ``keras.applications`` whose ``preprocess_input``
            matches the ImageNet weights (e.g. ``"resnet50"``).
        paper_size: Square input size used by the nine-models paper (seed 002).
        min_size: Smallest square input ``include_top=False`` accepts.
        residual_bn_suffix: Name ending of the batch norm that closes each
            residual branch (before the addition), for :func:`zero_init_residual`;
            None for architectures without such branches.
    """

    constructor: Callable[..., keras.Model]
    preprocess: str
    paper_size: int
    min_size: int
    residual_bn_suffix: str | None = None


# Paper sizes: seed 002, "Methods" (224 / 299 / 320 px). Minimum sizes: found by
# building each backbone with include_top=False at decreasing sizes under
# Keras 3.15 (Keras rejects anything smaller; tests/test_models.py re-checks).
BACKBONES: dict[str, Backbone] = {
    "DenseNet121": Backbone(keras.applications.DenseNet121, "densenet", 224, 32),
    "MobileNetV2": Backbone(keras.applications.MobileNetV2, "mobilenet_v2", 320, 32),
    "InceptionV3": Backbone(keras.applications.InceptionV3, "inception_v3", 299, 75),
    "InceptionResNetV2": Backbone(
        keras.applications.InceptionResNetV2, "inception_resnet_v2", 299, 75
    ),
    # keras.applications names a ResNet block's last batch norm convN_blockM_3_bn.
    "ResNet50": Backbone(keras.applications.ResNet50, "resnet50", 224, 32, "_3_bn"),
    "ResNet101": Backbone(keras.applications.ResNet101, "resnet", 224, 32, "_3_bn"),
    "VGG16": Backbone(keras.applications.VGG16, "vgg16", 320, 32),
    "VGG19": Backbone(keras.applications.VGG19, "vgg19", 320, 32),
    "Xception": Backbone(keras.applications.Xception, "xception", 299, 71),
}

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


def gap_head(dropout: float = 0.3) -> dict:
    """Spec of the plain head: global average pooling, then dropout.

    Args:
        dropout: Dropout rate before the softmax layer (0 leaves it out).

    Returns:
        A head spec ``{"layers": [...]}`` for :func:`build_backbone_model`.
    """
    layers = [{"layer": "gap2d"}]
    if dropout:
        layers.append({"layer": "dropout", "rate": dropout})
    return {"layers": layers}


def nine_models_head(
    dense_units: Sequence[int], dropout: float | None, dropout_before_first_dense: bool = True
) -> dict:
    """Spec of the nine-models paper's classifier (seed 002, Methods and Fig. 1).

    UpSampling2D(4x4) -> GAP -> BatchNorm -> [Dropout] -> then per dense size:
    Dense(relu) -> BatchNorm -> [Dropout]. The softmax layer is appended by
    the model builder.

    Args:
        dense_units: Sizes of the hidden Dense layers, in order.
        dropout: Dropout rate, or None for no dropout (the paper's VGGs).
        dropout_before_first_dense: Whether a dropout follows the first
            BatchNorm (all of the authors' models but Xception).

    Returns:
        A head spec ``{"layers": [...]}``.
    """
    layers: list[dict] = [
        {"layer": "upsampling2d", "size": (4, 4)},
        {"layer": "gap2d"},
        {"layer": "batchnorm"},
    ]
    if dropout and dropout_before_first_dense:
        layers.append({"layer": "dropout", "rate": dropout})
    for units in dense_units:
        layers += [{"layer": "dense", "units": units, "activation": "relu"}, {"layer": "batchnorm"}]
        if dropout:
            layers.append({"layer": "dropout", "rate": dropout})
    return {"layers": layers}


@dataclasses.dataclass(frozen=True)
class NineModelSetting:
    """Per-model fine-tuning settings of the nine-models paper.

    Attributes:
        trainable_last_layers: How many of the backbone's last layers train
            (the rest, about 70 %, stay frozen).
        learning_rate: Adam learning rate.
        epsilon: Adam epsilon.
        dropout: Head dropout rate, None for none.
        dense_units: Hidden Dense sizes of the head.
        dropout_before_first_dense: See :func:`nine_models_head`.
    """

    trainable_last_layers: int
    learning_rate: float
    epsilon: float
    dropout: float | None
    dense_units: tuple[int, ...]
    dropout_before_first_dense: bool = True

    @property
    def head(self) -> dict:
        """The head spec these settings describe."""
        return nine_models_head(self.dense_units, self.dropout, self.dropout_before_first_dense)


# Source: seed 002 (Methods: 70 % frozen, UpSampling 4x4 + BN + dense head, dropout
# 0.3-0.5 except VGG16/VGG19, lr 5e-7..1e-3, epsilon 1e-3..0.1) and, for the per-model
# values, the authors' public code named in its "Code availability" section
# (github.com/NgocVuMinh/Lung-Cancer-Pneumonia-Classification, models.py), as distilled
# in ../shared/STUDY.md. First Dense is 512 for InceptionResNetV2 and ResNet101, 256 for
# the rest; this also reproduces the paper's parameter counts (e.g. 55.1M, 7.3M, 2.6M).
NINE_MODEL_SETTINGS: dict[str, NineModelSetting] = {
    "DenseNet121": NineModelSetting(128, 6e-5, 1e-2, 0.5, (256,)),
    "MobileNetV2": NineModelSetting(46, 1e-5, 5e-3, 0.3, (256,)),
    "InceptionV3": NineModelSetting(94, 1e-5, 1e-2, 0.3, (256,)),
    "InceptionResNetV2": NineModelSetting(170, 1e-4, 7.5e-2, 0.5, (512,)),
    "ResNet50": NineModelSetting(53, 5e-5, 1e-2, 0.3, (256, 128)),
    "ResNet101": NineModelSetting(104, 1e-5, 1e-2, 0.3, (512, 256)),
    "VGG16": NineModelSetting(7, 5e-6, 1e-2, None, (256,)),
    "VGG19": NineModelSetting(8, 5e-6, 5e-3, None, (256,)),
    "Xception": NineModelSetting(41, 1e-4, 1e-1, 0.5, (256, 128), dropout_before_first_dense=False),
}

HEADS: dict[str, dict] = {"gap": gap_head()}
# "nine_models" is accepted by build_backbone_model too: it stands for the head of
# NINE_MODEL_SETTINGS[backbone], which depends on the backbone.
NINE_MODELS_HEAD = "nine_models"


def backbone_spec(backbone: str) -> Backbone:
    """Return the :data:`BACKBONES` row of ``backbone``.

    Raises:
        ParameterError: ``backbone`` is not in the table.
    """
    if backbone not in BACKBONES:
        raise ParameterError(
            f"Unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}."
        )
    return BACKBONES[backbone]


def min_input_size(backbone: str) -> int:
    """Smallest square input size ``backbone`` accepts without its top."""
    return backbone_spec(backbone).min_size


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
            raise ParameterError(
                f"Layer spec {entry!r} needs 'layer' set to one of {', '.join(LAYER_TYPES)}."
            )
        counts[kind] = counts.get(kind, 0) + 1
        try:
            layer = LAYER_TYPES[kind](name=f"{prefix}{kind}_{counts[kind]}", **arguments)
        except TypeError as error:
            raise ParameterError(f"Layer spec {entry!r}: {error}") from error
        x = layer(x)
    return x


def _predictions(x, n_classes: int):
    """The softmax output every model ends with; float32 so mixed precision stays stable."""
    if n_classes < 2:
        raise ParameterError(
            f"n_classes={n_classes}: the output is a softmax, so use 2 units for a binary task."
        )
    return keras.layers.Dense(
        n_classes, activation="softmax", dtype="float32", name=OUTPUT_LAYER_NAME
    )(x)


def _resolve_head(head: str | dict, backbone: str) -> list[dict]:
    """Return the layer list of a head given by name or as a spec dict."""
    if isinstance(head, dict):
        if not isinstance(head.get("layers"), list):
            raise ParameterError(f"Head spec {head!r} needs a 'layers' list.")
        return head["layers"]
    if head == NINE_MODELS_HEAD:
        return NINE_MODEL_SETTINGS[backbone].head["layers"]
    if head in HEADS:
        return HEADS[head]["layers"]
    raise ParameterError(
        f"Unknown head {head!r}; use one of {', '.join([*HEADS, NINE_MODELS_HEAD])} "
        "or a spec dict {'layers': [...]}."
    )


def _trainable_count(
    n_layers: int, trainable_fraction: float | None, trainable_last_layers: int | None
) -> int:
    """How many of the backbone's last layers train; all when neither option is set."""
    if trainable_fraction is not None and trainable_last_layers is not None:
        raise ParameterError("Give trainable_fraction or trainable_last_layers, not both.")
    if trainable_last_layers is not None:
        if not 0 <= trainable_last_layers <= n_layers:
            raise ParameterError(
                f"trainable_last_layers={trainable_last_layers} must lie in [0, {n_layers}] "
                "(the backbone's layer count)."
            )
        return int(trainable_last_layers)
    if trainable_fraction is not None:
        if not 0.0 <= trainable_fraction <= 1.0:
            raise ParameterError(f"trainable_fraction={trainable_fraction} must lie in [0, 1].")
        return int(np.floor(trainable_fraction * n_layers + 0.5))
    return n_layers


def _load_backbone_weights(base: keras.Model, path: pathlib.Path) -> None:
    """Load a ``base.save_weights`` file into ``base``, naming the file on failure."""
    if not path.is_file():
        raise DataError(f"Backbone weights file {path} does not exist.")
    if not path.name.endswith(".weights.h5"):
        raise DataError(
            f"Backbone weights file {path} must be a '*.weights.h5' file written by "
            "base.save_weights() of the same keras.applications backbone (include_top=False)."
        )
    try:
        base.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise DataError(
            f"Could not load backbone weights from {path}: {error}. The file must come from "
            f"base.save_weights() of a {base.name} built with include_top=False."
        ) from error


def build_backbone_model(
    backbone: str,
    input_shape: Sequence[int],
    n_classes: int,
    head: str | dict = "gap",
    weights: str | pathlib.Path | None = None,
    trainable_fraction: float | None = None,
    trainable_last_layers: int | None = None,
    bn_momentum: float | None = None,
    zero_init_residual: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Build a flat functional model: a ``keras.applications`` backbone plus a head.

    Args:
        backbone: A :data:`BACKBONES` key.
        input_shape: ``(height, width, channels)``; both sides at least
            :func:`min_input_size`.
        n_classes: Softmax units (2 for a binary task).
        head: ``"gap"``, ``"nine_models"`` (the paper's head for this
            backbone) or a spec dict ``{"layers": [...]}``.
        weights: None (random init), ``"imagenet"`` (downloaded by Keras; 3
            channels) or the path of a ``*.weights.h5`` file saved by
            ``base.save_weights()`` of the same backbone without its top.
        trainable_fraction: Fraction of the backbone's layers, counted from its
            output end, that train (0.3 = the paper's "70 % frozen").
        trainable_last_layers: The same as a layer count (the paper's code).
            With neither set, the whole backbone trains. Frozen BatchNorm
            layers also keep their moving statistics (Keras runs a frozen
            BatchNorm in inference mode).
        bn_momentum: If set, the momentum of every backbone BatchNorm layer.
            Keras' 0.99 lags badly when training from scratch for few steps
            (validation stayed at chance on this project's phantoms); 0.9 fixes it.
        zero_init_residual: With random weights (``weights=None``), start every
            residual branch at zero (see :func:`zero_init_residual`). Ignored
            for loaded weights and for backbones without residual branches.
        name: Model name; defaults to ``"<backbone>_<head>"``.

    Returns:
        A functional model from ``base.input`` to a softmax layer ``predictions``.

    Raises:
        ParameterError: Unknown backbone/head, an input below the minimum size,
            imagenet weights with other than 3 channels, bad freezing options.
        DataError: A weights file that is missing or does not fit.
    """
    spec = backbone_spec(backbone)
    height, width, channels = (int(v) for v in input_shape)
    if min(height, width) < spec.min_size:
        raise ParameterError(
            f"input_shape={tuple(input_shape)} is too small for {backbone}: "
            f"both sides must be at least {spec.min_size} px."
        )
    if weights == "imagenet" and channels != 3:
        raise ParameterError(
            f"weights='imagenet' needs 3 input channels, got {channels}; load greyscale images "
            "with channels=3."
        )
    head_layers = _resolve_head(head, backbone)
    from_file = weights is not None and weights != "imagenet"
    base = spec.constructor(
        include_top=False,
        weights=None if from_file else weights,
        input_shape=(height, width, channels),
    )
    if from_file:
        _load_backbone_weights(base, pathlib.Path(weights))
    elif zero_init_residual and weights is None:
        zero_init_residual_branches(base, spec.residual_bn_suffix)

    n_trainable = _trainable_count(len(base.layers), trainable_fraction, trainable_last_layers)
    first_trainable = len(base.layers) - n_trainable
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= first_trainable
        if bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum

    x = apply_layer_spec(base.output, head_layers, prefix=HEAD_PREFIX)
    outputs = _predictions(x, n_classes)
    head_name = head if isinstance(head, str) else "custom"
    return keras.Model(base.input, outputs, name=name or f"{backbone}_{head_name}")


def zero_init_residual_branches(model: keras.Model, bn_suffix: str | None) -> int:
    """Set the scale (gamma) of each residual branch's closing batch norm to zero.

    Every residual block then starts as the identity, so a randomly initialised
    deep ResNet trains at first like a shallow network (Goyal et al., 2017,
    "Accurate, Large Minibatch SGD", section 5.1). On this study's chest
    phantoms (150 images per class, 96 px) a from-scratch ResNet50 stayed at
    the majority class until early stopping without it, and reached 0.91
    validation accuracy in 10 epochs with it.

    Args:
        model: A backbone built with random weights.
        bn_suffix: Name ending of the closing batch norms (``Backbone.residual_bn_suffix``);
            None changes nothing.

    Returns:
        How many batch norms were set to zero.
    """
    if bn_suffix is None:
        return 0
    closing = [layer for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization) and layer.name.endswith(bn_suffix)]
    for layer in closing:
        layer.gamma.assign(np.zeros(layer.gamma.shape, dtype=layer.gamma.dtype))
    return len(closing)


def is_head_layer(layer: keras.layers.Layer) -> bool:
    """Whether a layer of a :func:`build_backbone_model` model belongs to the head."""
    return layer.name.startswith(HEAD_PREFIX) or layer.name == OUTPUT_LAYER_NAME


def build_from_spec(
    input_shape: Sequence[int], layers: Sequence[dict], n_classes: int, name: str
) -> keras.Model:
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
    outputs = _predictions(apply_layer_spec(inputs, layers), n_classes)
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
            {"layer": "conv2d", "filters": n_filters, "kernel_size": 3, "padding": "same",
             "activation": "relu"},
            {"layer": "maxpool2d", "pool_size": 2},
        ]
    layers += gap_head(dropout)["layers"]
    return build_from_spec(input_shape, layers, n_classes, name="plain_cnn")


def build_multi_organ_cnn(
    input_shape: Sequence[int] = (128, 128, 1), n_classes: int = 8
) -> keras.Model:
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
            {"layer": "conv3d", "filters": scaled(n_filters), "kernel_size": 3,
             "padding": padding, "activation": "relu"},
            {"layer": "maxpool3d", "pool_size": 2, "padding": padding},
            {"layer": "batchnorm", **({} if bn_momentum is None else {"momentum": bn_momentum})},
        ]
    for n_filters in (256, 512):
        layers.append({"layer": "conv3d", "filters": scaled(n_filters), "kernel_size": 1,
                       "activation": "relu"})
    layers += [{"layer": "maxpool3d", "pool_size": 2, "padding": padding}, {"layer": "flatten"}]
    if hidden_units:
        if dropout:
            layers.append({"layer": "dropout", "rate": dropout})
        layers.append({"layer": "dense", "units": hidden_units, "activation": "relu"})
    if dropout:
        layers.append({"layer": "dropout", "rate": dropout})
    return build_from_spec(input_shape, layers, n_classes, name="cnn3d")


def count_params(model: keras.Model) -> tuple[int, int]:
    """Return ``(total, trainable)`` weight counts of ``model``."""
    def size(variables) -> int:
        return int(sum(np.prod(v.shape) for v in variables))

    return size(model.weights), size(model.trainable_weights)
