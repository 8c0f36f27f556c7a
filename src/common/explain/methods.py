"""The CAM methods: one base, and the one thing each method does its own way.

Every method makes a layer's map the same way, ``ReLU(sum_k w_k A_k)`` over
the layer's feature maps ``A_k`` (:meth:`CamMethod.weighted_sum`); they differ
in the channel weights ``w_k``:

* the gradient methods (:class:`GradientMethod`) share one compiled step per
  layer: a forward pass to the feature maps ``A`` and the class score, and the
  score's gradient ``G`` with respect to ``A``, in a ``tf.function`` over a
  whole batch. Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM, XGrad-CAM and
  Eigen-CAM differ only in :meth:`GradientMethod.channel_weights` made from
  ``A`` and ``G``: a weight per channel (N, 1.., K), or per channel and
  position (N, ..., K) for the element-wise methods (HiResCAM, LayerCAM).
  Eigen-CAM reads no gradient; it shares the step because the step costs
  little more than the forward pass it needs anyway. Running the gradient
  compiled rather than eagerly is what lets a batch of 32 images cost much
  less than 32 single images on a CPU (see ``camstudy bench``).
* Score-CAM (:class:`ScoreCam`) weights channels by the model's probability on
  inputs masked by each (upsampled) feature map, with tf-keras-vis 0.8.7's
  channel cap (``max_N``), every image's masked copies in shared prediction calls.
* The random baseline (:class:`RandomMap`) is no method: a seeded uniform map
  at the layer's resolution, upsampled like every CAM, so every score has the
  floor a map that knows nothing reaches.

At a layer followed only by global average pooling and a dense head (the last
convolutional layer of every model here), the gradient is the same at every
position of a channel, so HiResCAM and XGrad-CAM equal Grad-CAM there and
LayerCAM is Grad-CAM without its negative channels; they differ at finer layers.

Methods run on a view of the model whose output layer is linear
(:func:`common.explain.cams.logit_model`). Scores: softmax (or linear) outputs
with C >= 2 units give the target class's logit; a single sigmoid unit gives
the logit ``z`` for class 1 and ``-z`` for class 0. Score-CAM weights channels
by the softmax of the model outputs, which is the constant 1 for a single
unit, so for Score-CAM the view gets the two logits ``[0, z]`` whose softmax is
exactly ``[1 - sigmoid(z), sigmoid(z)]``.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from common.errors import ParameterError
from common.explain import forward

RawMaps = Iterator[tuple[slice, dict[str, np.ndarray]]]
"""Raw maps chunk by chunk: (the images' rows, layer -> their maps at layer resolution)."""


@dataclasses.dataclass(frozen=True)
class CamOptions:
    """How CAMs are batched and capped (see :func:`common.explain.cams.compute_cam`).

    Attributes:
        batch_size: Images per compiled Grad-CAM / Grad-CAM++ step.
        max_channels: Score-CAM only: at most this many feature maps (the
            largest spatial variance), None for all.
        score_batch_size: Score-CAM only: batch size of its masked forward passes.
    """

    batch_size: int = 32
    max_channels: int | None = None
    score_batch_size: int = 32

    def __post_init__(self) -> None:
        """Check the sizes.

        Raises:
            ParameterError: A batch size below 1, or ``max_channels`` below 1.
        """
        if self.batch_size < 1 or self.score_batch_size < 1:
            raise ParameterError(f"batch sizes must be >= 1, got {self.batch_size} and {self.score_batch_size}")
        if self.max_channels is not None and self.max_channels < 1:
            raise ParameterError(f"max_channels must be >= 1 or None (all channels), got {self.max_channels}")


def _spatial_sum(tensor: tf.Tensor) -> tf.Tensor:
    """Sum over the spatial axes of a (N, ..., K) feature tensor, keeping them as size 1."""
    return tf.reduce_sum(tensor, axis=list(range(1, len(tensor.shape) - 1)), keepdims=True)


def gradcam_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): a channel weighs the spatial mean of its gradient.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: The class score's gradients ``G`` with respect to ``A``.

    Returns:
        Channel weights (N, 1.., K).
    """
    return tf.reduce_mean(gradients, axis=list(range(1, len(gradients.shape) - 1)), keepdims=True)


def gradcam_plus_plus_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018): positive gradients weighted per position.

    With the exponential score ``exp(S)`` of the paper, the higher derivatives
    are ``exp(S) G^2`` and ``exp(S) G^3``, and the position weights are
    ``alpha = G^2 / (2 G^2 + sum(A) G^3)`` (``exp(S)`` cancels). The remaining
    factor ``exp(S)`` in front of ``ReLU(G)`` is the same for every channel of
    an image, so it is left out (the map is normalised afterwards, and the
    exponential can overflow). The alphas of each channel are normalised to sum
    to one, as in tf-keras-vis 0.8.7, whose maps this reproduces.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: The class score's gradients ``G`` with respect to ``A``.

    Returns:
        Channel weights (N, 1.., K).
    """
    squared = tf.square(gradients)
    alphas = tf.math.divide_no_nan(squared, 2.0 * squared + _spatial_sum(features) * squared * gradients)
    alphas = tf.math.divide_no_nan(alphas, _spatial_sum(alphas))
    return _spatial_sum(alphas * tf.nn.relu(gradients))


def hirescam_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """HiResCAM (Draelos & Carin 2020): each position weighs its own gradient, ``ReLU(sum_k G_k * A_k)``.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: The class score's gradients ``G`` with respect to ``A``.

    Returns:
        Weights per channel and position (N, ..., K): the gradients themselves.
    """
    return gradients


def layercam_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """LayerCAM (Jiang et al. 2021): each position weighs its positive gradient, ``ReLU(sum_k ReLU(G_k) * A_k)``.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: The class score's gradients ``G`` with respect to ``A``.

    Returns:
        Weights per channel and position (N, ..., K).
    """
    return tf.nn.relu(gradients)


def xgradcam_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """XGrad-CAM (Fu et al. 2020): a channel weighs its gradient averaged with its own activations as weights.

    ``w_k = sum(A_k * G_k) / sum(A_k)``; a channel that is zero everywhere weighs 0.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: The class score's gradients ``G`` with respect to ``A``.

    Returns:
        Channel weights (N, 1.., K).
    """
    return tf.math.divide_no_nan(_spatial_sum(features * gradients), _spatial_sum(features))


def eigencam_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): the feature maps projected on their first principal direction.

    Each image's maps, as a (positions x K) matrix, are decomposed by SVD (not
    centred, as in the paper); the map is their projection on the first right
    singular vector. An SVD's sign is arbitrary: the one that makes the
    projection's sum positive is taken (for non-negative maps, the vector
    whose entries are all non-negative). The class and the gradients play no
    part: Eigen-CAM shows what the layer responds to most, whatever the class.

    Args:
        features: Feature maps ``A`` (N, ..., K).
        gradients: Unused.

    Returns:
        Channel weights (N, 1.., K).
    """
    n_channels = tf.shape(features)[-1]
    flat = tf.reshape(features, [tf.shape(features)[0], -1, n_channels])
    _, _, right = tf.linalg.svd(flat)  # right: (N, K, K), the singular vectors in its columns
    first = right[..., 0]
    projected = tf.reduce_sum(tf.linalg.matvec(flat, first), axis=1)
    first = first * tf.where(projected < 0, -1.0, 1.0)[:, None]
    return tf.reshape(first, [-1] + [1] * (len(features.shape) - 2) + [n_channels])


class CamMethod(abc.ABC):
    """A CAM method bound to a model's logit view.

    Attributes:
        name: The method's key in :data:`METHODS`.
        model: The logit view the maps are computed on.
        binary: True when the view ends in a single logit (a sigmoid model).
    """

    name: ClassVar[str]
    baseline: ClassVar[bool] = False
    """True for a reference map that explains nothing (:class:`RandomMap`): scored, never offered to explain."""

    def __init__(self, model: keras.Model, binary: bool) -> None:
        """Bind the method to a logit view.

        Args:
            model: :func:`common.explain.cams.logit_model` of the explained model.
            binary: True when ``model`` ends in a single logit.
        """
        self.model = model
        self.binary = binary

    @staticmethod
    def weighted_sum(features: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Every method's map: ``ReLU(sum_k w_k A_k)``, a (N, ...) map from (N, ..., K) features.

        ``weights`` is (N, 1.., K) for a weight per channel, or (N, ..., K) for
        a weight per channel and position.
        """
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))

    @abc.abstractmethod
    def raw_maps(
        self, images: np.ndarray, classes: np.ndarray, layers: tuple[str, ...], options: CamOptions
    ) -> RawMaps:
        """Raw maps of the images at each layer's own resolution, chunk by chunk.

        Args:
            images: float32 model inputs (N, ..., C), already checked.
            classes: One class index per image, already checked.
            layers: Distinct layer names with spatial outputs.
            options: Batching and channel cap.

        Yields:
            ``(rows, {layer: maps})``: a slice of the images and their raw maps.
        """


class _GradientStep:
    """The batch step of one or more gradient methods at some layers: images, classes -> raw maps.

    One forward and one backward pass give every layer's feature maps and
    gradients; each method's channel weights (``weighs``) then make its map,
    so several methods cost about what one does.

    An object rather than a closure: TensorFlow's retracing detector counts the traces of
    every ``tf.function`` made from the same function code together, so the steps of many
    explainers (one model view each, every one traced once) looked to it like one function
    traced again and again ("triggered tf.function retracing"). An object is counted on its
    own, so the warning now means what it says: this very step was traced again.
    """

    def __init__(self, probe: keras.Model, weighs: tuple[Callable, ...], combine: Callable, binary: bool) -> None:
        """Keep the probe (inputs -> [feature maps per layer], logits), the methods' weights and how maps are made."""
        self.probe, self.weighs, self.combine, self.binary = probe, weighs, combine, binary

    def __call__(self, images: tf.Tensor, classes: tf.Tensor) -> list[tf.Tensor]:
        """Raw maps (N, ...) of the images for their classes, layer by layer and, within a layer, method by method."""
        with tf.GradientTape() as tape:
            features, logits = self.probe(images, training=False)
            if self.binary:  # +z for class 1, -z for class 0
                scores = logits[:, 0] * tf.cast(2 * classes - 1, logits.dtype)
            else:
                scores = tf.gather(logits, classes, axis=1, batch_dims=1)
        # Images are independent, so the gradient of the summed scores is each image's own.
        gradients = tape.gradient(scores, features)
        maps: list[tf.Tensor] = []
        for feature, gradient in zip(features, gradients):
            feature, gradient = tf.cast(feature, tf.float32), tf.cast(gradient, tf.float32)
            maps.extend(self.combine(feature, weigh(feature, gradient)) for weigh in self.weighs)
        return maps


class GradientMethod(CamMethod):
    """A method whose channel weights come from the feature maps and the score's gradients.

    Attributes:
        compile_after_batches: A layer's step is compiled once it has run this
            many batches eagerly (0: always compiled).
        layer_steps: Layer tuple -> ``{"step", "batches", "compiled"}``, the
            steps made so far.
    """

    def __init__(self, model: keras.Model, binary: bool, compile_after_batches: int = 1) -> None:
        """Bind the method to a logit view.

        Args:
            model: The logit view.
            binary: True when ``model`` ends in a single logit.
            compile_after_batches: See :attr:`compile_after_batches`; the maps
                are the same either way.
        """
        super().__init__(model, binary)
        self.compile_after_batches = compile_after_batches
        self.layer_steps: dict[tuple[str, ...], dict[str, Any]] = {}

    @staticmethod
    @abc.abstractmethod
    def channel_weights(features: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
        """Channel weights ``w (N, 1.., K)`` from feature maps ``A`` and gradients ``G`` (float32)."""

    def _make_step(self, layers: tuple[str, ...]) -> _GradientStep:
        """The eager batch step: images, classes -> raw CAM per layer, from one forward and backward pass."""
        probe = keras.Model(
            self.model.inputs, [[self.model.get_layer(layer).output for layer in layers], self.model.outputs[0]]
        )
        return _GradientStep(probe, (self.channel_weights,), self.weighted_sum, self.binary)

    def gradient_step(self, layers: tuple[str, ...]) -> Callable[[tf.Tensor, tf.Tensor], list[tf.Tensor]]:
        """The batch step at ``layers``, counted as one more batch run.

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
        if layers not in self.layer_steps:
            self.layer_steps[layers] = {"step": self._make_step(layers), "batches": 0, "compiled": False}
        entry = self.layer_steps[layers]
        if entry["batches"] >= self.compile_after_batches and not entry["compiled"]:
            entry["compiled"] = True
            image_spec = tf.TensorSpec((None, *self.model.inputs[0].shape[1:]), tf.float32)
            entry["step"] = tf.function(entry["step"], input_signature=[image_spec, tf.TensorSpec((None,), tf.int32)])
        entry["batches"] += 1
        return entry["step"]

    def raw_maps(
        self, images: np.ndarray, classes: np.ndarray, layers: tuple[str, ...], options: CamOptions
    ) -> RawMaps:
        """Every layer's raw maps from one pass per batch of ``options.batch_size`` images."""
        for start in range(0, len(images), options.batch_size):
            stop = start + options.batch_size
            step = self.gradient_step(layers)  # eager at first, compiled once it runs again
            raw = step(tf.constant(images[start:stop]), tf.constant(classes[start:stop], tf.int32))
            yield slice(start, stop), {layer: maps.numpy() for layer, maps in zip(layers, raw)}


def several_gradient_maps(
    model: keras.Model,
    binary: bool,
    images: np.ndarray,
    classes: np.ndarray,
    layer: str,
    names: tuple[str, ...],
    batch_size: int,
) -> RawMaps:
    """Raw maps of several gradient methods at one layer from one pass per batch, run eagerly.

    Args:
        model: The logit view.
        binary: True when ``model`` ends in a single logit.
        images: float32 model inputs, already checked.
        classes: One class index per image, already checked.
        layer: A layer with spatial outputs.
        names: Keys of :data:`METHODS` whose classes are :class:`GradientMethod`.
        batch_size: Images per pass.

    Yields:
        ``(rows, {method: maps})`` at the layer's resolution.

    Raises:
        ParameterError: A name that is not a gradient method.
    """
    chosen = [METHODS.get(name) for name in names]
    if not all(method is not None and issubclass(method, GradientMethod) for method in chosen):
        raise ParameterError(f"not all of {list(names)} are gradient methods ({list(GRADIENT_METHODS)})")
    probe = keras.Model(model.inputs, [[model.get_layer(layer).output], model.outputs[0]])
    weighs = tuple(method.channel_weights for method in chosen)  # type: ignore[union-attr]
    step = _GradientStep(probe, weighs, CamMethod.weighted_sum, binary)
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        raw = step(tf.constant(images[start:stop]), tf.constant(classes[start:stop], tf.int32))
        yield slice(start, stop), {name: maps.numpy() for name, maps in zip(names, raw)}


class GradCam(GradientMethod):
    """Grad-CAM: channel weights :func:`gradcam_weights`."""

    name = "gradcam"
    channel_weights = staticmethod(gradcam_weights)


class GradCamPlusPlus(GradientMethod):
    """Grad-CAM++: channel weights :func:`gradcam_plus_plus_weights`."""

    name = "gradcam++"
    channel_weights = staticmethod(gradcam_plus_plus_weights)


class HiResCam(GradientMethod):
    """HiResCAM: weights per channel and position :func:`hirescam_weights`."""

    name = "hirescam"
    channel_weights = staticmethod(hirescam_weights)


class LayerCam(GradientMethod):
    """LayerCAM: weights per channel and position :func:`layercam_weights`."""

    name = "layercam"
    channel_weights = staticmethod(layercam_weights)


class XGradCam(GradientMethod):
    """XGrad-CAM: channel weights :func:`xgradcam_weights`."""

    name = "xgradcam"
    channel_weights = staticmethod(xgradcam_weights)


class EigenCam(GradientMethod):
    """Eigen-CAM: channel weights :func:`eigencam_weights` (the first principal direction; no gradient read)."""

    name = "eigencam"
    channel_weights = staticmethod(eigencam_weights)


def _two_logit_head(model: keras.Model) -> keras.Model:
    """Turn a single-logit output z into the logits [0, z] (softmax = [1 - sigmoid, sigmoid])."""
    logit = model.outputs[0]
    pair = keras.ops.concatenate([keras.ops.zeros_like(logit), logit], axis=-1)
    return keras.Model(model.inputs, pair, name=f"{model.name}_two_logits")


SCORE_BYTES = 256 * 2**20
"""At most this many bytes of masked inputs are made at once by :class:`ScoreCam`."""


class ScoreCam(CamMethod):
    """Score-CAM (Wang et al. 2020): a channel's weight is the class probability of the image masked by its map.

    Per image and layer: the feature maps ``A_k`` (with a channel cap, the
    ``max_channels`` of largest spatial standard deviation, the "Faster
    Score-CAM" selection), each upsampled linearly to the input and scaled to
    [0, 1]; the image times each scaled map goes through the model, and the
    softmax probability of the class is the channel's weight. Every image
    keeps its own channels, so a map never depends on the other images of a
    call; the masked copies of many images share one prediction call (at most
    :data:`SCORE_BYTES` of them at a time), in batches of ``score_batch_size``.
    The maps are tf-keras-vis 0.8.7's ``Scorecam``, image by image (a test
    checks it), which made and predicted each image on its own.
    """

    name = "scorecam"

    def __init__(self, model: keras.Model, binary: bool) -> None:
        """Bind to the logit view (two logits ``[0, z]`` for a single unit, whose softmax is the sigmoid)."""
        super().__init__(model, binary)
        self._scored = _two_logit_head(model) if binary else model
        self._features: dict[str, keras.Model] = {}

    def _feature_model(self, layer: str) -> keras.Model:
        """Inputs -> the layer's feature maps (made once per layer)."""
        if layer not in self._features:
            self._features[layer] = keras.Model(self.model.inputs, self.model.get_layer(layer).output)
        return self._features[layer]

    def _maps(self, images: np.ndarray, classes: np.ndarray, layer: str, kept: int, options: CamOptions) -> np.ndarray:
        """Raw Score-CAMs (n, ...) of some images at one layer's resolution, from ``kept`` channels each."""
        from scipy import ndimage

        features = forward.outputs(self._feature_model(layer), images, options.score_batch_size).astype(np.float32)
        spatial = tuple(range(1, features.ndim - 1))
        if kept < features.shape[-1]:
            spread = features.std(axis=spatial)  # (n, K)
            top = np.argsort(-spread, axis=1, kind="stable")[:, :kept]
            features = np.take_along_axis(features, top.reshape(len(images), *(1,) * len(spatial), kept), axis=-1)
        factors = (1, *(i / f for f, i in zip(features.shape[1:-1], images.shape[1:-1])), 1)
        masks = ndimage.zoom(features, factors, order=1, mode="nearest")
        low, high = masks.min(axis=spatial, keepdims=True), masks.max(axis=spatial, keepdims=True)
        masks = (masks - low) / (high - low + keras.config.epsilon())
        # (n, ..., k) -> (n, k, ..., 1): each image times each of its k scaled maps, on every input channel.
        masks = np.moveaxis(masks, -1, 1)[..., None]
        masked = (images[:, None] * masks).reshape(-1, *images.shape[1:])
        logits = forward.outputs(self._scored, masked, options.score_batch_size)
        probabilities = np.asarray(tf.nn.softmax(logits.astype(np.float32)))
        weights = probabilities[np.arange(len(masked)), np.repeat(classes, kept)].reshape(len(images), kept)
        weights = weights.reshape(len(images), *(1,) * len(spatial), kept)
        return np.asarray(self.weighted_sum(tf.constant(features), tf.constant(weights)))

    def raw_maps(
        self, images: np.ndarray, classes: np.ndarray, layers: tuple[str, ...], options: CamOptions
    ) -> RawMaps:
        """Layer by layer, as many images at a time as :data:`SCORE_BYTES` of masked copies allow."""
        for layer in layers:
            n_channels = int(self.model.get_layer(layer).output.shape[-1])
            kept = n_channels if options.max_channels is None else min(int(options.max_channels), n_channels)
            chunk = max(1, SCORE_BYTES // (kept * images[0].nbytes))
            for start in range(0, len(images), chunk):
                rows = slice(start, min(start + chunk, len(images)))
                yield rows, {layer: self._maps(images[rows], classes[rows], layer, kept, options)}


class RandomMap(CamMethod):
    """The random baseline: uniform random values at the layer's resolution.

    Each image's map is drawn from a generator seeded by ``seed``, the layer's
    name and a digest of the image's bytes: the same image gets the same map
    in any batch and any run, and its content plays no other part. Upsampled
    like every CAM, a coarse layer's random map is smooth, a fine layer's
    speckled: the floor matches the resolution of the methods scored beside it.

    Attributes:
        seed: Seed of the draws.
    """

    name = "random"
    baseline = True

    def __init__(self, model: keras.Model, binary: bool, seed: int = 0) -> None:
        """Bind the baseline to a logit view (read for the layers' shapes only)."""
        super().__init__(model, binary)
        self.seed = seed

    def _one_map(self, image: np.ndarray, layer: str, spatial: tuple[int, ...]) -> np.ndarray:
        """The random map (h, w[, d]) of one image at one layer."""
        digest = hashlib.blake2b(layer.encode() + b"\0" + np.ascontiguousarray(image).tobytes(), digest_size=8)
        key = [self.seed, int.from_bytes(digest.digest(), "little")]
        return np.random.default_rng(key).random(spatial, np.float32)

    def raw_maps(
        self, images: np.ndarray, classes: np.ndarray, layers: tuple[str, ...], options: CamOptions
    ) -> RawMaps:
        """Every layer's random maps, in one chunk."""
        maps = {}
        for layer in layers:
            spatial = tuple(int(size) for size in self.model.get_layer(layer).output.shape[1:-1])
            maps[layer] = np.stack([self._one_map(image, layer, spatial) for image in images])
        yield slice(0, len(images)), maps


METHODS: dict[str, type[CamMethod]] = {
    method.name: method
    for method in (GradCam, GradCamPlusPlus, ScoreCam, HiResCam, LayerCam, XGradCam, EigenCam, RandomMap)
}
"""CAM method name -> its class: ``"gradcam"``, ``"gradcam++"``, ``"scorecam"``, ``"hirescam"``,
``"layercam"``, ``"xgradcam"``, ``"eigencam"``, and the baseline ``"random"``."""
GRADIENT_METHODS = tuple(name for name, method in METHODS.items() if issubclass(method, GradientMethod))
"""The methods that share one forward and backward pass (:func:`several_gradient_maps`)."""


def make_method(name: str, model: keras.Model, binary: bool, compile_after_batches: int = 1) -> CamMethod:
    """Bind the method called ``name`` to a logit view.

    Args:
        name: A key of :data:`METHODS`.
        model: The logit view.
        binary: True when ``model`` ends in a single logit.
        compile_after_batches: Gradient methods only, see :class:`GradientMethod`.

    Raises:
        ParameterError: Unknown method.
    """
    if name not in METHODS:
        raise ParameterError(f"unknown CAM method {name!r}; choose one of {sorted(METHODS)}")
    method = METHODS[name]
    if issubclass(method, GradientMethod):
        return method(model, binary, compile_after_batches)
    return method(model, binary)
