"""Contrast-detail analysis: how detection depends on a lesion's size and contrast.

Radiology measures detectability on contrast-detail phantoms (CDMAM): discs of
known diameter and contrast, and for each contrast the smallest disc still
seen. The study's phantoms know every lesion (a mask per image), so the same
question can be put to a network:

1. :func:`lesion_properties` measures each lesion: its size (pixels or voxels,
   fraction of the image, equivalent diameter) and its contrast, the
   contrast-to-noise ratio against a ring of background around it.
2. :func:`contrast_detail` bins the lesion images by size and by contrast
   (quantile edges of the set, so every size bin and every contrast bin holds
   images) and gives, per size × contrast bin, the sensitivity (the share of
   lesion images the model put in their lesion class) and the pointing game,
   each with its Wilson interval, as a :class:`ContrastDetail`.

A run whose sensitivity reaches the ceiling in every bin has not met its
detection limit on this test set: :meth:`ContrastDetail.at_ceiling` says so,
and a harder, test-only stratum (``lesion_scale`` of
:func:`common.data.phantoms.ensure_phantoms`) finds it.

The settings (bins per axis, ring width, ceiling) are study settings passed in
by the caller; the defaults here are the values proposed for the registry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from common.errors import DataError, ParameterError
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import proportion_estimate
from common.evaluation.tables import format_estimate

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_CEILING",
    "DEFAULT_RING_PX",
    "PROPERTY_COLUMNS",
    "ContrastDetail",
    "DetailBin",
    "contrast_detail",
    "lesion_properties",
]

# Proposed registry values (section ``contrast_detail``): bins per axis, the ring's width in
# pixels (voxels) and the sensitivity a bin must reach to count as at the ceiling.
DEFAULT_BINS = 3
DEFAULT_RING_PX = 3
DEFAULT_CEILING = 0.9

PROPERTY_COLUMNS = (
    "size_px",
    "size_fraction",
    "diameter_px",
    "lesion_mean",
    "background_mean",
    "background_sd",
    "contrast",
)
SIZE_LABEL = "lesion diameter (px)"
CONTRAST_LABEL = "|contrast| (CNR)"
MEASURES = ("sensitivity", "pointing_game")


# ----------------------------------------------------------------------------- lesion properties


def _equivalent_diameter(count: int, ndim: int) -> float:
    """Diameter of the disc (2D) or ball (3D) with ``count`` pixels or voxels."""
    if ndim == 2:
        return math.sqrt(4.0 * count / math.pi)
    return (6.0 * count / math.pi) ** (1.0 / 3.0)


def _ring(mask: np.ndarray, ring_px: int) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """The box around ``mask`` padded by ``ring_px``, the mask in it, and the ring in it.

    The ring is the mask dilated ``ring_px`` times by the face-connected
    structuring element, minus the mask; working in the box gives the same ring
    as the whole image (the padding holds every dilation step) at a fraction of
    the cost for a small lesion in a large volume.
    """
    where = np.nonzero(mask)
    box = tuple(
        slice(max(int(axis.min()) - ring_px, 0), min(int(axis.max()) + ring_px + 1, size))
        for axis, size in zip(where, mask.shape)
    )
    inside = mask[box]
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    ring = ndimage.binary_dilation(inside, structure=structure, iterations=ring_px) & ~inside
    return box, inside, ring


def _one_lesion(image: np.ndarray, mask: np.ndarray, ring_px: int) -> dict[str, float]:
    """The properties of one image's lesion (NaN throughout for an empty mask)."""
    count = int(mask.sum())
    if count == 0:
        return dict.fromkeys(PROPERTY_COLUMNS, math.nan)
    box, inside, ring = _ring(mask, ring_px)
    values = image[box]
    lesion_mean = float(values[inside].mean())
    background = values[ring]
    background_mean = float(background.mean()) if background.size else math.nan
    background_sd = float(background.std(ddof=1)) if background.size > 1 else math.nan
    contrast = (lesion_mean - background_mean) / background_sd if background_sd > 0 else math.nan
    return {
        "size_px": float(count),
        "size_fraction": count / mask.size,
        "diameter_px": _equivalent_diameter(count, mask.ndim),
        "lesion_mean": lesion_mean,
        "background_mean": background_mean,
        "background_sd": background_sd,
        "contrast": contrast,
    }


def lesion_properties(images, masks, ring_px: int = DEFAULT_RING_PX, index: Sequence | None = None) -> pd.DataFrame:
    """Size and contrast of the lesion in each image, from its mask.

    The contrast is the lesion's contrast-to-noise ratio against its local
    background: (mean inside the mask - mean of the ring) / standard deviation
    of the ring (ddof 1), the ring being the mask dilated ``ring_px`` times by
    the face-connected structuring element (``scipy.ndimage.binary_dilation``)
    minus the mask, cut at the image's edge. It is **signed**: positive for a
    lesion brighter than its surroundings (every lesion of the study's
    phantoms: nodules and pneumonia are denser than aerated lung, tumours
    enhance), negative for a darker one; :func:`contrast_detail` bins its
    absolute value. The ring is counted in pixels or voxels along each axis,
    whatever the voxel spacing.

    Args:
        images: (N, H, W) or (N, H, W, D) array, or a sequence of N 2D or 3D
            arrays (sizes may differ); any intensity unit (HU, [0, 1], 0-255).
        masks: Lesion masks, one per image and of its shape; non-zero is lesion.
        ring_px: Width of the background ring in pixels (voxels), at least 1.
        index: Labels of the rows (e.g. file paths); None numbers them from 0.

    Returns:
        One row per image with the columns of :data:`PROPERTY_COLUMNS`:
        ``size_px`` (pixels, or voxels), ``size_fraction`` (of the image),
        ``diameter_px`` (of the disc or ball of that size), ``lesion_mean``,
        ``background_mean``, ``background_sd`` and ``contrast``. An image with
        an empty mask has NaN throughout; a lesion whose ring is flat or empty
        (e.g. it fills the image) has a NaN contrast.

    Raises:
        ParameterError: If ``ring_px`` is not a positive integer.
        DataError: If the images and masks do not pair up, or an image is not 2D or 3D.
    """
    if isinstance(ring_px, bool) or not isinstance(ring_px, (int, np.integer)) or ring_px < 1:
        raise ParameterError(f"ring_px must be a positive integer, got {ring_px!r}.")
    if len(images) != len(masks):
        raise DataError(f"lesion_properties got {len(images)} images but {len(masks)} masks.")
    rows = []
    for position, (image, mask) in enumerate(zip(images, masks)):
        image, mask = np.asarray(image, dtype=float), np.asarray(mask) != 0
        if image.shape != mask.shape or image.ndim not in (2, 3):
            raise DataError(
                f"Image {position} has shape {image.shape} and its mask {mask.shape}: "
                "expected one 2D (H, W) or 3D (H, W, D) shape for both."
            )
        rows.append(_one_lesion(image, mask, int(ring_px)))
    frame = pd.DataFrame(rows, columns=list(PROPERTY_COLUMNS), dtype=float)
    if index is not None:
        if len(index) != len(frame):
            raise DataError(f"index has {len(index)} labels but there are {len(frame)} images.")
        frame.index = pd.Index(index)
    return frame


# ----------------------------------------------------------------------------- binning and the result


def _range_text(low: float, high: float, unit: str = "") -> str:
    """A bin's range as a label, e.g. ``"3.1–4.5 px"``."""
    return f"{low:.2g}–{high:.2g}{unit}" if max(abs(low), abs(high)) < 1 else f"{low:.1f}–{high:.1f}{unit}"


@dataclass(frozen=True)
class DetailBin:
    """One size × contrast bin of a contrast-detail analysis.

    Attributes:
        size_bin: Position on the size axis, 0 = smallest lesions.
        contrast_bin: Position on the contrast axis, 0 = faintest lesions.
        size_range: Lowest and highest equivalent diameter the bin admits (px).
        contrast_range: Lowest and highest absolute contrast it admits.
        n: Lesion images in the bin.
        median_diameter: Median equivalent diameter of those images (NaN if none):
            where the bin is drawn on the size axis.
        sensitivity: Share of them the model put in their lesion class, Wilson interval.
        pointing_game: Share of the scored ones whose CAM peak fell on the lesion,
            Wilson interval; None when the pointing game was not given.
    """

    size_bin: int
    contrast_bin: int
    size_range: tuple[float, float]
    contrast_range: tuple[float, float]
    n: int
    median_diameter: float
    sensitivity: Estimate
    pointing_game: Estimate | None

    @property
    def size_label(self) -> str:
        """The size range as text, e.g. ``"3.1–4.5 px"``."""
        return _range_text(*self.size_range, " px")

    @property
    def contrast_label(self) -> str:
        """The contrast range as text, e.g. ``"1.2–3.4"``."""
        return _range_text(*self.contrast_range)

    def record(self) -> dict[str, Any]:
        """JSON record of the bin (estimates as :meth:`Estimate.to_record`)."""
        return {
            "size_bin": self.size_bin,
            "contrast_bin": self.contrast_bin,
            "size_range": [float(v) for v in self.size_range],
            "contrast_range": [float(v) for v in self.contrast_range],
            "n": self.n,
            "median_diameter": float(self.median_diameter),
            "sensitivity": self.sensitivity.to_record(),
            "pointing_game": None if self.pointing_game is None else self.pointing_game.to_record(),
        }


@dataclass(frozen=True)
class ContrastDetail:
    """Sensitivity (and pointing game) per lesion size × contrast bin, with the bins' edges.

    Attributes:
        size_edges: Edges of the size bins (equivalent diameter, px), ascending;
            the last bin holds its upper edge.
        contrast_edges: Edges of the contrast bins (absolute contrast), ascending.
        bins: Every bin, size-major (all contrasts of the smallest size first).
        n: Lesion images binned.
        n_excluded: Lesion images left out because their contrast is undefined.
    """

    size_edges: tuple[float, ...]
    contrast_edges: tuple[float, ...]
    bins: tuple[DetailBin, ...]
    n: int
    n_excluded: int = 0

    @property
    def n_size_bins(self) -> int:
        """Bins on the size axis."""
        return len(self.size_edges) - 1

    @property
    def n_contrast_bins(self) -> int:
        """Bins on the contrast axis."""
        return len(self.contrast_edges) - 1

    def bin(self, size_bin: int, contrast_bin: int) -> DetailBin:
        """The bin at (``size_bin``, ``contrast_bin``)."""
        return self.bins[size_bin * self.n_contrast_bins + contrast_bin]

    def record(self) -> dict[str, Any]:
        """JSON record for ``metrics.json["contrast_detail"]``: the edges and every bin."""
        return {
            "size_measure": SIZE_LABEL,
            "contrast_measure": CONTRAST_LABEL,
            "size_edges": [float(v) for v in self.size_edges],
            "contrast_edges": [float(v) for v in self.contrast_edges],
            "n": self.n,
            "n_excluded": self.n_excluded,
            "bins": [entry.record() for entry in self.bins],
        }

    def table(self, measure: str = "sensitivity") -> pd.DataFrame:
        """Display table: a row per size bin, a column per contrast bin, ``"0.833 (0.61–0.94), n = 18"`` cells.

        Args:
            measure: ``"sensitivity"`` or ``"pointing_game"``.

        Raises:
            ParameterError: For another measure, or the pointing game when it was not given.
        """
        if measure not in MEASURES:
            raise ParameterError(f"measure must be one of {list(MEASURES)}, got {measure!r}.")
        cells: dict[str, dict[str, str]] = {}
        for entry in self.bins:
            estimate = getattr(entry, measure)
            if estimate is None:
                raise ParameterError("This contrast-detail analysis was made without the pointing game.")
            cells.setdefault(entry.contrast_label, {})[entry.size_label] = format_estimate(estimate, with_n=True)
        frame = pd.DataFrame(cells)
        frame.index.name = SIZE_LABEL
        frame.columns.name = CONTRAST_LABEL
        return frame

    def below(self, threshold: float = DEFAULT_CEILING) -> list[DetailBin]:
        """The bins holding images whose sensitivity is under ``threshold``."""
        return [entry for entry in self.bins if entry.n > 0 and entry.sensitivity.value < threshold]

    def at_ceiling(self, threshold: float = DEFAULT_CEILING) -> bool:
        """Whether every bin that holds images has a sensitivity of at least ``threshold``."""
        return not self.below(threshold)

    def limit_sentence(self, threshold: float = DEFAULT_CEILING) -> str:
        """One sentence on where detection falls below ``threshold``, or that it never does.

        Args:
            threshold: The sensitivity a bin must reach (the registry's ceiling).
        """
        filled = [entry for entry in self.bins if entry.n > 0]
        empty = len(self.bins) - len(filled)
        verb = "holds" if empty == 1 else "hold"
        empty_note = f" ({empty} of the {len(self.bins)} bins {verb} no images)" if empty else ""
        below = self.below(threshold)
        if not below:
            return (
                f"Sensitivity is at least {threshold:.2f} in every size × contrast bin{empty_note}, "
                f"over {self.n} lesion images: this test set does not reach the model's detection limit, "
                "so smaller, fainter lesions are needed to find it."
            )
        listed = "; ".join(
            f"diameter {entry.size_label} at |contrast| {entry.contrast_label}: "
            f"{format_estimate(entry.sensitivity, with_n=True)}"
            for entry in below
        )
        return (
            f"Sensitivity falls below {threshold:.2f} in {len(below)} of {len(filled)} size × contrast bins "
            f"holding images{empty_note}: {listed}."
        )


# ----------------------------------------------------------------------------- the analysis


def _quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile edges of ``values`` for ``n_bins`` bins; tied edges merge (fewer bins)."""
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))


def _bin_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: bin k holds [edge k, edge k+1), the last bin its upper edge too."""
    if edges.size < 2:  # every value the same: one bin
        return np.zeros(values.size, dtype=int)
    return np.searchsorted(edges[1:-1], values, side="right")


def _flags(values, n: int, name: str, allow_missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as booleans and which of them are scored (not None/NaN)."""
    series = pd.Series(list(values), dtype=object)
    if len(series) != n:
        raise DataError(f"{name} has {len(series)} entries but there are {n} images.")
    missing = series.isna().to_numpy()
    if missing.any() and not allow_missing:
        raise DataError(f"{name} has missing entries: give True or False for every image.")
    scored = series[~missing]
    if not scored.map(lambda v: v in (0, 1)).all():  # True == 1, False == 0
        raise DataError(f"{name} must hold True/False (or 1/0) values.")
    flags = np.zeros(n, dtype=bool)
    flags[~missing] = scored.astype(bool).to_numpy()
    return flags, ~missing


def _check_bins(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def contrast_detail(
    properties: pd.DataFrame,
    detected,
    pointed=None,
    n_size_bins: int = DEFAULT_BINS,
    n_contrast_bins: int = DEFAULT_BINS,
    confidence: float = 0.95,
) -> ContrastDetail:
    """Sensitivity and pointing game per lesion size × contrast bin.

    Only lesion images count: rows of ``properties`` with a lesion (a size) and
    a defined contrast. Sizes are binned on the equivalent diameter and
    contrasts on the **absolute** contrast (a dark lesion is as conspicuous as
    a bright one of the same magnitude), each at its own quantiles over these
    images, so every size bin and every contrast bin holds images (a size x
    contrast cell may still be empty when size and contrast go together). Tied
    quantiles merge, giving fewer bins than asked.

    Args:
        properties: :func:`lesion_properties` of the test images.
        detected: One entry per row of ``properties``: whether the model put the
            image in its lesion class (entries of lesion-free rows are ignored).
        pointed: One entry per row: whether the CAM's peak fell on the lesion;
            None or NaN where it was not scored. None: no pointing game.
        n_size_bins: Bins on the size axis (the registry's ``size_bins``).
        n_contrast_bins: Bins on the contrast axis (``contrast_bins``).
        confidence: Level of the Wilson intervals.

    Returns:
        The analysis: edges, and per bin n, sensitivity and pointing game.

    Raises:
        DataError: If ``properties`` lacks a column, an argument does not have
            one entry per row, or there is no lesion image with a defined contrast.
        ParameterError: For a bin count below 1.
    """
    n_size_bins = _check_bins(n_size_bins, "n_size_bins")
    n_contrast_bins = _check_bins(n_contrast_bins, "n_contrast_bins")
    missing = [column for column in ("diameter_px", "contrast") if column not in properties.columns]
    if missing:
        raise DataError(f"properties lacks the columns {missing}: make it with lesion_properties.")
    n_rows = len(properties)
    diameter = properties["diameter_px"].to_numpy(dtype=float)
    contrast = np.abs(properties["contrast"].to_numpy(dtype=float))
    is_lesion = np.isfinite(diameter)
    used = is_lesion & np.isfinite(contrast)
    if not used.any():
        raise DataError("No lesion image with a defined contrast: nothing to bin.")
    hits, detected_known = _flags(detected, n_rows, "detected", allow_missing=True)
    if (used & ~detected_known).any():
        raise DataError("detected is missing for some lesion images: give True or False for each.")
    if pointed is not None:
        pointed_flags, pointed_scored = _flags(pointed, n_rows, "pointed", allow_missing=True)

    size_edges = _quantile_edges(diameter[used], n_size_bins)
    contrast_edges = _quantile_edges(contrast[used], n_contrast_bins)
    size_bin = np.full(n_rows, -1)
    contrast_bin = np.full(n_rows, -1)
    size_bin[used] = _bin_of(diameter[used], size_edges)
    contrast_bin[used] = _bin_of(contrast[used], contrast_edges)
    # One value throughout gives a single edge: a single bin from it to itself.
    size_edges = size_edges if size_edges.size > 1 else np.repeat(size_edges, 2)
    contrast_edges = contrast_edges if contrast_edges.size > 1 else np.repeat(contrast_edges, 2)

    bins = []
    for i in range(size_edges.size - 1):
        for j in range(contrast_edges.size - 1):
            members = (size_bin == i) & (contrast_bin == j)
            pointing = None
            if pointed is not None:
                pointing = proportion_estimate(pointed_flags[members & pointed_scored], confidence=confidence)
            bins.append(
                DetailBin(
                    size_bin=i,
                    contrast_bin=j,
                    size_range=(float(size_edges[i]), float(size_edges[i + 1])),
                    contrast_range=(float(contrast_edges[j]), float(contrast_edges[j + 1])),
                    n=int(members.sum()),
                    median_diameter=float(np.median(diameter[members])) if members.any() else math.nan,
                    sensitivity=proportion_estimate(hits[members], confidence=confidence),
                    pointing_game=pointing,
                )
            )
    return ContrastDetail(
        size_edges=tuple(float(v) for v in size_edges),
        contrast_edges=tuple(float(v) for v in contrast_edges),
        bins=tuple(bins),
        n=int(used.sum()),
        n_excluded=int((is_lesion & ~used).sum()),
    )
