"""The multi-organ paper's image contour map: the abnormal region outlined from the scan itself.

The paper (seed 003, Section 4.4 and Figure 5.2) sets "image contouring" beside
Grad-CAM as "another viewpoint on tumour localization": it "identif[ies] the
edges and shapes of objects present in the image" to outline "the boundaries of
abnormal regions within the MRI scans", drawn in green with a box. It names no
rule, so this module states one, made of intensity thresholds and
``cv2.findContours`` only, and never looks at a CAM:

1. **Body.** The image is thresholded at its Otsu level (air against body); the
   largest connected part, its holes filled, is the body (head, breast, trunk).
2. **Interior.** The body is eroded by a margin (a fraction of the image width)
   so the bright rim at its edge (scalp fat, skin) is not taken for a lesion.
3. **Organ region**, where an abnormality is looked for: the whole interior in
   soft-tissue organs; in an air-filled organ (the lungs) the lung fields: the
   dark class of an Otsu threshold of the interior, in parts of at least a set
   share of it, each closed by its convex hull so that a nodule inside a lung
   (as bright as the chest wall, so not abnormal against the whole interior)
   lies inside the region.
4. **Abnormal pixels**: brighter than the organ region's mean by ``outlier_sd``
   of its standard deviations (tumours on contrast MRI, mammograms and
   contrast CT are brighter than the tissue around them).
5. **Contour**: ``cv2.findContours`` of the abnormal pixels (outer outlines);
   the largest one, filled, is the abnormal region, drawn in green with its
   bounding box.

Which organs are air-filled and the constants are the registry's
``image_contours`` section (:class:`ContourSettings`), where the development
evidence on the phantoms is stated. The rule finds something on every image,
also one without a tumour: like the paper's, it outlines the most abnormal
region, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from common.errors import DataError, ParameterError
from common.explain.overlays import rgb_uint8

GREEN = (0, 255, 0)


@dataclass(frozen=True)
class ContourSettings:
    """The constants of the image contour rule.

    Attributes:
        outlier_sd: A pixel is abnormal when brighter than the organ region's mean by this many
            standard deviations of it.
        margin_fraction: The body's rim removed before looking, as a fraction of the image width
            (at least one pixel).
        air_filled_organs: Organs (as :func:`common.experiments.organs.parse_class_name` names them)
            whose abnormalities are looked for in their dark, air-filled fields only.
        min_air_share: Smallest dark part, as a share of the body interior, that counts as an
            air-filled organ's field (smaller ones are bowel gas, airways, noise).
    """

    outlier_sd: float
    margin_fraction: float
    air_filled_organs: tuple[str, ...]
    min_air_share: float

    def __post_init__(self) -> None:
        if not self.outlier_sd >= 0:
            raise ParameterError(f"outlier_sd must be at least 0, got {self.outlier_sd}")
        if not 0 <= self.margin_fraction < 0.5:
            raise ParameterError(f"margin_fraction must lie in [0, 0.5), got {self.margin_fraction}")
        if not 0 <= self.min_air_share < 1:
            raise ParameterError(f"min_air_share must lie in [0, 1), got {self.min_air_share}")

    @classmethod
    def from_registry(cls) -> ContourSettings:
        """The settings as the registry's ``image_contours`` section states them."""
        from common.config import registry

        section = registry.section("image_contours")
        return cls(
            float(section["outlier_sd"]),
            float(section["margin_fraction"]),
            tuple(str(organ) for organ in section["air_filled_organs"]),
            float(section["min_air_share"]),
        )

    def is_air_filled(self, organ: str | None) -> bool:
        """Whether abnormalities of ``organ`` are looked for in its air-filled fields."""
        return organ is not None and organ in self.air_filled_organs

    def record(self) -> dict:
        """The settings as a JSON-ready dict."""
        return {
            "outlier_sd": self.outlier_sd,
            "margin_fraction": self.margin_fraction,
            "air_filled_organs": list(self.air_filled_organs),
            "min_air_share": self.min_air_share,
        }


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class ImageContour:
    """The abnormal region an image's contour map outlines.

    Attributes:
        region: The largest abnormal region, filled (bool, H x W); all False when none was found.
        contour: Its outer outline (a ``cv2.findContours`` point array), or None.
        box: Its bounding box ``(x0, y0, x1, y1)``, inclusive pixel coordinates, or None.
        searched: The organ region the abnormality was looked for in (bool, H x W).
        threshold: The grey level (0-255) above which a pixel of ``searched`` was abnormal (NaN
            when nothing was searched).
    """

    region: np.ndarray
    contour: np.ndarray | None
    box: tuple[int, int, int, int] | None
    searched: np.ndarray
    threshold: float

    @property
    def found(self) -> bool:
        """Whether an abnormal region was found."""
        return self.contour is not None


def grey_uint8(image: np.ndarray) -> np.ndarray:
    """A greyscale or RGB image (see :func:`common.explain.overlays.overlay`) as greyscale uint8 (H, W)."""
    return cv2.cvtColor(rgb_uint8(image), cv2.COLOR_RGB2GRAY)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (any shape): values above it are the bright class."""
    level, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(level)


def _outlines(region: np.ndarray) -> Sequence[np.ndarray]:
    """The outer outlines (``cv2.findContours``, ``RETR_EXTERNAL``) of a boolean region."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return contours


def _largest(contours: Sequence[np.ndarray]) -> np.ndarray:
    """The outline enclosing the largest area (ties, e.g. one-pixel-wide parts: the larger box)."""
    return max(contours, key=lambda c: (cv2.contourArea(c), np.prod(cv2.boundingRect(c)[2:])))


def _filled(shape: tuple[int, ...], contours: Sequence[np.ndarray]) -> np.ndarray:
    """The area inside ``contours`` (outlines included), as a boolean array of ``shape``."""
    canvas = np.zeros(shape, np.uint8)
    cv2.drawContours(canvas, list(contours), -1, 1, thickness=cv2.FILLED)
    return canvas.astype(bool)


def body_interior(grey: np.ndarray, margin_fraction: float) -> np.ndarray:
    """The body (largest part above the Otsu level, holes filled) less a rim of ``margin_fraction`` of the width."""
    bright = grey > _otsu(grey)
    contours = _outlines(bright)
    if not contours:
        return np.zeros(grey.shape, bool)
    body = _filled(grey.shape, [_largest(contours)])
    margin = max(1, round(margin_fraction * grey.shape[1])) if margin_fraction > 0 else 0
    if not margin:
        return body
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.erode(body.astype(np.uint8), kernel).astype(bool)


def air_fields(grey: np.ndarray, interior: np.ndarray, min_share: float) -> np.ndarray:
    """The air-filled fields of the interior: its large dark parts, each closed by its convex hull."""
    if not interior.any():
        return interior
    dark = interior & (grey <= _otsu(grey[interior]))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    large = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_share * interior.sum()]
    fields = np.zeros(grey.shape, np.uint8)
    for k in large:
        for outline in _outlines(labels == k):
            cv2.fillPoly(fields, [cv2.convexHull(outline)], 1)
    return fields.astype(bool) & interior


def abnormal_region(
    image: np.ndarray, organ: str | None = None, settings: ContourSettings | None = None
) -> ImageContour:
    """The image contour rule of the module docstring: the largest abnormally bright region of the organ.

    Args:
        image: Greyscale (H, W) / (H, W, 1) or RGB (H, W, 3) scan; uint8, or float in [0, 1] or [0, 255].
        organ: The organ shown (e.g. the predicted class's), which says whether to look in air-filled
            fields; None: a soft-tissue organ.
        settings: The rule's constants; None: the registry's.

    Returns:
        The region, its outline and box, the searched organ region and the threshold.
    """
    settings = settings or ContourSettings.from_registry()
    grey = grey_uint8(image)
    searched = body_interior(grey, settings.margin_fraction)
    if settings.is_air_filled(organ):
        searched = air_fields(grey, searched, settings.min_air_share)
    empty = np.zeros(grey.shape, bool)
    if not searched.any():
        return ImageContour(empty, None, None, searched, float("nan"))
    values = grey[searched].astype(np.float64)
    threshold = float(values.mean() + settings.outlier_sd * values.std())
    contours = _outlines(searched & (grey > threshold))
    if not contours:
        return ImageContour(empty, None, None, searched, threshold)
    largest = _largest(contours)
    x, y, w, h = cv2.boundingRect(largest)
    return ImageContour(_filled(grey.shape, [largest]), largest, (x, y, x + w - 1, y + h - 1), searched, threshold)


def draw_image_contour(
    image: np.ndarray, contour: ImageContour, color: tuple[int, int, int] = GREEN, box: bool = True
) -> np.ndarray:
    """The contour map: the abnormal region's outline (and its box) drawn on the image.

    Args:
        image: Greyscale or RGB image (see :func:`abnormal_region`).
        contour: The image's :func:`abnormal_region`.
        color: RGB colour of outline and box (the paper's green by default).
        box: Whether to draw the bounding box too, as the paper does.

    Returns:
        RGB uint8 array (H, W, 3); the image unchanged when no region was found.
    """
    rgb = rgb_uint8(image)
    if rgb.shape[:2] != contour.region.shape:
        raise DataError(f"image {rgb.shape[:2]} and contour {contour.region.shape} differ in size")
    if contour.contour is not None and contour.box is not None:
        cv2.drawContours(rgb, [contour.contour], -1, color, thickness=1)
        if box:
            cv2.rectangle(rgb, contour.box[:2], contour.box[2:], color, thickness=1)
    return rgb


def region_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two boolean regions of one shape; 0 when both are empty (nothing overlaps)."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    if first.shape != second.shape:
        raise DataError(f"regions differ in shape: {first.shape} and {second.shape}")
    union = int((first | second).sum())
    return float((first & second).sum() / union) if union else 0.0
