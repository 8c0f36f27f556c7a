"""Faithfulness of explanations: does the model's score follow the map? No lesion mask needed.

Localisation scores (:mod:`common.explain.scores`) ask whether a map points at
the lesion; they need a mask. Faithfulness asks whether the pixels a map ranks
highest are the ones the model's score depends on, which needs only the model
and the image, so it runs on real scans too:

* :func:`deletion_curves` and :func:`insertion_curves` (Petsiuk et al. 2018,
  RISE): remove the pixels in the map's order (most salient first), or restore
  them onto a blurred copy, and follow the class probability; :func:`curve_auc`
  integrates the curve over the fraction of pixels changed. A faithful map has
  a low deletion AUC (the score falls at once) and a high insertion AUC.
* :func:`confidence_change` (Chattopadhyay et al. 2018, the Grad-CAM++ paper):
  the image seen through its map; the average drop of the class probability
  (lower is better) and the share of images whose probability rises.
* :func:`score_faithfulness`: the four with 95% intervals over images.

Where a pixel is "removed" matters (Rong et al. 2022 show how much): RISE
removes to zeros, but zero means black for one model's inputs and the mean
grey for another's (Caffe-style preprocessing subtracts the ImageNet mean), so
here a removed pixel takes its image's mean value per channel, the same for
every model. The insertion canvas is RISE's: the image under a Gaussian blur
(sigma 5 px at 224 px, scaled to the image). Pixels are taken in the map's
order, ties in the order of their position (a stable sort); 3D maps order
voxels the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import keras
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from common.errors import DataError, ParameterError
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import mean_estimate, wilson_interval
from common.explain import forward

Mode = Literal["deletion", "insertion"]

RISE_BLUR_SIGMA_PX = 5.0
"""The insertion canvas' blur at :data:`RISE_REFERENCE_SIZE` (RISE's Gaussian kernel: size 11, sigma 5)."""
RISE_REFERENCE_SIZE = 224


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """How images are perturbed and batched.

    Attributes:
        steps: Points of a deletion or insertion curve after its start: step k
            has changed ``k / steps`` of the pixels.
        batch_size: Perturbed images per forward pass (128: a few hundred images then run eagerly in a few
            calls, faster than tracing the model, see :mod:`common.explain.forward`).
        blur_sigma_px: The insertion canvas' blur in pixels; None: RISE's,
            scaled to the image's larger side.
    """

    steps: int = 16
    batch_size: int = 128
    blur_sigma_px: float | None = None

    def __post_init__(self) -> None:
        """Check the sizes.

        Raises:
            ParameterError: ``steps`` or ``batch_size`` below 1, or a negative blur.
        """
        if self.steps < 1 or self.batch_size < 1:
            raise ParameterError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.blur_sigma_px is not None and self.blur_sigma_px < 0:
            raise ParameterError(f"blur_sigma_px must be >= 0 or None, got {self.blur_sigma_px}")

    def blur_sigma(self, spatial_shape: tuple[int, ...]) -> float:
        """The canvas' blur in pixels for images of ``spatial_shape``."""
        if self.blur_sigma_px is not None:
            return self.blur_sigma_px
        return RISE_BLUR_SIGMA_PX * max(spatial_shape[:2]) / RISE_REFERENCE_SIZE


DEFAULT_PERTURBATION = Perturbation()
"""16 steps, 64 images a pass, RISE's blur."""


def _checked(images: npt.ArrayLike, cams: npt.ArrayLike, classes: npt.ArrayLike) -> tuple[np.ndarray, ...]:
    """(float32 images (N, ..., C), float32 maps (N, ...), int classes (N,)), checked against each other."""
    images = np.asarray(images, dtype=np.float32)
    maps = np.asarray(cams, dtype=np.float32)
    labels = np.asarray(classes)
    if labels.ndim == 0:
        labels = np.full(len(images), int(labels))
    if images.ndim not in (4, 5) or maps.shape != images.shape[:-1]:
        raise DataError(
            f"images must be (N, H, W[, D], C) and cams their spatial shape (N, H, W[, D]); got {images.shape} "
            f"and {maps.shape}"
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ParameterError(f"classes must be one integer or one per image ({len(images)}), got shape {labels.shape}")
    if not np.isfinite(maps).all():
        raise DataError("cams must be finite")
    return images, maps, labels.astype(int)


def class_probability(model: keras.Model, images: np.ndarray, classes: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The model's probability of each image's class.

    Args:
        model: A classifier ending in a softmax (C >= 2 units) or a single sigmoid unit.
        images: Model inputs (N, ..., C).
        classes: One class index per image; for a sigmoid unit, class 1 is the unit's.
        batch_size: Images per forward pass.

    Returns:
        float64 probabilities (N,).
    """
    outputs = forward.outputs(model, images, batch_size).astype(np.float64)
    if outputs.shape[-1] == 1:
        positive = outputs[:, 0]
        return np.where(classes == 1, positive, 1.0 - positive)
    return outputs[np.arange(len(outputs)), classes]


def _fill(images: np.ndarray) -> np.ndarray:
    """Each image's mean per channel, broadcast to its shape: what a removed pixel becomes."""
    spatial = tuple(range(1, images.ndim - 1))
    return np.broadcast_to(images.mean(axis=spatial, keepdims=True), images.shape)


def _canvas(images: np.ndarray, sigma: float) -> np.ndarray:
    """The insertion canvas: each image blurred over its spatial axes (channels and images apart)."""
    if sigma == 0:
        return images.copy()
    sigmas = (0.0,) + (sigma,) * (images.ndim - 2) + (0.0,)
    return ndimage.gaussian_filter(images, sigmas, mode="nearest").astype(np.float32)


def _ranks(maps: np.ndarray) -> np.ndarray:
    """Each pixel's place (0 = most salient) in its map's order, ties by position; shape of ``maps``."""
    flat = maps.reshape(len(maps), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks.reshape(maps.shape)


def _copies(images: np.ndarray, maps: np.ndarray, mode: Mode, setting: Perturbation) -> np.ndarray:
    """Every image's ``steps + 1`` perturbed copies, (N, steps + 1, ...): step k has changed k / steps of the pixels."""
    n_pixels = int(np.prod(maps.shape[1:]))
    changed_after = np.round(np.arange(setting.steps + 1) / setting.steps * n_pixels).astype(int)
    thresholds = changed_after.reshape((1, -1) + (1,) * (maps.ndim - 1))
    changed = (_ranks(maps)[:, None] < thresholds)[..., None]  # (N, steps + 1, ..., 1): every channel of a pixel
    if mode == "deletion":
        copies = np.where(changed, _fill(images)[:, None], images[:, None])
    else:
        copies = np.where(changed, images[:, None], _canvas(images, setting.blur_sigma(maps.shape[1:]))[:, None])
    return copies.astype(np.float32)


def _seen_through(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Each image seen through its map in [0, 1]: ``fill + map * (image - fill)``."""
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise DataError("confidence_change needs maps in [0, 1] (compute_cam returns such)")
    fill = _fill(images)
    return (fill + maps[..., None] * (images - fill)).astype(np.float32)


def _drop_and_rise(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chattopadhyay et al.'s per-image drop ``max(0, Y - O) / Y`` and whether ``O > Y``."""
    drop = np.divide(np.maximum(before - after, 0.0), before, out=np.zeros_like(before), where=before > 0)
    return drop, after > before


def perturbation_curves(
    model: keras.Model,
    images: npt.ArrayLike,
    cams: npt.ArrayLike,
    classes: npt.ArrayLike,
    mode: Mode,
    setting: Perturbation = DEFAULT_PERTURBATION,
) -> np.ndarray:
    """Class probability as pixels are deleted from the image, or inserted into its blurred copy, in map order.

    Args:
        model: The explained classifier (softmax or single sigmoid output).
        images: Model inputs (N, H, W[, D], C).
        cams: One map per image, the images' spatial shape; higher = more salient.
        classes: The class explained, one integer or one per image.
        mode: ``"deletion"`` or ``"insertion"``.
        setting: Steps, batching and blur.

    Returns:
        Probabilities (N, steps + 1); column 0 is the unchanged image (deletion)
        or the blurred canvas (insertion), column ``steps`` the other end.

    Raises:
        ParameterError: An unknown mode or bad classes.
        DataError: Maps that do not match the images.
    """
    if mode not in ("deletion", "insertion"):
        raise ParameterError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    images, maps, labels = _checked(images, cams, classes)
    copies = _copies(images, maps, mode, setting)
    flat = copies.reshape(-1, *copies.shape[2:])
    probabilities = class_probability(model, flat, np.repeat(labels, setting.steps + 1), setting.batch_size)
    return probabilities.reshape(len(images), setting.steps + 1)


def curve_auc(curves: npt.ArrayLike) -> np.ndarray:
    """The area under each curve over the fraction of pixels changed (0 to 1), by the trapezoid rule.

    Args:
        curves: (N, steps + 1) probabilities at evenly spaced fractions.

    Returns:
        One area per curve, in [0, 1] for probabilities.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise DataError(f"curves must be (N, steps + 1) with at least one step, got shape {curves.shape}")
    return np.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), axis=1)


def confidence_change(
    model: keras.Model,
    images: npt.ArrayLike,
    cams: npt.ArrayLike,
    classes: npt.ArrayLike,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's drop in class probability when seen through its map, and whether the probability rose.

    The image seen through a map in [0, 1] keeps each pixel in proportion to
    the map's value and fades the rest to the removed-pixel value (the image's
    mean): ``fill + map * (image - fill)``. Chattopadhyay et al.'s average drop
    is the mean of ``max(0, Y - O) / Y`` (Y: probability of the image, O: of
    the image seen through the map), their increase in confidence the share
    of images with ``O > Y``.

    Args:
        model: The explained classifier.
        images: Model inputs (N, ..., C).
        cams: Maps in [0, 1], the images' spatial shape (:func:`common.explain.cams.compute_cam` gives such).
        classes: The class explained, one integer or one per image.
        batch_size: Images per forward pass.

    Returns:
        ``(drop (N,) in [0, 1], rose (N,) bool)``.
    """
    images, maps, labels = _checked(images, cams, classes)
    both = class_probability(
        model, np.concatenate([images, _seen_through(images, maps)]), np.tile(labels, 2), batch_size
    )
    return _drop_and_rise(both[: len(images)], both[len(images) :])


def per_image_faithfulness(
    model: keras.Model,
    images: npt.ArrayLike,
    cams: npt.ArrayLike,
    classes: npt.ArrayLike,
    setting: Perturbation = DEFAULT_PERTURBATION,
) -> dict[str, np.ndarray]:
    """Every image's deletion AUC, insertion AUC, drop in confidence and whether its confidence rose.

    Args:
        model: The explained classifier.
        images: Model inputs (N, ..., C).
        cams: Maps in [0, 1], one per image.
        classes: The class explained, one integer or one per image.
        setting: Steps, batching and blur of the curves.

    Returns:
        Metric (:data:`~common.explain.metric_names.FAITHFULNESS`) -> (N,) values;
        ``increase_in_confidence`` is boolean.
    """
    return faithfulness_of_maps(model, images, {"map": np.asarray(cams)}, classes, setting)["map"]


MAX_STACKED_BYTES = 256 * 2**20
"""At most this many bytes of perturbed inputs go to one prediction call (:func:`faithfulness_of_maps`)."""


def faithfulness_of_maps(
    model: keras.Model,
    images: npt.ArrayLike,
    maps_by_name: Mapping[str, npt.ArrayLike],
    classes: npt.ArrayLike,
    setting: Perturbation = DEFAULT_PERTURBATION,
    max_bytes: int = MAX_STACKED_BYTES,
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`per_image_faithfulness` of several maps of the same images (one per method, say).

    The perturbed inputs of as many maps as fit ``max_bytes`` go to one
    prediction call: on a model that runs eagerly every call costs a pass of
    Python over every layer, whatever its batch; on a compiled one the calls
    cost little either way.

    Args:
        model: The explained classifier.
        images: Model inputs (N, ..., C).
        maps_by_name: Name -> maps in [0, 1], one per image.
        classes: The class explained, one integer or one per image.
        setting: Steps, batching and blur of the curves.
        max_bytes: Bytes of perturbed inputs per prediction call (at least one map's).

    Returns:
        Name -> metric -> (N,) values.
    """
    images = np.asarray(images, dtype=np.float32)
    n, points = len(images), setting.steps + 1
    per_map = (2 + 2 * points) * images.nbytes
    group = max(1, int(max_bytes // max(per_map, 1)))
    names = list(maps_by_name)
    found: dict[str, dict[str, np.ndarray]] = {}
    for start in range(0, len(names), group):
        chosen = names[start : start + group]
        stacks, labels = [], []
        for name in chosen:
            checked, maps, classes_of = _checked(images, maps_by_name[name], classes)
            curves = [
                _copies(checked, maps, mode, setting).reshape(n * points, *checked.shape[1:])
                for mode in ("deletion", "insertion")
            ]
            stacks += [checked, _seen_through(checked, maps), *curves]
            labels += [classes_of, classes_of, np.repeat(classes_of, points), np.repeat(classes_of, points)]
        probabilities = class_probability(model, np.concatenate(stacks), np.concatenate(labels), setting.batch_size)
        for name, block in zip(chosen, np.split(probabilities, len(chosen))):
            before, after = block[:n], block[n : 2 * n]
            deletion, insertion = block[2 * n :].reshape(2, n, points)
            drop, rose = _drop_and_rise(before, after)
            found[name] = {
                "deletion_auc": curve_auc(deletion),
                "insertion_auc": curve_auc(insertion),
                "average_drop": drop,
                "increase_in_confidence": rose,
            }
    return found


def summarise(values: np.ndarray, seed: int = 0, n_resamples: int = 1000) -> Estimate:
    """The mean of per-image values with its 95% interval and count.

    Boolean values (hits, rises) are a proportion: Wilson's interval, which
    stays honest at 0 and 1; other values a percentile bootstrap of the mean.
    """
    values = np.asarray(values)
    if values.dtype == bool:
        n = len(values)
        estimate = Estimate(float(values.mean()), *wilson_interval(int(values.sum()), n)) if n else Estimate.undefined()
    else:
        estimate = mean_estimate(values, seed, n_resamples)
    return estimate.with_count(len(values))


def score_faithfulness(
    model: keras.Model,
    images: npt.ArrayLike,
    cams: npt.ArrayLike,
    classes: npt.ArrayLike,
    setting: Perturbation = DEFAULT_PERTURBATION,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, dict]:
    """Deletion and insertion AUC, average drop and increase in confidence, each with its 95% interval.

    Means over images (:func:`summarise`): a percentile bootstrap (seeded);
    the increase in confidence, a proportion, with Wilson's interval.

    Args:
        model: The explained classifier.
        images: Model inputs (N, ..., C).
        cams: Maps in [0, 1], one per image.
        classes: The class explained, one integer or one per image.
        setting: Steps, batching and blur of the curves.
        seed: Bootstrap seed.
        n_resamples: Bootstrap resamples.

    Returns:
        Metric -> its :class:`~common.evaluation.estimate.Estimate` record with ``n``; lower is better for
        :data:`~common.explain.metric_names.LOWER_IS_BETTER`, higher for the others.
    """
    per_image = per_image_faithfulness(model, images, cams, classes, setting)
    return {name: summarise(values, seed, n_resamples).to_record() for name, values in per_image.items()}
