"""Lesion styles and the painting of a lesion into a scene's organ region.

A lesion's outline is a function of direction only (lobes plus optional
spicules), so the same code draws a disc in 2D and a ball in 3D.

A :class:`LesionScale` makes lesions smaller and fainter than their style for a
harder, test-only stratum: the scenes pass its size factor to
:func:`paint_lesion` and pull everything they painted for the lesion towards
the tissue it replaced with :func:`fade`. The scale ``(1.0, 1.0)`` leaves every
value bit for bit as without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from common.data.phantoms.geometry import Grid, random_direction, smooth_noise
from common.errors import ParameterError


class LesionScale(NamedTuple):
    """How much smaller and fainter than their style lesions are drawn.

    Attributes:
        size: Factor on every lesion's radius (0.5 halves the diameter, so about
            quarters a 2D lesion's area).
        contrast: Factor on the lesion's difference from the tissue it replaces
            (0.5 pulls every painted value half-way back; 0 leaves the lesion
            invisible while its mask stays).
    """

    size: float = 1.0
    contrast: float = 1.0

    @classmethod
    def of(cls, value: Sequence[float]) -> LesionScale:
        """A checked scale from ``(size factor, contrast factor)``.

        Raises:
            ParameterError: Unless ``value`` is two finite numbers, the size above 0
                and the contrast at least 0.
        """
        try:
            size, contrast = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ParameterError(f"lesion_scale must be (size factor, contrast factor), got {value!r}.") from None
        if not (math.isfinite(size) and math.isfinite(contrast) and size > 0 and contrast >= 0):
            raise ParameterError(
                f"lesion_scale must have a size factor above 0 and a contrast factor of at least 0, got {value!r}."
            )
        return cls(size, contrast)

    @property
    def is_identity(self) -> bool:
        """Whether lesions are drawn exactly as their style says."""
        return self.size == 1.0 and self.contrast == 1.0


NO_SCALE = LesionScale()


def fade(background: np.ndarray, painted: np.ndarray, contrast: float) -> np.ndarray:
    """``painted`` pulled towards ``background`` by the factor ``contrast``.

    Args:
        background: Values before the lesion was painted.
        painted: Values after it (lesion, necrotic core, oedema...).
        contrast: 1 keeps ``painted`` (the same array, so bit for bit), 0 gives
            ``background``; in between, ``background + contrast * (painted - background)``.
    """
    if contrast == 1.0:
        return painted
    return background + contrast * (painted - background)


@dataclasses.dataclass(frozen=True)
class LesionStyle:
    """Shape and attenuation of one kind of lesion.

    Attributes:
        radius: Range of the base radius, phantom units.
        lobulation: Relative depth of the smooth lobes (0 is a disc or ball).
        spicules: Range of the number of spicules.
        spicule_length: Range of a spicule's length relative to the radius.
        value: Range of the lesion's mean value (HU or intensity).
        texture: Standard deviation of the internal texture, same unit as value.
        margin: Minimum depth of the centre inside the organ region, relative
            to the radius (above 1 keeps a solid lesion wholly inside).
        diffuse: Patchy opacity inside the outline (consolidation) instead of a
            solid mass.
        exophytic: The lesion may grow out of the organ region (the scene then
            counts it as part of the organ, like a renal mass deforming the kidney).
    """

    radius: tuple[float, float]
    lobulation: float
    spicules: tuple[int, int]
    spicule_length: tuple[float, float]
    value: tuple[float, float]
    texture: float
    margin: float = 1.1
    diffuse: bool = False
    exophytic: bool = False


# Benign and malignant nodules differ mainly in size (diameter ratio >= 1.33)
# and outline; their attenuation ranges overlap in part on purpose. Solid
# nodules keep a rim of aerated lung around them (margin > 1) so they stay
# visible at 64 px rather than merging into the pleura or mediastinum.
# Pneumonia is a large, patchy, lower-density opacity.
LESION_STYLES = {
    "benign_nodule": LesionStyle((0.07, 0.09), 0.03, (0, 0), (0.0, 0.0), (-60.0, 50.0), 10.0, 1.7),
    "malignant_nodule": LesionStyle((0.12, 0.165), 0.16, (5, 10), (0.5, 1.0), (-60.0, 80.0), 35.0, 1.35),
    "pneumonia": LesionStyle((0.18, 0.28), 0.22, (0, 0), (0.0, 0.0), (-550.0, -200.0), 0.0, 0.5, diffuse=True),
    "lung_nodule": LesionStyle((0.12, 0.17), 0.10, (0, 7), (0.3, 0.9), (-40.0, 60.0), 25.0, 1.3),
    "volume_nodule": LesionStyle((0.13, 0.18), 0.12, (0, 6), (0.3, 0.7), (0.0, 60.0), 15.0, 1.25),
    "brain_tumour": LesionStyle((0.14, 0.22), 0.15, (0, 0), (0.0, 0.0), (0.88, 1.0), 0.04),
    "breast_mass": LesionStyle((0.15, 0.21), 0.12, (0, 9), (0.4, 1.0), (0.88, 1.0), 0.03),
    "kidney_tumour": LesionStyle((0.14, 0.18), 0.1, (0, 0), (0.0, 0.0), (210.0, 260.0), 30.0, 0.3, exophytic=True),
}


def lesion_rho(
    coords: Sequence[np.ndarray], center: Sequence[float], base: float, style: LesionStyle, rng
) -> np.ndarray:
    """Normalised radius of a lobulated, possibly spiculated lesion (< 1 inside).

    The outline radius is a function of direction only, so the same code draws
    a disc in 2D and a ball in 3D.

    Args:
        coords: Coordinate arrays, one per axis (broadcasting).
        center: Lesion centre, one coordinate per axis.
        base: Base radius, phantom units.
        style: Lobulation and spicules.
        rng: Generator.

    Returns:
        The normalised radius on the broadcast grid.
    """
    ndim = len(coords)
    offsets = [c - c0 for c, c0 in zip(coords, center)]
    distance = np.sqrt(sum(o**2 for o in offsets))
    directions = [o / np.maximum(distance, 1e-9) for o in offsets]
    outline = np.ones_like(distance)
    for _ in range(4):
        axis = random_direction(rng, ndim)
        cosine = sum(d * a for d, a in zip(directions, axis))
        outline = outline + style.lobulation * rng.uniform(0.3, 1.0) * np.cos(
            np.pi * rng.uniform(1.0, 3.0) * cosine + rng.uniform(0, 2 * np.pi)
        )
    outline = base * outline
    for _ in range(rng.integers(style.spicules[0], style.spicules[1] + 1)):
        axis = random_direction(rng, ndim)
        cosine = np.clip(sum(d * a for d, a in zip(directions, axis)), 0.0, None)
        # A high power of the cosine gives a narrow, tapering spike.
        outline = outline + base * rng.uniform(*style.spicule_length) * cosine ** rng.uniform(60, 250)
    return distance / outline


def paint_lesion(
    grid: Grid,
    rng,
    image: np.ndarray,
    coords: list,
    region: np.ndarray,
    style: LesionStyle,
    size: float = 1.0,
):
    """Place a lesion of ``style`` at a random point of ``region`` and paint it.

    The centre is drawn uniformly among region pixels at least
    ``style.margin * radius`` from the region's border (or the deepest pixel
    when none is that deep), so solid lesions lie inside the organ. ``size``
    scales the radius drawn from the style; it may move the centre (the
    margin shrinks with the radius) but draws nothing more.

    Args:
        grid: Grid of the image.
        rng: Generator.
        image: Scene values (HU or intensity) on the full grid.
        coords: Coordinate arrays the lesion is drawn in (body frame).
        region: Organ region on the full grid; the mask never leaves it
            unless the style is exophytic.
        style: Lesion shape and attenuation.
        size: Factor on the radius drawn from the style (:attr:`LesionScale.size`).

    Returns:
        (image, mask, rho): painted image, bool lesion mask, lesion normalised radius.
    """
    radius = rng.uniform(*style.radius) * size
    # Padding makes the grid's edge count as a border too.
    depth = ndimage.distance_transform_edt(np.pad(region, 1), sampling=grid.spacing)
    depth = depth[(slice(1, -1),) * grid.ndim]
    allowed = np.flatnonzero(depth >= style.margin * radius)
    flat = int(rng.choice(allowed)) if allowed.size else int(np.argmax(depth))
    center = [np.broadcast_to(c, region.shape).flat[flat] for c in coords]
    rho = lesion_rho(coords, center, radius, style, rng)
    if style.diffuse:
        patchiness = smooth_noise(rng, grid, 0.035)
        # Opacity fades towards the outline so the patch has no sharp border.
        opacity = np.clip(0.55 + 0.45 * patchiness - 2.5 * np.clip(rho - 0.55, 0, None), 0, 1)
        opacity = opacity * ((rho < 1) & region)
        target = np.where(patchiness > 1.4, 20.0, rng.uniform(*style.value))  # a few consolidated cores
        return image + opacity * (target - image), opacity > 0.3, rho
    mask = (rho < 1) if style.exophytic else (rho < 1) & region
    value = rng.uniform(*style.value) + style.texture * smooth_noise(rng, grid, 0.02)
    return np.where(mask, value, image), mask, rho
