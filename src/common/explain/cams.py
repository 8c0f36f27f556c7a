"""Class activation maps (Grad-CAM, Grad-CAM++, Score-CAM) and their display.

All three methods run through one class, :class:`CamExplainer`, on a view of
the model whose output layer is linear (:func:`logit_model`), so gradients and
scores are taken on logits; the explained model is never modified. Every
model must be functional (a ``Sequential`` cannot be traced to an inner layer).

* The two gradient methods share one compiled step per layer: a forward pass
  to the layer's feature maps ``A`` and the class score, and the score's
  gradient ``G`` with respect to ``A``, in a ``tf.function`` over a whole
  batch. They differ only in how a channel's weight is made from ``A`` and
  ``G`` (:data:`CHANNEL_WEIGHTS`); the map is ``ReLU(sum_k w_k A_k)``. Running
  the gradient compiled rather than eagerly is what lets a batch of 32 images
  cost much less than 32 single images on a CPU (see ``camstudy bench``).
* Score-CAM weights channels by the model's probability on inputs masked by
  each (upsampled) feature map; it is tf-keras-vis 0.8.7's ``Scorecam``.

Scores:

* softmax (or linear) outputs with C >= 2 units: the target class's logit;
* a single sigmoid unit (binary model): the logit ``z`` for class 1 and ``-z``
  for class 0. Score-CAM weights channels by the softmax of the model outputs,
  which is the constant 1 for a single unit, so for Score-CAM the view gets
  the two logits ``[0, z]`` whose softmax is exactly
  ``[1 - sigmoid(z), sigmoid(z)]``.

Every CAM is taken at the layer's own resolution and upsampled here to the
input's spatial size with cell-centred linear interpolation
(:func:`upsample_cams`), then min-max normalised per image to [0, 1]; a
constant map becomes all zeros (it points nowhere). Corner-aligned upsampling
(tf-keras-vis' own) moves every cell of a coarse map (3x3 at the last ResNet50
layer of a 96 px input, 3x3x2 for the 3D CNN) outward by up to half a cell and
can never put the peak on a cell's true centre.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Sequence

import cv2
import keras
import matplotlib
import numpy as np
import tensorflow as tf
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore

from common.errors import DataError, ParameterError


def _spatial_sum(tensor):
    """Sum over the spatial axes of a (N, ..., K) feature tensor, keeping them as size 1."""
    return tf.reduce_sum(tensor, axis=list(range(1, len(tensor.shape) - 1)), keepdims=True)


def gradcam_weights(features, gradients):
    """Grad-CAM (Selvaraju et al. 2017): a channel weighs the spatial mean of its gradient."""
    return tf.reduce_mean(gradients, axis=list(range(1, len(gradients.shape) - 1)), keepdims=True)


def gradcam_plus_plus_weights(features, gradients):
    """Grad-CAM++ (Chattopadhyay et al. 2018): positive gradients weighted per position.

    With the exponential score ``exp(S)`` of the paper, the higher derivatives
    are ``exp(S) G^2`` and ``exp(S) G^3``, and the position weights are
    ``alpha = G^2 / (2 G^2 + sum(A) G^3)`` (``exp(S)`` cancels). The remaining
    factor ``exp(S)`` in front of ``ReLU(G)`` is the same for every channel of
    an image, so it is left out (the map is normalised afterwards, and the
    exponential can overflow). The alphas of each channel are normalised to sum
    to one, as in tf-keras-vis 0.8.7, whose maps this reproduces.
    """
    squared = tf.square(gradients)
    alphas = tf.math.divide_no_nan(squared, 2.0 * squared + _spatial_sum(features) * squared * gradients)
    alphas = tf.math.divide_no_nan(alphas, _spatial_sum(alphas))
    return _spatial_sum(alphas * tf.nn.relu(gradients))


CHANNEL_WEIGHTS = {
    "gradcam": gradcam_weights,
    "gradcam++": gradcam_plus_plus_weights,
}
"""Gradient method name -> channel weights ``w (N, 1.., K)`` from feature maps ``A`` and gradients ``G``."""

METHODS = (*CHANNEL_WEIGHTS, "scorecam")
"""Every CAM method name."""

CONV_LAYER_TYPES = (
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)
"""Layer classes that count as convolutions when looking for the CAM layer."""


def _output_shape(layer) -> tuple | None:
    """Return the layer's single output shape, or None (shared or multi-output layer)."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(output, (list, tuple)):
        return None
    return tuple(output.shape)


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
    conv_shape = _output_shape(chosen)
    for layer in layers[position + 1 :]:
        shape = _output_shape(layer)
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
    last_shape = _output_shape(model.get_layer(last))
    input_side = min(model.input_shape[1:-1])

    def scale(shape) -> int:
        return round(math.log2(input_side / max(1, min(shape[1:-1]))))

    padding = (keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D, keras.layers.InputLayer)
    widest: dict[int, tuple[int, int, str]] = {}  # scale -> (channels, position, name)
    for position, layer in enumerate(layers[: [l.name for l in layers].index(last) + 1]):
        shape = _output_shape(layer)
        if not isinstance(layer, padding) and shape is not None and len(shape) == len(last_shape):
            level, entry = scale(shape), (shape[-1], position, layer.name)
            widest[level] = max(widest.get(level, entry), entry)
    kept = [(position, name) for level, (_, position, name) in widest.items()
            if math.log2(finest_stride) <= level < scale(last_shape)]
    return [name for _, name in sorted(kept, reverse=True)]


def logit_model(model: keras.Model) -> keras.Model:
    """The model ending in logits: its output layer copied with a linear activation.

    Every other layer is the model's own (shared, not copied), so this costs
    one small layer instead of a clone of the backbone, and the model itself
    is not changed. The copied output layer keeps the weights it had when the
    view was made, so make a new view after further training; code that
    changes weights (the randomisation check) must pass a clone.
    """
    output_layer = model.get_layer(model.output_names[0])
    linear = type(output_layer).from_config({**output_layer.get_config(), "activation": "linear"})
    logits = linear(output_layer.input)
    linear.set_weights(output_layer.get_weights())
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


def _two_logit_head(model: keras.Model) -> keras.Model:
    """Turn a single-logit output z into the logits [0, z] (softmax = [1 - sigmoid, sigmoid])."""
    logit = model.outputs[0]
    pair = keras.ops.concatenate([keras.ops.zeros_like(logit), logit], axis=-1)
    return keras.Model(model.inputs, pair, name=f"{model.name}_two_logits")


@contextlib.contextmanager
def _quiet_predict():
    """Silence the progress bar and input-structure warning of Score-CAM's model.predict."""
    was_interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            yield
    finally:
        if was_interactive:
            keras.config.enable_interactive_logging()


def upsample_cams(cams: np.ndarray, spatial_shape: Sequence[int]) -> np.ndarray:
    """Resize layer-resolution CAMs (N, h, w[, d]) to ``spatial_shape`` with cell-centred linear interpolation.

    Each feature-map cell covers a block of input pixels; ``grid_mode=True``
    places the cell's value at the block's centre (edges held constant), so a
    peak stays over the image region its cell saw.
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


def _class_index_array(class_indices, n_images: int, n_outputs: int) -> np.ndarray:
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


class CamExplainer:
    """A model prepared once for CAMs by one method, reused over images and layers.

    A layer's gradient step is compiled once it has run one batch eagerly
    (compiling costs seconds for ResNet50), so compute many CAMs through one
    explainer rather than one explainer per call.

    Attributes:
        method: One of :data:`METHODS`.
        binary: True when the model ends in a single (sigmoid) unit.
        default_layer: :func:`last_conv_layer` of the model.
        model: :func:`logit_model` of the explained model, which the CAMs are computed on.
        compile_after_batches: See :meth:`_gradient_step`.
    """

    def __init__(self, model: keras.Model, method: str = "gradcam", compile_after_batches: int = 1):
        """Make the model's logit view (and, for Score-CAM, wrap it in tf-keras-vis' visualiser).

        Args:
            model: Functional Keras model with one input and one output.
            method: One of :data:`METHODS`.
            compile_after_batches: Gradient methods compile a layer's step once
                it has run this many batches eagerly (0: always compiled); the
                maps are the same either way.

        Raises:
            ParameterError: Unknown method, Sequential or multi-input/output model,
                or an output layer whose activation cannot be replaced.
        """
        if method not in METHODS:
            raise ParameterError(f"unknown CAM method {method!r}; choose one of {sorted(METHODS)}")
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
        self.method = method
        self.n_outputs = int(model.outputs[0].shape[-1])
        self.binary = self.n_outputs == 1
        self.default_layer = last_conv_layer(model)
        self.input_rank = len(model.inputs[0].shape)
        self.model = logit_model(model)
        self.compile_after_batches = compile_after_batches
        self._layer_steps: dict[str, dict] = {}
        self._scorecam = None
        if method == "scorecam":
            scored = _two_logit_head(self.model) if self.binary else self.model
            self._scorecam = Scorecam(scored, clone=False)

    def _gradient_step(self, layers: tuple[str, ...]):
        """The batch step of a gradient method at ``layers``: images, classes -> raw CAM per layer.

        One forward and one backward pass give every listed layer's feature
        maps and gradients, so CAMs at several layers cost about what one does.
        The step runs eagerly for its first :attr:`compile_after_batches`
        batches and as a compiled ``tf.function`` from then on. Compiling costs
        more than one eager batch, so it pays only for a step that runs again:
        a single image in the app, or a scored split that fits one batch, stays
        eager. Measured on a 2-core CPU, Grad-CAM of 20 images at four layers
        in one batch: DenseNet121 at 64 px 4-5 s eager against 12-17 s
        compiled, InceptionResNetV2 at 75 px 6-10 s against 23-27 s, ResNet50
        at 96 px 6-7 s against 9 s; a compiled step run again took 0.5-3 s.
        """
        if layers not in self._layer_steps:
            probe = keras.Model(self.model.inputs,
                                [[self.model.get_layer(layer).output for layer in layers], self.model.outputs[0]])
            weigh, binary = CHANNEL_WEIGHTS[self.method], self.binary

            def step(images, classes):
                with tf.GradientTape() as tape:
                    features, logits = probe(images, training=False)
                    if binary:  # +z for class 1, -z for class 0
                        scores = logits[:, 0] * tf.cast(2 * classes - 1, logits.dtype)
                    else:
                        scores = tf.gather(logits, classes, axis=1, batch_dims=1)
                # Images are independent, so the gradient of the summed scores is each image's own.
                gradients = tape.gradient(scores, features)
                maps = []
                for feature, gradient in zip(features, gradients):
                    feature, gradient = tf.cast(feature, tf.float32), tf.cast(gradient, tf.float32)
                    maps.append(tf.nn.relu(tf.reduce_sum(weigh(feature, gradient) * feature, axis=-1)))
                return maps

            self._layer_steps[layers] = {"step": step, "batches": 0, "compiled": False}
        entry = self._layer_steps[layers]
        if entry["batches"] >= self.compile_after_batches and not entry["compiled"]:
            entry["compiled"] = True
            image_spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), tf.float32)
            entry["step"] = tf.function(entry["step"], input_signature=[image_spec, tf.TensorSpec((None,), tf.int32)])
        entry["batches"] += 1
        return entry["step"]

    def _scorecam_maps(self, image: np.ndarray, class_index: int, layer: str, n_channels: int,
                       max_channels: int | None, score_batch_size: int) -> np.ndarray:
        """Raw Score-CAM of one image at layer resolution (tf-keras-vis)."""
        with _quiet_predict():
            return np.asarray(self._scorecam(
                CategoricalScore([class_index]), image[None], penultimate_layer=layer,
                seek_penultimate_conv_layer=False, normalize_cam=False,
                expand_cam=False,  # upsampled here, cell-centred (see the module docstring)
                max_N=None if max_channels is None else min(int(max_channels), n_channels),
                batch_size=score_batch_size,
            ))

    def cams(
        self,
        images: np.ndarray,
        class_indices,
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
        class_indices,
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
            batch_size, max_channels, score_batch_size: See :func:`compute_cam`.

        Returns:
            Layer name -> float32 CAMs in [0, 1] at the input's spatial size.
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != self.input_rank:
            raise DataError(
                f"images must have shape (N, ...) of rank {self.input_rank} matching the model input "
                f"{tuple(self.model.inputs[0].shape)}, got {images.shape}"
            )
        if batch_size < 1 or score_batch_size < 1:
            raise ParameterError(f"batch sizes must be >= 1, got {batch_size} and {score_batch_size}")
        if max_channels is not None and max_channels < 1:
            raise ParameterError(f"max_channels must be >= 1 or None (all channels), got {max_channels}")
        layers = tuple(dict.fromkeys(layers))
        if not layers:
            raise ParameterError("no layer given to take CAMs from")
        channels = {layer: self._spatial_channels(layer) for layer in layers}
        indices = _class_index_array(class_indices, len(images), self.n_outputs)
        cams = {layer: np.empty(images.shape[:-1], dtype=np.float32) for layer in layers}
        if self._scorecam is not None:
            # tf-keras-vis keeps the union of every image's top channels, so a
            # multi-image call would make a CAM depend on its batch neighbours;
            # one image per call, its masked copies batched by score_batch_size.
            for layer in layers:
                for i, (image, class_index) in enumerate(zip(images, indices)):
                    raw = self._scorecam_maps(image, int(class_index), layer, channels[layer],
                                              max_channels, score_batch_size)
                    cams[layer][i] = normalise_cams(upsample_cams(raw, images.shape[1:-1]))[0]
            return cams
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            step = self._gradient_step(layers)  # eager at first, compiled once it runs again
            raw = step(tf.constant(images[start:stop]), tf.constant(indices[start:stop], tf.int32))
            for layer, maps in zip(layers, raw):
                cams[layer][start:stop] = normalise_cams(upsample_cams(maps.numpy(), images.shape[1:-1]))
        return cams

    def _spatial_channels(self, layer: str) -> int:
        """Channels of ``layer``'s feature maps, after checking it has spatial ones."""
        try:
            layer_shape = self.model.get_layer(layer).output.shape
        except ValueError as error:
            raise ParameterError(f"model has no layer {layer!r} to take the CAM from") from error
        if len(layer_shape) != self.input_rank:
            raise ParameterError(
                f"layer {layer!r} has output shape {tuple(layer_shape)}, not a spatial feature map "
                f"of rank {self.input_rank}"
            )
        return int(layer_shape[-1])


def compute_cam(
    model: keras.Model,
    images: np.ndarray,
    class_indices,
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
            :func:`last_conv_layer`.
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
    class_indices,
    layers: Sequence[str],
    method: str = "gradcam",
    **cam_options,
) -> dict[str, np.ndarray]:
    """CAMs of the same images taken at several layers (gradient methods: in one pass).

    Args:
        model: Functional Keras model.
        images: Model-ready inputs.
        class_indices: One class index or one per image.
        layers: Layer names with spatial outputs.
        method: Key of :data:`METHODS`.
        **cam_options: batch_size, max_channels, score_batch_size of :func:`compute_cam`.

    Returns:
        Layer name -> CAM array at the input's spatial size.
    """
    return CamExplainer(model, method).cams_at_layers(images, class_indices, layers, **cam_options)


def group_average_cam(
    model: keras.Model,
    images: np.ndarray,
    class_indices,
    layers: Sequence[str],
    method: str = "gradcam",
    **cam_options,
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
        method: Key of :data:`METHODS`.
        **cam_options: batch_size, max_channels, score_batch_size of :func:`compute_cam`.

    Returns:
        float32 array (N, H, W) or (N, H, W, D) in [0, 1].
    """
    if not layers:
        raise ParameterError("group_average_cam needs at least one layer name")
    return mean_cam(layer_cams(model, images, class_indices, layers, method, **cam_options).values())


def mean_cam(cams: Iterable[np.ndarray]) -> np.ndarray:
    """Mean of CAMs already at one size and in [0, 1], normalised again to [0, 1] (see :func:`group_average_cam`)."""
    return normalise_cams(np.mean(np.stack(list(cams)), axis=0))


def _rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Greyscale or RGB image -> RGB uint8; floats with maximum <= 1 are taken as [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.copy()
    image = image.astype(np.float32)
    if image.max(initial=0.0) <= 1.0:
        image = image * 255.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _cam_at(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2D CAM resized (bilinear) to height x width."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise DataError(f"cam must be a 2D map (H, W), got shape {cam.shape}; take a slice of a 3D CAM")
    if cam.shape != (height, width):
        cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
    return cam


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped CAM over an image.

    Args:
        image: Greyscale (H, W) / (H, W, 1) or RGB (H, W, 3); uint8, float in
            [0, 255], or float in [0, 1] (any float image with maximum <= 1).
        cam: 2D map in [0, 1]; resized to the image when sizes differ.
        alpha: Weight of the heatmap (0 = image only, 1 = heatmap only).
        colormap: Any matplotlib colormap name.

    Returns:
        RGB uint8 array (H, W, 3).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = _rgb_uint8(image).astype(np.float32)
    cam = np.clip(_cam_at(cam, *rgb.shape[:2]), 0.0, 1.0)
    heat = matplotlib.colormaps[colormap](cam)[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb + alpha * heat
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def cam_region(
    cam: np.ndarray, fraction: float = 0.5
) -> tuple[list[np.ndarray], tuple[int, int, int, int] | None]:
    """Outline the region where a 2D CAM reaches a fraction of its peak.

    Args:
        cam: 2D map.
        fraction: Threshold as a fraction of the map's maximum (cam >= fraction * max).

    Returns:
        (contours, box): the outer contours of the thresholded map
        (cv2.findContours) and the bounding box (x0, y0, x1, y1), inclusive
        pixel coordinates, of the largest contour; ``([], None)`` for a map
        without a positive peak.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise DataError(f"cam must be a 2D map (H, W), got shape {cam.shape}")
    peak = float(cam.max(initial=0.0))
    if peak <= 0.0:
        return [], None
    region = (cam >= fraction * peak).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Rank by enclosed area, then by box area: a one-pixel-wide region encloses no area.
    largest = max(contours, key=lambda c: (cv2.contourArea(c), np.prod(cv2.boundingRect(c)[2:])))
    x, y, w, h = cv2.boundingRect(largest)
    return list(contours), (x, y, x + w - 1, y + h - 1)


def draw_contours(
    image: np.ndarray,
    cam: np.ndarray,
    fraction: float = 0.5,
    color: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """Draw the CAM's region contours and the largest region's box on the image.

    The contour map of the multi-organ paper: the outline of the highlighted
    region and its bounding box in green, beside the Grad-CAM heatmap.

    Args:
        image: Greyscale or RGB image (see :func:`overlay`).
        cam: 2D map; resized to the image when sizes differ.
        fraction: Threshold of :func:`cam_region`.
        color: RGB colour of contour and box.

    Returns:
        RGB uint8 array (H, W, 3).
    """
    rgb = _rgb_uint8(image)
    contours, box = cam_region(_cam_at(cam, *rgb.shape[:2]), fraction)
    if box is not None:
        cv2.drawContours(rgb, contours, -1, color, thickness=1)
        cv2.rectangle(rgb, box[:2], box[2:], color, thickness=1)
    return rgb
