"""Class activation maps through one explainer: :class:`CamExplainer` and the helpers around it.

All three methods (:mod:`common.explain.methods`) run through
:class:`CamExplainer` on a view of the model whose output layer is linear
(:func:`logit_model`), so gradients and scores are taken on logits; the
explained model is never modified. Every model must be functional (a
``Sequential`` cannot be traced to an inner layer).

Every CAM is taken at the layer's own resolution and upsampled here to the
input's spatial size with cell-centred linear interpolation
(:func:`upsample_cams`), then min-max normalised per image to [0, 1]; a
constant map becomes all zeros (it points nowhere). Corner-aligned upsampling
(tf-keras-vis' own) moves every cell of a coarse map (3x3 at the last ResNet50
layer of a 96 px input, 3x3x2 for the 3D CNN) outward by up to half a cell and
can never put the peak on a cell's true centre.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from common.errors import DataError, ParameterError
from common.explain.layers import last_conv_layer
from common.explain.methods import METHODS, CamMethod, CamOptions, make_method, several_gradient_maps

ClassIndices = int | Sequence[int] | np.ndarray
"""One class index for all images, or one per image."""


def logit_model(model: keras.Model) -> keras.Model:
    """The model ending in logits: its output layer copied with a linear activation.

    Every other layer is the model's own (shared, not copied), so this costs
    one small layer instead of a clone of the backbone, and the model itself
    is not changed. The copied output layer keeps the weights it had when the
    view was made, so make a new view after further training; code that
    changes weights (the randomisation check) must pass a clone.

    Args:
        model: Functional Keras model with one output layer.

    Returns:
        The logit view.
    """
    output_layer = model.get_layer(model.output_names[0])
    linear = type(output_layer).from_config({**output_layer.get_config(), "activation": "linear"})
    logits = linear(output_layer.input)
    linear.set_weights(output_layer.get_weights())
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


def upsample_cams(cams: np.ndarray, spatial_shape: Sequence[int]) -> np.ndarray:
    """Resize layer-resolution CAMs (N, h, w[, d]) to ``spatial_shape`` with cell-centred linear interpolation.

    Each feature-map cell covers a block of input pixels; ``grid_mode=True``
    places the cell's value at the block's centre (edges held constant), so a
    peak stays over the image region its cell saw.

    Args:
        cams: Raw maps (N, h, w) or (N, h, w, d).
        spatial_shape: Target spatial size (H, W) or (H, W, D).

    Returns:
        float32 maps (N, *spatial_shape).
    """
    from scipy import ndimage

    cams = np.asarray(cams, dtype=np.float32)
    factors = [1.0] + [target / source for source, target in zip(cams.shape[1:], spatial_shape)]
    if all(factor == 1.0 for factor in factors):
        return cams
    return ndimage.zoom(cams, factors, order=1, grid_mode=True, mode="nearest").astype(np.float32)


def normalise_cams(cams: np.ndarray) -> np.ndarray:
    """Min-max normalise each map of a stack to [0, 1]; constant maps become zeros.

    Args:
        cams: Array (N, ...) of raw maps.

    Returns:
        float32 array of the same shape.
    """
    cams = np.asarray(cams, dtype=np.float32)
    axes = tuple(range(1, cams.ndim))
    low = cams.min(axis=axes, keepdims=True)
    high = cams.max(axis=axes, keepdims=True)
    span = high - low
    # A span at float noise level relative to the peak means "flat", not "detail".
    flat = span <= np.finfo(np.float32).eps * np.abs(high)
    normalised = np.divide(cams - low, np.where(flat, 1.0, span))
    return np.where(flat, 0.0, normalised).astype(np.float32)


def _class_index_array(class_indices: ClassIndices, n_images: int, n_outputs: int) -> np.ndarray:
    """Broadcast one index or check a sequence of indices, one per image."""
    indices = np.asarray(class_indices)
    if indices.ndim == 0:
        indices = np.full(n_images, int(indices))
    if indices.shape != (n_images,) or not np.issubdtype(indices.dtype, np.integer):
        raise ParameterError(
            f"class_indices must be one integer or {n_images} integers (one per image), "
            f"got {np.asarray(class_indices).tolist()!r}"
        )
    n_classes = max(n_outputs, 2)
    if indices.min(initial=0) < 0 or indices.max(initial=0) >= n_classes:
        raise ParameterError(
            f"class_indices must lie in 0..{n_classes - 1} for a model with {n_outputs} output unit(s), "
            f"got {sorted(set(indices.tolist()))}"
        )
    return indices.astype(int)


def _check_model(model: keras.Model) -> None:
    """Refuse models a CAM cannot be traced through.

    Raises:
        ParameterError: Sequential or multi-input/output model, or an output
            layer whose activation cannot be replaced.
    """
    if isinstance(model, keras.Sequential):
        raise ParameterError(
            f"model {model.name!r} is Sequential, which cannot be traced to an inner layer; "
            "rebuild it with the functional API (keras.Model(inputs, outputs))"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParameterError(f"model {model.name!r} must have one input and one output for CAMs")
    output_layer = model.get_layer(model.output_names[0])
    if not hasattr(output_layer, "activation"):
        raise ParameterError(
            f"output layer {output_layer.name!r} of model {model.name!r} has no activation to "
            "linearise; end the model with Dense(..., activation='softmax' or 'sigmoid')"
        )


class CamExplainer:
    """A model prepared once for CAMs by one method, reused over images and layers.

    A layer's gradient step is compiled once it has run one batch eagerly
    (compiling costs seconds for ResNet50), so compute many CAMs through one
    explainer rather than one explainer per call.

    Attributes:
        method: One of :data:`common.explain.methods.METHODS`.
        n_outputs: Output units of the explained model.
        binary: True when the model ends in a single (sigmoid) unit.
        default_layer: :func:`common.explain.layers.last_conv_layer` of the model.
        input_rank: Rank of the model input, batch axis included.
        model: :func:`logit_model` of the explained model, which the CAMs are computed on.
        algorithm: The method bound to :attr:`model`
            (:class:`common.explain.methods.CamMethod`).
    """

    def __init__(self, model: keras.Model, method: str = "gradcam", compile_after_batches: int = 1):
        """Make the model's logit view and bind the method to it.

        Args:
            model: Functional Keras model with one input and one output.
            method: One of :data:`common.explain.methods.METHODS`.
            compile_after_batches: Gradient methods compile a layer's step once
                it has run this many batches eagerly (0: always compiled); the
                maps are the same either way.

        Raises:
            ParameterError: Unknown method, Sequential or multi-input/output model,
                or an output layer whose activation cannot be replaced.
        """
        if method not in METHODS:
            raise ParameterError(f"unknown CAM method {method!r}; choose one of {sorted(METHODS)}")
        _check_model(model)
        self.method = method
        self.n_outputs = int(model.outputs[0].shape[-1])
        self.binary = self.n_outputs == 1
        self.default_layer = last_conv_layer(model)
        self.input_rank = len(model.inputs[0].shape)
        self.model = logit_model(model)
        self.algorithm: CamMethod = make_method(method, self.model, self.binary, compile_after_batches)

    def cams(
        self,
        images: np.ndarray,
        class_indices: ClassIndices,
        layer: str | None = None,
        batch_size: int = 32,
        max_channels: int | None = None,
        score_batch_size: int = 32,
    ) -> np.ndarray:
        """CAMs of a stack of images; see :func:`compute_cam` for the arguments."""
        layer = self.default_layer if layer is None else layer
        return self.cams_at_layers(images, class_indices, [layer], batch_size, max_channels, score_batch_size)[layer]

    def cams_at_layers(
        self,
        images: np.ndarray,
        class_indices: ClassIndices,
        layers: Sequence[str],
        batch_size: int = 32,
        max_channels: int | None = None,
        score_batch_size: int = 32,
    ) -> dict[str, np.ndarray]:
        """CAMs of the same images at each of ``layers``.

        Gradient methods take every layer from one forward and backward pass
        per batch; Score-CAM, which masks the input with each layer's own maps,
        runs layer by layer.

        Args:
            images: Model-ready inputs, see :func:`compute_cam`.
            class_indices: One class index for all images or one per image.
            layers: Names of layers with spatial outputs (at least one; repeats are computed once).
            batch_size: See :func:`compute_cam`.
            max_channels: See :func:`compute_cam`.
            score_batch_size: See :func:`compute_cam`.

        Returns:
            Layer name -> float32 CAMs in [0, 1] at the input's spatial size.
        """
        images = self._checked_images(images)
        options = CamOptions(batch_size, max_channels, score_batch_size)
        unique = tuple(dict.fromkeys(layers))
        if not unique:
            raise ParameterError("no layer given to take CAMs from")
        for layer in unique:
            self._check_spatial(layer)
        indices = _class_index_array(class_indices, len(images), self.n_outputs)
        cams = {layer: np.empty(images.shape[:-1], dtype=np.float32) for layer in unique}
        for rows, raw in self.algorithm.raw_maps(images, indices, unique, options):
            for layer, maps in raw.items():
                cams[layer][rows] = normalise_cams(upsample_cams(maps, images.shape[1:-1]))
        return cams

    def cams_of_gradient_methods(
        self,
        images: np.ndarray,
        class_indices: ClassIndices,
        layer: str | None,
        methods: Sequence[str],
        batch_size: int = 32,
    ) -> dict[str, np.ndarray]:
        """CAMs of several gradient methods at one layer from one forward and backward pass per batch.

        Each method's maps equal its own explainer's (:meth:`cams`); the pass runs eagerly.

        Args:
            images: Model-ready inputs, see :func:`compute_cam`.
            class_indices: One class index for all images or one per image.
            layer: Layer name; None: the last convolutional layer.
            methods: Keys of :data:`common.explain.methods.GRADIENT_METHODS`.
            batch_size: Images per pass.

        Returns:
            Method -> float32 CAMs in [0, 1] at the input's spatial size.
        """
        images = self._checked_images(images)
        layer = self.default_layer if layer is None else layer
        self._check_spatial(layer)
        indices = _class_index_array(class_indices, len(images), self.n_outputs)
        names = tuple(dict.fromkeys(methods))
        cams = {name: np.empty(images.shape[:-1], dtype=np.float32) for name in names}
        for rows, raw in several_gradient_maps(self.model, self.binary, images, indices, layer, names, batch_size):
            for name, maps in raw.items():
                cams[name][rows] = normalise_cams(upsample_cams(maps, images.shape[1:-1]))
        return cams

    def _checked_images(self, images: np.ndarray) -> np.ndarray:
        """float32 images of the model input's rank."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != self.input_rank:
            raise DataError(
                f"images must have shape (N, ...) of rank {self.input_rank} matching the model input "
                f"{tuple(self.model.inputs[0].shape)}, got {images.shape}"
            )
        return images

    def _check_spatial(self, layer: str) -> None:
        """Check that ``layer`` exists and has spatial feature maps of the input's rank."""
        try:
            layer_shape = self.model.get_layer(layer).output.shape
        except ValueError as error:
            raise ParameterError(f"model has no layer {layer!r} to take the CAM from") from error
        if len(layer_shape) != self.input_rank:
            raise ParameterError(
                f"layer {layer!r} has output shape {tuple(layer_shape)}, not a spatial feature map "
                f"of rank {self.input_rank}"
            )


def compute_cam(
    model: keras.Model,
    images: np.ndarray,
    class_indices: ClassIndices,
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int = 32,
    max_channels: int | None = None,
    score_batch_size: int = 32,
) -> np.ndarray:
    """Class activation maps of a batch of images for the given classes.

    Args:
        model: Functional Keras model (2D or 3D input); it is not modified.
        images: Model-ready inputs (N, H, W, C) or (N, H, W, D, C).
        class_indices: One class index for all images or one per image.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"scorecam"``.
        layer: Name of the layer whose feature maps are explained; None ->
            :func:`common.explain.layers.last_conv_layer`.
        batch_size: Images per compiled Grad-CAM / Grad-CAM++ step (a batch
            uses the cores far better than single images). Score-CAM explains
            one image per call.
        max_channels: Score-CAM only: use the feature maps with the largest
            spatial variance, at most this many (tf-keras-vis ``max_N``,
            "Faster Score-CAM"); None uses all channels. Score-CAM runs one
            forward pass per channel and holds channels x input size floats.
        score_batch_size: Score-CAM only: batch size of its masked forward
            passes (inference mode).

    Returns:
        float32 array (N, H, W) or (N, H, W, D) in [0, 1] at the input's
        spatial size.
    """
    explainer = CamExplainer(model, method)
    return explainer.cams(images, class_indices, layer, batch_size, max_channels, score_batch_size)


def layer_cams(
    model: keras.Model,
    images: np.ndarray,
    class_indices: ClassIndices,
    layers: Sequence[str],
    method: str = "gradcam",
    **cam_options: Any,
) -> dict[str, np.ndarray]:
    """CAMs of the same images taken at several layers (gradient methods: in one pass).

    Args:
        model: Functional Keras model.
        images: Model-ready inputs.
        class_indices: One class index or one per image.
        layers: Layer names with spatial outputs.
        method: Key of :data:`common.explain.methods.METHODS`.
        **cam_options: batch_size, max_channels, score_batch_size of :func:`compute_cam`.

    Returns:
        Layer name -> CAM array at the input's spatial size.
    """
    return CamExplainer(model, method).cams_at_layers(images, class_indices, layers, **cam_options)


def group_average_cam(
    model: keras.Model,
    images: np.ndarray,
    class_indices: ClassIndices,
    layers: Sequence[str],
    method: str = "gradcam",
    **cam_options: Any,
) -> np.ndarray:
    """Mean CAM over a group of layers (e.g. the frozen or the trainable layers).

    Each layer's CAM is upsampled to the input size and normalised before
    averaging, so every layer weighs the same whatever its resolution; the mean
    is normalised again to [0, 1].

    Args:
        model: Functional Keras model.
        images: Model-ready inputs.
        class_indices: One class index or one per image.
        layers: Layer names with spatial outputs (at least one).
        method: Key of :data:`common.explain.methods.METHODS`.
        **cam_options: batch_size, max_channels, score_batch_size of :func:`compute_cam`.

    Returns:
        float32 array (N, H, W) or (N, H, W, D) in [0, 1].
    """
    if not layers:
        raise ParameterError("group_average_cam needs at least one layer name")
    return mean_cam(layer_cams(model, images, class_indices, layers, method, **cam_options).values())


def mean_cam(cams: Iterable[np.ndarray]) -> np.ndarray:
    """Mean of CAMs already at one size and in [0, 1], normalised again to [0, 1] (see :func:`group_average_cam`).

    Args:
        cams: CAM stacks of one shape.

    Returns:
        float32 array of that shape.
    """
    return normalise_cams(np.mean(np.stack(list(cams)), axis=0))
