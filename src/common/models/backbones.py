"""ImageNet backbones by name, built flat with a data-defined head.

Transfer models are built flat: the head is attached to ``base.output``, so the
backbone's layers are the model's own layers and Grad-CAM can reach any of
them (a backbone nested as one layer breaks Grad-CAM with "Graph
disconnected"). The table of backbones (:data:`BACKBONES`: the
``keras.applications`` function, its preprocessing, the nine-models paper's
input size, the smallest input Keras accepts) is read from the registry's
``backbones`` section.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import keras
import numpy as np

from common.config import registry
from common.errors import DataError, ParameterError
from common.models.heads import resolve_head
from common.models.layers import HEAD_PREFIX, apply_layer_spec, softmax_output


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One ImageNet architecture of ``keras.applications``.

    Attributes:
        constructor: The ``keras.applications`` function that builds it.
        preprocess: Module of ``keras.applications`` whose ``preprocess_input``
            matches the ImageNet weights (e.g. ``"resnet50"``).
        paper_size: Square input size used by the nine-models paper (seed 002); None for a
            backbone that is not one of its nine (EfficientNetB0, seed 001's baseline).
        min_size: Smallest square input ``include_top=False`` accepts.
        residual_bn_suffix: Name ending of the batch norm that closes each
            residual branch (before the addition), for :func:`zero_init_residual_branches`;
            None for architectures without such branches.
    """

    constructor: Callable[..., keras.Model]
    preprocess: str
    paper_size: int | None
    min_size: int
    residual_bn_suffix: str | None = None


def load_backbones() -> dict[str, Backbone]:
    """Read the registry's ``backbones`` section into :class:`Backbone` rows.

    Each entry names its ``keras.applications`` function as ``application``;
    the other keys are :class:`Backbone` fields.

    Returns:
        ``{backbone name: Backbone}``, in the registry's order.

    Raises:
        ParameterError: An entry names no ``keras.applications`` function, or
            has fields :class:`Backbone` does not know or lacks one it needs.
    """
    backbones: dict[str, Backbone] = {}
    for name, entry in registry.section("backbones").items():
        fields = dict(entry)
        application = fields.pop("application", None)
        constructor = getattr(keras.applications, str(application), None)
        if not callable(constructor):
            raise ParameterError(
                f"Registry backbones.{name}: application={application!r} is no keras.applications function."
            )
        try:
            backbones[name] = Backbone(constructor, **fields)
        except TypeError as error:
            raise ParameterError(f"Registry backbones.{name}: {error}") from error
    return backbones


BACKBONES: dict[str, Backbone] = load_backbones()


def backbone_spec(backbone: str) -> Backbone:
    """Return the :data:`BACKBONES` row of ``backbone``.

    Raises:
        ParameterError: ``backbone`` is not in the table.
    """
    if backbone not in BACKBONES:
        raise ParameterError(f"Unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}.")
    return BACKBONES[backbone]


def min_input_size(backbone: str) -> int:
    """Smallest square input size ``backbone`` accepts without its top."""
    return backbone_spec(backbone).min_size


def trainable_count(n_layers: int, trainable_fraction: float | None, trainable_last_layers: int | None) -> int:
    """How many of the backbone's last layers train; all when neither option is set.

    Args:
        n_layers: The backbone's layer count.
        trainable_fraction: Share of the layers, counted from the end, that train.
        trainable_last_layers: The same as a count.

    Returns:
        The number of last layers that train.

    Raises:
        ParameterError: Both options are set, or one lies outside its range.
    """
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


def load_backbone_weights(base: keras.Model, path: pathlib.Path) -> None:
    """Load a ``base.save_weights`` file into ``base``, naming the file on failure.

    Raises:
        DataError: The file is missing, is not a ``*.weights.h5`` file, or does
            not fit ``base``.
    """
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
    closing = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name.endswith(bn_suffix)
    ]
    for layer in closing:
        layer.gamma.assign(np.zeros(layer.gamma.shape, dtype=layer.gamma.dtype))
    return len(closing)


def _checked_input_shape(backbone: str, spec: Backbone, input_shape: Sequence[int], weights) -> tuple[int, int, int]:
    """Return ``input_shape`` as ints, or raise if the backbone or its weights cannot take it."""
    height, width, channels = (int(v) for v in input_shape)
    if min(height, width) < spec.min_size:
        raise ParameterError(
            f"input_shape={tuple(input_shape)} is too small for {backbone}: "
            f"both sides must be at least {spec.min_size} px."
        )
    if weights == "imagenet" and channels != 3:
        raise ParameterError(
            f"weights='imagenet' needs 3 input channels, got {channels}; load greyscale images with channels=3."
        )
    return height, width, channels


def _build_base(spec: Backbone, shape: tuple[int, int, int], weights, zero_init_residual: bool) -> keras.Model:
    """Build the backbone without its top, with its weights (random, ImageNet or a file)."""
    from_file = weights is not None and weights != "imagenet"
    base = spec.constructor(include_top=False, weights=None if from_file else weights, input_shape=shape)
    if from_file:
        load_backbone_weights(base, pathlib.Path(weights))
    elif zero_init_residual and weights is None:
        zero_init_residual_branches(base, spec.residual_bn_suffix)
    return base


def _set_trainable(base: keras.Model, n_trainable: int, bn_momentum: float | None) -> None:
    """Freeze all but the last ``n_trainable`` layers; set every batch norm's momentum if given."""
    first_trainable = len(base.layers) - n_trainable
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= first_trainable
        if bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum


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
            residual branch at zero (see :func:`zero_init_residual_branches`).
            Ignored for loaded weights and for backbones without residual branches.
        name: Model name; defaults to ``"<backbone>_<head>"``.

    Returns:
        A functional model from ``base.input`` to a softmax layer ``predictions``.

    Raises:
        ParameterError: Unknown backbone/head, an input below the minimum size,
            imagenet weights with other than 3 channels, bad freezing options.
        DataError: A weights file that is missing or does not fit.
    """
    spec = backbone_spec(backbone)
    shape = _checked_input_shape(backbone, spec, input_shape, weights)
    head_layers = resolve_head(head, backbone)
    base = _build_base(spec, shape, weights, zero_init_residual)
    n_trainable = trainable_count(len(base.layers), trainable_fraction, trainable_last_layers)
    _set_trainable(base, n_trainable, bn_momentum)

    x = apply_layer_spec(base.output, head_layers, prefix=HEAD_PREFIX)
    outputs = softmax_output(x, n_classes)
    head_name = head if isinstance(head, str) else "custom"
    return keras.Model(base.input, outputs, name=name or f"{backbone}_{head_name}")
