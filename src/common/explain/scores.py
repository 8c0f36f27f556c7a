"""Scores for explanations: do the CAMs point at the known lesion?

The papers only show heatmaps; on phantoms the lesion masks are known, so the
study scores each CAM against its mask:

* :func:`pointing_game` (Zhang et al., 2018): a hit when the CAM's peak lies in
  the lesion or within a tolerance of it (15 px at 224 px, scaled to the image);
* :func:`energy_share`: the share of the CAM's total mass inside the lesion
  (the energy-based pointing game of the Score-CAM paper);
* :func:`iou` / :func:`iou_curve`: overlap of the thresholded CAM with the lesion;
* :func:`randomisation_check`: the model-parameter randomisation test of
  Adebayo et al. (2018): a faithful explanation changes when the weights do;
* :func:`score_explanations`: the three scores with 95% confidence intervals.

All functions take stacks of 2D maps (N, H, W) or 3D maps (N, H, W, D) and
masks of the same shape (bool, 0/1 or 0/255). The per-image scores are defined
only for images with a lesion: they reject empty masks, and
:func:`score_explanations` drops those images (normal cases) and reports how
many it dropped. Quantus was considered and not used: its 0.6 release pulls in
opencv-python (which clashes with opencv-python-headless over the ``cv2``
package) and scikit-image, and its pointing game has no distance tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage, stats

from common.errors import DataError, ParameterError
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import mean_estimate, wilson_interval
from common.explain.cams import CamExplainer

IOU_CURVE_FRACTIONS = np.linspace(0.05, 0.95, 19)
"""Default thresholds (fractions of each CAM's maximum) of :func:`iou_curve`."""


def _maps_and_masks(
    cams: npt.ArrayLike, masks: npt.ArrayLike, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check a stack of CAMs against a stack of masks; return (float32 cams, bool masks)."""
    maps = np.asarray(cams, dtype=np.float32)
    lesions = np.asarray(masks) > 0
    if maps.ndim not in (3, 4):
        raise DataError(f"cams must be a stack (N, H, W) or (N, H, W, D), got shape {maps.shape}")
    if lesions.shape != maps.shape:
        raise DataError(
            f"masks shape {lesions.shape} differs from cams shape {maps.shape}; resize the masks to the "
            "CAM size with nearest-neighbour interpolation"
        )
    if not np.isfinite(maps).all() or (maps < 0).any():
        raise DataError("cams must be finite and non-negative (compute_cam returns maps in [0, 1])")
    if not allow_empty:
        empty = np.flatnonzero(~lesions.reshape(len(lesions), -1).any(axis=1))
        if empty.size:
            raise DataError(
                f"masks of images {empty.tolist()} are empty; explanation scores need a lesion: drop "
                "those images (score_explanations does so and reports the count)"
            )
    return maps, lesions


def pointing_game(
    cams: npt.ArrayLike, masks: npt.ArrayLike, tolerance_px: float = 15, reference_size: int = 224
) -> np.ndarray:
    """Pointing-game hits: the CAM's peak lies in the lesion or near it.

    The tolerance is ``tolerance_px`` at an image of ``reference_size`` pixels,
    scaled by the larger in-plane side of the maps (so 15 px at 224 is 8.6 px
    at 128); for 3D maps the distance is in voxels. When several pixels share
    the peak value all of them must be within the tolerance, so a flat map
    (which points nowhere) scores a miss.

    Args:
        cams: Maps (N, H, W) or (N, H, W, D).
        masks: Lesion masks of the same shape, none empty.
        tolerance_px: Tolerance in pixels at the reference size.
        reference_size: Image side the tolerance refers to.

    Returns:
        bool array (N,).
    """
    cams, masks = _maps_and_masks(cams, masks)
    tolerance = tolerance_px * max(cams.shape[1:3]) / reference_size
    hits = np.empty(len(cams), dtype=bool)
    for i, (cam, mask) in enumerate(zip(cams, masks)):
        distance_to_lesion = ndimage.distance_transform_edt(~mask)
        hits[i] = distance_to_lesion[cam == cam.max()].max() <= tolerance
    return hits


def energy_share(cams: npt.ArrayLike, masks: npt.ArrayLike) -> np.ndarray:
    """Share of each CAM's total mass that falls inside the lesion mask.

    Args:
        cams: Non-negative maps (N, H, W) or (N, H, W, D).
        masks: Lesion masks of the same shape, none empty.

    Returns:
        float array (N,) in [0, 1]; 0 for an all-zero map.
    """
    cams, masks = _maps_and_masks(cams, masks)
    flat_cams = cams.reshape(len(cams), -1).astype(np.float64)
    inside = (flat_cams * masks.reshape(len(masks), -1)).sum(axis=1)
    total = flat_cams.sum(axis=1)
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def cam_regions(cams: npt.ArrayLike, fraction: float = 0.5) -> np.ndarray:
    """The region of each map where it reaches ``fraction`` of its maximum (the region :func:`iou` scores).

    Args:
        cams: Maps (N, ...).
        fraction: Threshold as a fraction of each map's maximum.

    Returns:
        bool array of the maps' shape; an all-zero (or all-negative) map has an empty region.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ParameterError(f"fraction must lie in [0, 1], got {fraction}")
    cams = np.asarray(cams, dtype=np.float32)  # as the scores compare them
    peaks = cams.reshape(len(cams), -1).max(axis=1).reshape((-1,) + (1,) * (cams.ndim - 1))
    return (cams >= fraction * peaks) & (peaks > 0)


def iou(cams: npt.ArrayLike, masks: npt.ArrayLike, fraction: float = 0.5) -> np.ndarray:
    """Intersection over union of the region cam >= fraction * max(cam) with the mask.

    Args:
        cams: Maps (N, H, W) or (N, H, W, D).
        masks: Lesion masks of the same shape, none empty.
        fraction: Threshold as a fraction of each map's maximum.

    Returns:
        float array (N,); an all-zero map has an empty region and scores 0.
    """
    cams, masks = _maps_and_masks(cams, masks)
    regions = cam_regions(cams, fraction).reshape(len(cams), -1)
    flat_masks = masks.reshape(len(masks), -1)
    intersection = (regions & flat_masks).sum(axis=1)
    union = (regions | flat_masks).sum(axis=1)
    return intersection / union


def iou_curve(
    cams: npt.ArrayLike, masks: npt.ArrayLike, fractions: npt.ArrayLike = IOU_CURVE_FRACTIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean IoU over images as a function of the CAM threshold fraction.

    Args:
        cams: Maps (N, H, W) or (N, H, W, D).
        masks: Lesion masks of the same shape, none empty.
        fractions: Threshold fractions of each map's maximum.

    Returns:
        (fractions, mean IoU per fraction).
    """
    fractions = np.asarray(fractions, dtype=float)
    return fractions, np.array([iou(cams, masks, fraction).mean() for fraction in fractions])


def randomised_copy(model: keras.Model, n_layers: int | None, seed: int) -> keras.Model:
    """A copy of the model with its top ``n_layers`` weighted layers re-initialised at once (None: all).

    The end state of :func:`randomisation_check`'s cascade, in one step: each
    layer's weights are redrawn from its own initializers, seeded from ``seed``.
    The given model is not touched.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    weighted_layers = [candidate for candidate in reversed(copy.layers) if candidate.weights]
    if n_layers is not None:
        if n_layers < 1:
            raise ParameterError(f"n_layers must be >= 1 or None, got {n_layers}")
        weighted_layers = weighted_layers[:n_layers]
    for layer, layer_seed in zip(weighted_layers, np.random.SeedSequence(seed).spawn(len(weighted_layers))):
        _reinitialise(layer, layer_seed)
    return copy


def spearman_per_image(trained: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """Rank correlation of each pair of maps (N,); 0 where either map is constant."""
    return np.array([_spearman(a, b) for a, b in zip(trained, randomised)])


def _spearman(trained: np.ndarray, randomised: np.ndarray) -> float:
    """Rank correlation of two maps; 0 when either is constant (it carries no ranking)."""
    trained, randomised = trained.ravel(), randomised.ravel()
    if np.ptp(trained) == 0 or np.ptp(randomised) == 0:
        return 0.0
    return float(stats.spearmanr(trained, randomised).statistic)


def _reinitialise(layer: keras.layers.Layer, seed_sequence: np.random.SeedSequence) -> None:
    """Redraw every weight of a layer from the layer's own initializer, seeded."""
    for variable, child_seed in zip(layer.weights, seed_sequence.spawn(len(layer.weights))):
        # Keras names initializers after their weight: kernel_initializer, or
        # depthwise_initializer for depthwise_kernel.
        initializer = getattr(layer, f"{variable.name}_initializer", None) or getattr(
            layer, f"{variable.name.removesuffix('_kernel')}_initializer", None
        )
        if initializer is None:
            raise ParameterError(
                f"layer {layer.name!r} has no initializer for its weight {variable.name!r}; "
                "cannot re-initialise it for the randomisation check"
            )
        config = initializer.get_config()
        if "seed" in config:
            config["seed"] = int(child_seed.generate_state(1)[0])
        fresh = type(initializer).from_config(config)
        variable.assign(fresh(tuple(variable.shape), dtype=variable.dtype))


def randomisation_check(
    model: keras.Model,
    images: np.ndarray,
    class_indices: int | Sequence[int] | np.ndarray,
    method: str = "gradcam",
    n_layers: int | None = None,
    seed: int = 0,
    layer: str | None = None,
    **cam_options: Any,
) -> list[dict]:
    """Cascading model-parameter randomisation test (Adebayo et al., 2018).

    A clone of the model (the given model is not touched) has its weighted
    layers re-initialised one at a time from the output down, cumulatively,
    each from its own initializers with a seed derived from ``seed``. After
    every step the CAMs are recomputed at the same layer and compared with the
    trained model's CAMs by Spearman rank correlation. A faithful explanation decorrelates as layers are randomised;
    one that stays correlated reflects the input, not the model.

    Args:
        model: Functional Keras model.
        images: Model-ready inputs (N, ...).
        class_indices: One class index or one per image (kept fixed).
        method: Key of :data:`common.explain.methods.METHODS`.
        n_layers: Randomise only the top ``n_layers`` weighted layers; None = all.
        seed: Seed of the re-initialisations.
        layer: CAM layer; None -> :func:`common.explain.layers.last_conv_layer`.
        **cam_options: batch_size, max_channels, score_batch_size of
            :func:`common.explain.cams.compute_cam`.

    Returns:
        One dict per randomisation step: ``step`` (1 = output layer only),
        ``layer`` (name of the layer randomised at this step), ``spearman``
        (mean over images), ``spearman_per_image`` and ``n_constant_maps``
        (images whose trained or randomised CAM is flat, counted as correlation 0).
    """
    # The explainer shares the layers of the model it is given: give it a copy to re-initialise.
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    explainer = CamExplainer(copy, method)
    cam_layer = explainer.default_layer if layer is None else layer
    trained = explainer.cams(images, class_indices, cam_layer, **cam_options)
    weighted_layers = [candidate for candidate in reversed(explainer.model.layers) if candidate.weights]
    if n_layers is not None:
        if n_layers < 1:
            raise ParameterError(f"n_layers must be >= 1 or None, got {n_layers}")
        weighted_layers = weighted_layers[:n_layers]
    steps = []
    step_seeds = np.random.SeedSequence(seed).spawn(len(weighted_layers))
    for step, (randomised_layer, step_seed) in enumerate(zip(weighted_layers, step_seeds), start=1):
        _reinitialise(randomised_layer, step_seed)
        randomised = explainer.cams(images, class_indices, cam_layer, **cam_options)
        correlations = [_spearman(a, b) for a, b in zip(trained, randomised)]
        n_flat = sum(np.ptp(a) == 0 or np.ptp(b) == 0 for a, b in zip(trained, randomised))
        steps.append(
            {
                "step": step,
                "layer": randomised_layer.name,
                "spearman": float(np.mean(correlations)),
                "spearman_per_image": correlations,
                "n_constant_maps": int(n_flat),
            }
        )
    return steps


def score_explanations(
    cams: npt.ArrayLike,
    masks: npt.ArrayLike,
    seed: int = 0,
    n_resamples: int = 1000,
    tolerance_px: float = 15,
    reference_size: int = 224,
    fraction: float = 0.5,
) -> dict:
    """Pointing game, energy share and IoU of a set of CAMs with 95% CIs.

    Images with empty masks (no lesion, e.g. normal cases) are dropped first;
    each entry reports ``n`` (images scored) and ``n_skipped_empty_mask``.
    Pointing-game CI: Wilson interval of the hit rate (scipy binomtest).
    Energy share and IoU: percentile bootstrap of the mean (seeded).

    Args:
        cams: Maps (N, H, W) or (N, H, W, D).
        masks: Masks of the same shape (empty ones allowed).
        seed: Bootstrap seed.
        n_resamples: Bootstrap resamples.
        tolerance_px: Pointing-game tolerance at ``reference_size``.
        reference_size: See :func:`pointing_game`.
        fraction: IoU threshold fraction.

    Returns:
        ``{"pointing_game": {"value", "ci95", "n", "n_skipped_empty_mask"},
        "energy_share": {...}, "iou": {...}}``; values NaN when no image has a lesion.
    """
    cams, masks = _maps_and_masks(cams, masks, allow_empty=True)
    has_lesion = masks.reshape(len(masks), -1).any(axis=1)
    cams, masks = cams[has_lesion], masks[has_lesion]
    n_scored, n_skipped = int(has_lesion.sum()), int((~has_lesion).sum())
    if n_scored:
        hits = pointing_game(cams, masks, tolerance_px, reference_size)
        pointing = Estimate(float(hits.mean()), *wilson_interval(int(hits.sum()), n_scored))
        shares, overlaps = energy_share(cams, masks), iou(cams, masks, fraction)
    else:
        pointing = Estimate.undefined()
        shares = overlaps = np.empty(0)
    scores = {
        "pointing_game": pointing,
        "energy_share": mean_estimate(shares, seed, n_resamples),
        "iou": mean_estimate(overlaps, seed, n_resamples),
    }
    return {
        name: estimate.with_count(n_scored).to_record() | {"n_skipped_empty_mask": n_skipped}
        for name, estimate in scores.items()
    }


def randomisation_table(
    model: keras.Model,
    images: np.ndarray,
    class_indices: np.ndarray,
    n_layers: int | None,
    seed: int,
    layer: str | None = None,
    method: str = "gradcam",
) -> pd.DataFrame:
    """:func:`randomisation_check` as the table a notebook shows: step, layer randomised, Spearman.

    Args:
        model: Trained functional model (not modified).
        images: Model-ready inputs, a handful (each step recomputes every CAM).
        class_indices: The class explained, one per image.
        n_layers: Randomise the top ``n_layers`` weighted layers (the run's ``randomisation_layers``).
        seed: Seed of the re-initialisations (the run's seed).
        layer: CAM layer; None -> the last convolutional layer.
        method: CAM method.

    Returns:
        One row per step with columns ``step``, ``layer`` and ``spearman``.
    """
    steps = randomisation_check(model, images, class_indices, method, n_layers=n_layers, seed=seed, layer=layer)
    return pd.DataFrame(steps)[["step", "layer", "spearman"]]
