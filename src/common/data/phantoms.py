"""Deterministic phantom data sets: the embedded default data of the study.

A new user runs every experiment without a download on phantoms drawn here.
Each image is rendered from its own random generator seeded with
``(seed, kind, class name, index)``, so an image never depends on how many
others are drawn, and the same seed gives byte-identical files.

All geometry lives in *phantom units*: the image width spans [-1, 1], so shapes
keep their proportions at any pixel size. CT scenes are rendered in Hounsfield
units (HU) and windowed to 8 bits for the PNG data sets; MRI and mammography
scenes are rendered directly as intensities in [0, 1].

Layouts (the same as the real class-folder data sets, plus lesion masks):

* 2D kinds (``chest``, ``multi_organ``)::

      out_dir/images/<class>/<class>_<i:04d>.png   8-bit greyscale
      out_dir/masks/<class>/<class>_<i:04d>.png    0/255 lesion mask (all 0 without lesion)

* ``chest_volumes``::

      out_dir/series/<class>/<case_id>/<random hex>.dcm   one CT slice per file
      out_dir/masks/<class>/<case_id>.npz                 key "mask", uint8 (H, W, D)

  with ``case_id = <class>_<i:04d>``. File names are random, so their order is
  not the slice order. Depth index ``d`` of a volume (and of its mask) is the
  slice with InstanceNumber ``d + 1``, whose ImagePositionPatient z is
  ``z0 + d * SpacingBetweenSlices``: z *increases* with InstanceNumber (from
  the lung bases towards the apices), so sorting by InstanceNumber and sorting
  by ascending z give the same order. Stored pixels are uint16 with
  HU = value * RescaleSlope + RescaleIntercept (slope 1, intercept -1024).

:func:`ensure_phantoms` generates a kind once into a folder named after its
parameters and reuses it afterwards; :data:`PHANTOM_KINDS` is the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from common.errors import ParameterError

# Bump when a change to the renderers changes the output, so cached folders
# made by ensure_phantoms are regenerated rather than silently reused.
PHANTOM_VERSION = 1
MARKER_NAME = "phantom.json"

CHEST_WINDOW_HU = (-1000.0, 400.0)  # wide lung window: black air, grey tissue, white bone
ABDOMEN_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window for the kidney scene
VOLUME_Z_SPAN = 1.2  # cranio-caudal extent of a chest volume, phantom units
MM_PER_UNIT = 175.0  # phantom unit in mm: a 350 mm field of view
HU_INTERCEPT = -1024.0  # DICOM RescaleIntercept of the stored volumes
_MIN_SIZE = 16


class Phantom(NamedTuple):
    """One rendered phantom before it is written.

    Attributes:
        image: HU (CT volumes) or display intensities in [0, 1] (2D kinds), float32.
        mask: Lesion mask, bool, all False for lesion-free classes.
        region: Organ region the lesion is confined to (lungs, brain, breast,
            kidneys), bool.
    """

    image: np.ndarray
    mask: np.ndarray
    region: np.ndarray


# --------------------------------------------------------------------------
# Sampling grid and geometric primitives (work in 2D and 3D by broadcasting)
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Grid:
    """A regular grid of pixel centres in phantom units, centred on 0.

    Attributes:
        shape: (H, W) or (H, W, D).
        spacing: Phantom units per pixel along each axis.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]

    @classmethod
    def for_shape(cls, shape: Sequence[int]) -> _Grid:
        in_plane = 2.0 / max(shape[0], shape[1])
        spacing = (in_plane, in_plane) + ((VOLUME_Z_SPAN / shape[2],) if len(shape) == 3 else ())
        return cls(tuple(int(n) for n in shape), spacing)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def origin(self) -> np.ndarray:
        return np.array([-(n - 1) * s / 2 for n, s in zip(self.shape, self.spacing)])

    def axes(self) -> list[np.ndarray]:
        """Open-grid coordinate arrays, each varying along its own axis."""
        result = []
        for axis, (n, s, o) in enumerate(zip(self.shape, self.spacing, self.origin)):
            view = [1] * self.ndim
            view[axis] = n
            result.append((o + s * np.arange(n)).reshape(view))
        return result

    def pixels(self, units: float) -> np.ndarray:
        """A length in phantom units as pixels along each axis."""
        return units / np.asarray(self.spacing)


def _rotate(dy, dx, angle: float):
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * dy + sin * dx, -sin * dy + cos * dx


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.sqrt(vector @ vector)), 1e-12)


@dataclasses.dataclass(frozen=True)
class _Outline:
    """A star-shaped outline: an ellipse whose radius wobbles smoothly with angle."""

    cy: float
    cx: float
    ry: float
    rx: float
    angle: float = 0.0
    amplitudes: tuple[float, ...] = ()
    phases: tuple[float, ...] = ()

    @classmethod
    def random(cls, rng, cy, cx, ry, rx, angle=0.0, wobble=0.0, harmonics=3) -> _Outline:
        orders = np.arange(2, 2 + harmonics)
        amplitudes = wobble * rng.uniform(0.3, 1.0, harmonics) / (orders - 1)
        phases = rng.uniform(0, 2 * np.pi, harmonics)
        return cls(cy, cx, ry, rx, angle, tuple(amplitudes), tuple(phases))

    def rho(self, y, x, scale=1.0):
        """Normalised radius: < 1 inside; ``scale`` shrinks the outline (e.g. per slice)."""
        dy, dx = _rotate(y - self.cy, x - self.cx, self.angle)
        ny, nx = dy / (self.ry * scale), dx / (self.rx * scale)
        distance = np.sqrt(ny**2 + nx**2)
        # cos(k theta) and sin(k theta) by the angle-addition recursion from
        # cos(theta) = nx / distance: cheaper than arctan2 and cos per pixel.
        cos1 = nx / np.maximum(distance, 1e-12)
        sin1 = ny / np.maximum(distance, 1e-12)
        cos_k, sin_k = cos1, sin1
        radius = np.ones_like(distance)
        for amplitude, phase in zip(self.amplitudes, self.phases):  # orders 2, 3, ...
            cos_k, sin_k = cos_k * cos1 - sin_k * sin1, sin_k * cos1 + cos_k * sin1
            radius = radius + amplitude * (np.cos(phase) * cos_k - np.sin(phase) * sin_k)
        return distance / radius


def _superellipse_rho(y, x, ry, rx, power):
    return (np.abs(y / ry) ** power + np.abs(x / rx) ** power) ** (1.0 / power)


def _smooth_noise(rng, grid: _Grid, sigma_units: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(grid.shape), grid.pixels(sigma_units), truncate=3.0)
    return field / (field.std() + 1e-12)


def _random_direction(rng, ndim: int) -> np.ndarray:
    return _unit(rng.standard_normal(ndim))


@dataclasses.dataclass(frozen=True)
class _LesionStyle:
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
_LESION_STYLES = {
    "benign_nodule": _LesionStyle((0.07, 0.09), 0.03, (0, 0), (0.0, 0.0), (-60.0, 50.0), 10.0, 1.7),
    "malignant_nodule": _LesionStyle((0.12, 0.165), 0.16, (5, 10), (0.5, 1.0), (-60.0, 80.0), 35.0, 1.35),
    "pneumonia": _LesionStyle((0.18, 0.28), 0.22, (0, 0), (0.0, 0.0), (-550.0, -200.0), 0.0, 0.5, diffuse=True),
    "lung_nodule": _LesionStyle((0.12, 0.17), 0.10, (0, 7), (0.3, 0.9), (-40.0, 60.0), 25.0, 1.3),
    "volume_nodule": _LesionStyle((0.13, 0.18), 0.12, (0, 6), (0.3, 0.7), (0.0, 60.0), 15.0, 1.25),
    "brain_tumour": _LesionStyle((0.14, 0.22), 0.15, (0, 0), (0.0, 0.0), (0.88, 1.0), 0.04),
    "breast_mass": _LesionStyle((0.15, 0.21), 0.12, (0, 9), (0.4, 1.0), (0.88, 1.0), 0.03),
    "kidney_tumour": _LesionStyle((0.14, 0.18), 0.1, (0, 0), (0.0, 0.0), (210.0, 260.0), 30.0, 0.3, exophytic=True),
}


def _lesion_rho(coords: Sequence[np.ndarray], center: Sequence[float], base: float, style: _LesionStyle,
                rng) -> np.ndarray:
    """Normalised radius of a lobulated, possibly spiculated lesion (< 1 inside).

    The outline radius is a function of direction only, so the same code draws
    a disc in 2D and a ball in 3D.
    """
    ndim = len(coords)
    offsets = [c - c0 for c, c0 in zip(coords, center)]
    distance = np.sqrt(sum(o**2 for o in offsets))
    directions = [o / np.maximum(distance, 1e-9) for o in offsets]
    outline = np.ones_like(distance)
    for _ in range(4):
        axis = _random_direction(rng, ndim)
        cosine = sum(d * a for d, a in zip(directions, axis))
        outline = outline + style.lobulation * rng.uniform(0.3, 1.0) * np.cos(
            np.pi * rng.uniform(1.0, 3.0) * cosine + rng.uniform(0, 2 * np.pi)
        )
    outline = base * outline
    for _ in range(rng.integers(style.spicules[0], style.spicules[1] + 1)):
        axis = _random_direction(rng, ndim)
        cosine = np.clip(sum(d * a for d, a in zip(directions, axis)), 0.0, None)
        # A high power of the cosine gives a narrow, tapering spike.
        outline = outline + base * rng.uniform(*style.spicule_length) * cosine ** rng.uniform(60, 250)
    return distance / outline


def _draw_segments(grid: _Grid, segments: np.ndarray, widths: np.ndarray, sigma_units: float) -> np.ndarray:
    """Render line segments as blurred tubes with peak strength ~ width (clipped to 1).

    Points sampled every half pixel along each segment are accumulated into the
    grid and blurred, which works the same in 2D and 3D.

    Args:
        grid: Target grid.
        segments: (n, 2, ndim) start and end points.
        widths: (n,) relative strengths; above 1 a tube saturates and looks thicker.
        sigma_units: Tube radius (Gaussian sigma), phantom units; tubes thinner
            than 0.6 pixel are drawn 0.6 pixel wide but proportionally dimmer.
    """
    starts, ends = segments[:, 0], segments[:, 1]
    lengths = np.linalg.norm(ends - starts, axis=1)
    step = 0.5 * min(grid.spacing)
    counts = np.maximum(1, np.ceil(lengths / step)).astype(int)
    owner = np.repeat(np.arange(len(segments)), counts)
    rank = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    fraction = (rank + 0.5) / counts[owner]
    points = starts[owner] + fraction[:, None] * (ends - starts)[owner]
    index = np.rint((points - grid.origin) / np.asarray(grid.spacing)).astype(int)
    keep = np.all((index >= 0) & (index < np.asarray(grid.shape)), axis=1)
    # Weight = tube strength x length represented by the point, per unit volume.
    weight = widths[owner] * np.maximum(lengths[owner] / counts[owner], step) / np.prod(grid.spacing)
    flat = np.ravel_multi_index(tuple(index[keep].T), grid.shape)
    density = np.bincount(flat, weights=weight[keep], minlength=int(np.prod(grid.shape))).reshape(grid.shape)
    # At least 0.6 pixel per axis, so thin tubes do not alias on coarse axes.
    sigmas = np.maximum(sigma_units, 0.6 * np.asarray(grid.spacing))
    blurred = ndimage.gaussian_filter(density, sigmas / np.asarray(grid.spacing), truncate=3.0)
    # Scale so a unit-strength tube of radius sigma_units peaks at 1 when the
    # pixels resolve it; coarser pixels spread the same amount of tissue wider
    # and dimmer (partial volume), as in a real scan.
    line_peak = 1.0 / ((2 * np.pi) ** ((grid.ndim - 1) / 2) * sigma_units ** (grid.ndim - 1))
    return np.clip(blurred / line_peak, 0.0, 1.0)


def _vessel_tree(rng, root: np.ndarray, direction: np.ndarray, generations: int, length: float) -> list:
    """Branching (start, end, width) segments growing from ``root``."""
    segments = []
    stack = [(root, _unit(direction), 0.7, length, 0)]
    while stack:
        start, heading, width, seg_length, generation = stack.pop()
        heading = _unit(heading + rng.normal(0.0, 0.3, root.size))
        end = start + heading * seg_length * rng.uniform(0.7, 1.2)
        segments.append((start, end, width))
        if generation + 1 < generations:
            for _ in range(2 if rng.random() < 0.6 else 1):
                stack.append((end, heading + rng.normal(0.0, 0.55, root.size), width * 0.72, seg_length * 0.85,
                              generation + 1))
    return segments


def _segments_array(segments: list) -> tuple[np.ndarray, np.ndarray]:
    points = np.array([(start, end) for start, end, _ in segments], dtype=float)
    widths = np.array([width for _, _, width in segments], dtype=float)
    return points, widths


@dataclasses.dataclass(frozen=True)
class _Pose:
    """A random in-plane shift and rotation of the body in the image."""

    oy: float
    ox: float
    angle: float

    @classmethod
    def random(cls, rng, max_offset: float, max_rotation: float) -> _Pose:
        oy, ox = rng.uniform(-max_offset, max_offset, 2)
        return cls(float(oy), float(ox), float(rng.uniform(-max_rotation, max_rotation)))

    def to_body(self, y, x):
        """Image coordinates to body-frame coordinates."""
        return _rotate(y - self.oy, x - self.ox, self.angle)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Body-frame points (..., ndim) to image coordinates (extra axes pass through)."""
        y, x = _rotate(points[..., 0], points[..., 1], -self.angle)
        result = points.copy()
        result[..., 0], result[..., 1] = y + self.oy, x + self.ox
        return result


def _body_frame(grid: _Grid, rng, max_offset: float, max_rotation: float):
    """Pose of a randomly placed body and the grid's coordinates in its frame."""
    pose = _Pose.random(rng, max_offset, max_rotation)
    return (pose, *pose.to_body(*grid.axes()[:2]))


def _scene_noise(rng, grid: _Grid, image: np.ndarray, psf_px: float, noise_sd: float) -> np.ndarray:
    """Scanner blur plus slightly correlated noise."""
    sigma = [psf_px] * 2 + ([0.4] if grid.ndim == 3 else [])
    blurred = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    return blurred + noise_sd * _smooth_noise(rng, grid, 0.5 * grid.spacing[0])


def _paint_lesion(grid: _Grid, rng, image: np.ndarray, coords: list, region: np.ndarray, style: _LesionStyle):
    """Place a lesion of ``style`` at a random point of ``region`` and paint it.

    The centre is drawn uniformly among region pixels at least
    ``style.margin * radius`` from the region's border (or the deepest pixel
    when none is that deep), so solid lesions lie inside the organ.

    Args:
        grid: Grid of the image.
        rng: Generator.
        image: Scene values (HU or intensity) on the full grid.
        coords: Coordinate arrays the lesion is drawn in (body frame).
        region: Organ region on the full grid; the mask never leaves it
            unless the style is exophytic.
        style: Lesion shape and attenuation.

    Returns:
        (image, mask, rho): painted image, bool lesion mask, lesion normalised radius.
    """
    radius = rng.uniform(*style.radius)
    # Padding makes the grid's edge count as a border too.
    depth = ndimage.distance_transform_edt(np.pad(region, 1), sampling=grid.spacing)
    depth = depth[(slice(1, -1),) * grid.ndim]
    allowed = np.flatnonzero(depth >= style.margin * radius)
    flat = int(rng.choice(allowed)) if allowed.size else int(np.argmax(depth))
    center = [np.broadcast_to(c, region.shape).flat[flat] for c in coords]
    rho = _lesion_rho(coords, center, radius, style, rng)
    if style.diffuse:
        patchiness = _smooth_noise(rng, grid, 0.035)
        # Opacity fades towards the outline so the patch has no sharp border.
        opacity = np.clip(0.55 + 0.45 * patchiness - 2.5 * np.clip(rho - 0.55, 0, None), 0, 1)
        opacity = opacity * ((rho < 1) & region)
        target = np.where(patchiness > 1.4, 20.0, rng.uniform(*style.value))  # a few consolidated cores
        return image + opacity * (target - image), opacity > 0.3, rho
    mask = (rho < 1) if style.exophytic else (rho < 1) & region
    value = rng.uniform(*style.value) + style.texture * _smooth_noise(rng, grid, 0.02)
    return np.where(mask, value, image), mask, rho


def _paint_spine(hu: np.ndarray, yb, xb, vertebra_y: float) -> np.ndarray:
    """Vertebral body, spinal canal with neural arch, and spinous process."""
    vertebra = np.hypot(yb - vertebra_y, xb) / 0.085
    canal = np.hypot(yb - vertebra_y - 0.135, xb) / 0.045
    hu = np.where(vertebra < 1, np.where(vertebra > 0.8, 650.0, 250.0), hu)
    hu = np.where(canal < 1.6, np.where(canal < 1, 20.0, 500.0), hu)
    spinous = _superellipse_rho(yb - vertebra_y - 0.24, xb, 0.06, 0.022, 2.0) < 1
    return np.where(spinous, 550.0, hu)


# --------------------------------------------------------------------------
# Scenes: each maps (grid, rng, lesion style name or None) to a Phantom
# --------------------------------------------------------------------------


def _lung_scale(z):
    """Lung outline scale with height: the lungs narrow towards the apex and base."""
    return np.sqrt(np.clip(1 - (np.asarray(z) / 1.05) ** 2, 0.2, 1.0))


def _chest_scene(grid: _Grid, rng, lesion: str | None) -> Phantom:
    """Chest CT in HU: body, fat, ribs, spine, heart, two lungs with vessels.

    In 2D the slice height z is drawn at random (lungs are smaller towards the
    apex, the heart is absent high up); in 3D z runs along the last axis.
    """
    pose, yb, xb = _body_frame(grid, rng, 0.04, 0.12)
    is_volume = grid.ndim == 3
    z = grid.axes()[2] if is_volume else rng.uniform(-0.45, 0.45)
    full = np.broadcast_shapes(np.shape(yb), np.shape(z))

    body_ry, body_rx = rng.uniform(0.56, 0.66), rng.uniform(0.80, 0.92)
    body_rho = _superellipse_rho(yb, xb, body_ry, body_rx, 2.3)
    hu = np.full(full, -1000.0)
    hu = np.where(body_rho < 1, -100.0, hu)  # subcutaneous fat
    hu = np.where(body_rho < 1 - rng.uniform(0.07, 0.13), 40.0, hu)  # muscle and mediastinum
    table = (np.abs(yb - (body_ry + 0.08 + 0.12 * xb**2)) < 0.015) & (np.abs(xb) < 0.95)
    hu = np.where(table, 150.0, hu)

    lungs = [
        _Outline.random(rng, body_ry * rng.uniform(-0.12, 0.0), side * body_rx * rng.uniform(0.42, 0.47),
                        body_ry * rng.uniform(0.66, 0.76), body_rx * rng.uniform(0.32, 0.36),
                        side * rng.uniform(-0.15, 0.15), wobble=0.08)
        for side in (-1, 1)
    ]
    lung_rho = np.minimum(*(lung.rho(yb, xb, _lung_scale(z)) for lung in lungs))
    lung_hu = -860.0 + 25.0 * _smooth_noise(rng, grid, 0.04) + 70.0 * np.clip(yb / body_ry, 0, 1)
    hu = np.where(lung_rho < 1, lung_hu, hu)

    # Mediastinum and bones overwrite the lung fields where they overlap.
    heart_scale = np.sqrt(np.clip(1 - ((np.asarray(z) + 0.25) / 0.6) ** 2, 1e-3, 1.0))
    heart = _Outline.random(rng, -body_ry * 0.22, body_rx * 0.08, body_ry * 0.5, body_rx * 0.3, -0.5, wobble=0.05)
    hu = np.where(heart.rho(yb, xb, heart_scale) < 1, 45.0, hu)
    vertebra_y = body_ry * rng.uniform(0.55, 0.62)
    hu = np.where(np.hypot(yb - vertebra_y + 0.1, xb - 0.12) < 0.06, 50.0, hu)  # descending aorta
    hu = _paint_spine(hu, yb, xb, vertebra_y)
    hu = np.where(_superellipse_rho(yb + body_ry * 0.86, xb, 0.035, 0.08, 2.0) < 1, 400.0, hu)  # sternum
    # Ribs: oval cross-sections along the chest wall, shifting with height.
    rib_angles = np.deg2rad([-60, -35, -10, 15, 40, 65, 115, 140, 165, 190, 215, 240]) + 0.25 * np.asarray(z)[..., None]
    rib_y = body_ry * 0.88 * np.sin(rib_angles)
    rib_x = body_rx * 0.88 * np.cos(rib_angles)
    ribs = np.sqrt(functools.reduce(np.minimum, [(yb - rib_y[..., k]) ** 2 + (xb - rib_x[..., k]) ** 2
                                                 for k in range(rib_y.shape[-1])])) / 0.032
    hu = np.where(ribs < 1, np.where(ribs > 0.6, 650.0, 300.0), hu)
    trachea = (np.hypot(yb - vertebra_y + 0.2, xb) < 0.05) & (np.asarray(z) > 0.15)
    hu = np.where(trachea, -1000.0, hu)
    lung_mask = (lung_rho < 1) & (hu < -500)

    vessels = _lung_vessels(grid, rng, pose, lungs) * lung_mask

    mask = np.zeros(full, bool)
    coords = [yb, xb] + ([z] if is_volume else [])
    style = _LESION_STYLES.get(lesion)
    if style is not None and style.diffuse:
        for _ in range(1 if rng.random() < 0.65 else 2):
            hu, patch, _ = _paint_lesion(grid, rng, hu, coords, lung_mask, style)
            mask |= patch
    hu = hu + 0.9 * vessels * (45.0 - hu)
    if style is not None and not style.diffuse:
        hu, mask, _ = _paint_lesion(grid, rng, hu, coords, lung_mask, style)
    hu = _scene_noise(rng, grid, hu, 0.6, rng.uniform(15.0, 45.0))
    return Phantom(hu.astype(np.float32), mask, lung_mask)


def _lung_vessels(grid: _Grid, rng, pose: _Pose, lungs: list[_Outline]) -> np.ndarray:
    """Vessel strength in [0, 1]: branching trees from each hilum.

    In 2D, short stubs stand for vessels the slice cuts across, which show as
    dots; in 3D the hilar roots spread over height so vessels reach every slice.
    """
    is_volume = grid.ndim == 3
    segments = []
    for lung, side in zip(lungs, (-1, 1)):
        for _ in range(6 if is_volume else 3):
            hilum = np.array([lung.cy, lung.cx - side * 0.45 * lung.rx]
                             + ([rng.uniform(-0.35, 0.35)] if is_volume else []))
            direction = np.array([rng.normal(0, 0.8), side * 1.0] + ([rng.normal(0, 0.7)] if is_volume else []))
            # Trunks start a little apart so they do not merge into one blob at the hilum.
            start = hilum + 0.05 * _unit(direction)
            segments += _vessel_tree(rng, start, direction, 5, 0.065)
        if not is_volume:
            for _ in range(rng.integers(4, 11)):
                spot = np.array([lung.cy + rng.uniform(-1, 1) * lung.ry, lung.cx + rng.uniform(-1, 1) * lung.rx])
                segments.append((spot, spot + _random_direction(rng, 2) * 0.012, rng.uniform(0.4, 0.9)))
    points, widths = _segments_array(segments)
    # Volumes have ~5 mm voxels: what stays visible there are the larger vessels.
    vessel_radius = 0.02 if is_volume else 0.008
    return _draw_segments(grid, pose.to_image(points), widths, vessel_radius)


def _brain_scene(grid: _Grid, rng, lesion: str | None) -> Phantom:
    """Axial head MRI (T1 with contrast): scalp, skull, CSF, grey/white matter, ventricles."""
    _, yb, xb = _body_frame(grid, rng, 0.04, 0.15)
    head = _Outline.random(rng, 0.0, 0.0, rng.uniform(0.80, 0.88), rng.uniform(0.64, 0.72), wobble=0.03)
    rho = head.rho(yb, xb)
    image = np.where(rho < 1, 0.75, 0.0)  # scalp fat
    image = np.where(rho < 0.95, 0.08, image)  # skull
    image = np.where(rho < 0.9, 0.15, image)  # CSF
    folds = _smooth_noise(rng, grid, 0.045)
    brain = rho < 0.88
    image = np.where(brain, 0.42 + 0.03 * folds, image)  # cortex
    image = np.where(rho + 0.06 * folds < 0.7, 0.62, image)  # white matter
    sulci = brain & (rho > 0.55) & (np.abs(_smooth_noise(rng, grid, 0.03)) < 0.15)
    image = np.where(sulci, 0.18, image)
    image = np.where(brain & (np.abs(xb) < 0.012) & (np.abs(yb) > 0.3), 0.15, image)  # interhemispheric fissure
    ventricle_size = rng.uniform(0.8, 1.3)
    for side in (-1, 1):
        horn = _Outline.random(rng, rng.uniform(-0.1, 0.0), side * 0.075, 0.2 * ventricle_size,
                               0.045 * ventricle_size, side * 0.25, wobble=0.1)
        image = np.where(horn.rho(yb, xb) < 1, 0.1, image)

    mask = np.zeros(grid.shape, bool)
    if lesion is not None:
        image, mask, lesion_rho = _paint_lesion(grid, rng, image, [yb, xb], brain, _LESION_STYLES[lesion])
        if rng.random() < 0.7:  # necrotic core inside the enhancing rim
            image = np.where(mask & (lesion_rho < rng.uniform(0.45, 0.65)), rng.uniform(0.2, 0.35), image)
        edema = brain & ~mask & (lesion_rho < 1.5)
        image = np.where(edema, image * 0.8, image)
    image = image * (1 + 0.08 * _smooth_noise(rng, grid, 0.4))  # coil bias field
    image = ndimage.gaussian_filter(image, 0.6)
    noise_sd = rng.uniform(0.015, 0.04)
    # Magnitude images have Rician noise.
    image = np.hypot(image + noise_sd * rng.standard_normal(grid.shape), noise_sd * rng.standard_normal(grid.shape))
    return Phantom(image.astype(np.float32), mask, brain)


def _breast_scene(grid: _Grid, rng, lesion: str | None) -> Phantom:
    """Cranio-caudal mammogram: breast cone from the chest wall, fibroglandular texture."""
    _, yb, xb = _body_frame(grid, rng, 0.03, 0.1)
    xb = xb * rng.choice([-1.0, 1.0])  # left or right breast
    outline = _Outline.random(rng, 0.0, -1.05, rng.uniform(0.72, 0.9), rng.uniform(1.15, 1.45), wobble=0.04)
    rho = outline.rho(yb, xb)
    breast = rho < 1
    coarse, fine = _smooth_noise(rng, grid, 0.12), _smooth_noise(rng, grid, 0.03)
    density = rng.uniform(-0.3, 0.5)
    glandular = 1 / (1 + np.exp(-3 * (0.8 * coarse + 0.6 * fine + 2.0 * (0.7 - rho) - 1.0 + density)))
    # Cooper's ligaments and ducts run towards the nipple: radial streaks.
    angle = np.arctan2(yb, xb + 1.05)
    streak_profile = ndimage.gaussian_filter1d(rng.standard_normal(256), 2.0, mode="wrap")
    streaks = np.interp(angle, np.linspace(-np.pi, np.pi, 256), streak_profile / streak_profile.std())
    image = np.where(breast, 0.25 + 0.27 * glandular + 0.04 * streaks * glandular, 0.0)
    image = np.where(breast & (rho > 0.97), 0.5, image)  # skin
    region = breast & (rho <= 0.97)
    mask = np.zeros(grid.shape, bool)
    if lesion is not None:
        image, mask, _ = _paint_lesion(grid, rng, image, [yb, xb], region, _LESION_STYLES[lesion])
    image = ndimage.gaussian_filter(image, 0.6) + rng.uniform(0.01, 0.025) * rng.standard_normal(grid.shape)
    return Phantom(image.astype(np.float32), mask, region)


def _kidney_scene(grid: _Grid, rng, lesion: str | None) -> Phantom:
    """Contrast-enhanced abdominal CT in HU at the level of both kidneys."""
    _, yb, xb = _body_frame(grid, rng, 0.04, 0.1)
    body_ry, body_rx = rng.uniform(0.58, 0.68), rng.uniform(0.82, 0.93)
    body_rho = _superellipse_rho(yb, xb, body_ry, body_rx, 2.2)
    fat = rng.uniform(0.08, 0.16)
    hu = np.where(body_rho < 1, -100.0, -1000.0)
    hu = np.where(body_rho < 1 - fat, 50.0, hu)  # abdominal wall muscle
    cavity = body_rho < 1 - fat - 0.05
    hu = np.where(cavity, -90.0, hu)  # visceral fat
    liver = _Outline.random(rng, -0.1 * body_ry, -0.45 * body_rx, 0.55 * body_ry, 0.4 * body_rx, 0.3, wobble=0.08)
    hu = np.where(cavity & (liver.rho(yb, xb) < 1), 60.0, hu)
    for _ in range(rng.integers(3, 8)):  # bowel loops, mostly with gas
        cy, cx, radius = rng.uniform(-0.9, 0.1) * body_ry, rng.uniform(-0.2, 0.8) * body_rx, rng.uniform(0.05, 0.09)
        loop = np.hypot(yb - cy, xb - cx) / radius
        lumen = -1000.0 if rng.random() < 0.7 else 10.0
        hu = np.where(cavity & (loop < 1), np.where(loop < 0.75, lumen, 40.0), hu)
    vertebra_y = body_ry * rng.uniform(0.5, 0.58)
    for side in (-1, 1):
        psoas = _superellipse_rho(yb - vertebra_y + 0.02, xb - side * 0.15, 0.09, 0.06, 2.0) < 1
        hu = np.where(psoas, 50.0, hu)
    hu = np.where(np.hypot(yb - vertebra_y + 0.15, xb - 0.04) < 0.045, 180.0, hu)  # aorta
    hu = np.where(_superellipse_rho(yb - vertebra_y + 0.14, xb + 0.1, 0.04, 0.06, 2.0) < 1, 150.0, hu)  # IVC
    hu = _paint_spine(hu, yb, xb, vertebra_y)

    region = np.zeros(grid.shape, bool)
    for side in (-1, 1):
        kidney = _Outline.random(rng, vertebra_y - rng.uniform(0.04, 0.1), side * rng.uniform(0.38, 0.44),
                                 rng.uniform(0.22, 0.26), rng.uniform(0.15, 0.17), side * rng.uniform(0.3, 0.5),
                                 wobble=0.04)
        rho = kidney.rho(yb, xb)
        # The hilum opens medially: renal sinus fat there makes the bean shape.
        sinus_x = kidney.cx - side * 0.7 * kidney.rx
        sinus = np.hypot((yb - kidney.cy) / (0.4 * kidney.ry), (xb - sinus_x) / (0.5 * kidney.rx)) < 1
        hu = np.where(rho < 1, np.where(sinus, -50.0, 170.0), hu)
        medulla = (rho < 1) & ~sinus & (rho + 0.1 * _smooth_noise(rng, grid, 0.03) < 0.7)
        hu = np.where(medulla, 120.0, hu)
        region |= rho < 1
    mask = np.zeros(region.shape, bool)
    if lesion is not None:
        hu, mask, lesion_rho = _paint_lesion(grid, rng, hu, [yb, xb], region, _LESION_STYLES[lesion])
        # Hyper-enhancing renal cell carcinoma with a necrotic centre (arterial phase look).
        hu = np.where(mask & (lesion_rho < rng.uniform(0.4, 0.6)), rng.uniform(-10.0, 20.0), hu)
        region = region | mask
    hu = _scene_noise(rng, grid, hu, 0.6, rng.uniform(8.0, 20.0))
    return Phantom(hu.astype(np.float32), mask, region)


# --------------------------------------------------------------------------
# Registry, rendering and writing
# --------------------------------------------------------------------------


class _Scene(NamedTuple):
    """How one class is drawn.

    Attributes:
        render: Scene function (grid, rng, lesion) -> Phantom.
        lesion: Lesion style name (key of _LESION_STYLES) or None.
        window: HU window mapped to [0, 1] for 8-bit images; None when the scene
            is already in display units (MRI, mammography) or stays in HU (volumes).
    """

    render: Callable[[_Grid, np.random.Generator, str | None], Phantom]
    lesion: str | None
    window: tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class PhantomKind:
    """One phantom data set kind.

    Attributes:
        generator: Function writing the data set (``make_*``).
        scenes: Class folder name -> how that class is drawn, in class order.
    """

    generator: Callable[..., Path]
    scenes: dict[str, _Scene]

    @property
    def classes(self) -> tuple[str, ...]:
        """Default class folders, in order."""
        return tuple(self.scenes)


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def render_phantom(kind: str, class_name: str, index: int, shape: Sequence[int], seed: int = 0) -> Phantom:
    """Render one phantom in memory, exactly as the data set writers do.

    Args:
        kind: Key of :data:`PHANTOM_KINDS`.
        class_name: Class folder name of that kind.
        index: Image index within the class.
        shape: (H, W) for 2D kinds, (H, W, D) for ``chest_volumes``.
        seed: Data set seed.

    Returns:
        Phantom; 2D kinds give display intensities in [0, 1], volumes HU
        clipped to the range the DICOM files can store ([-1024, 3071]).
    """
    scene = _phantom_kind(kind).scenes.get(class_name)
    if scene is None:
        raise ParameterError(f"Unknown class {class_name!r} for phantom kind {kind!r}; "
                             f"choose from {list(PHANTOM_KINDS[kind].classes)}.")
    rng = np.random.default_rng([int(seed), _stable_id(kind), _stable_id(class_name), int(index)])
    grid = _Grid.for_shape(shape)
    phantom = scene.render(grid, rng, scene.lesion)
    image = phantom.image
    if scene.window is not None:
        low, high = scene.window
        image = (image - low) / (high - low)
    if grid.ndim == 2:
        image = np.clip(image, 0.0, 1.0)
    else:  # the HU range a 12-bit DICOM with intercept -1024 can store
        image = np.clip(image, HU_INTERCEPT, HU_INTERCEPT + 4095)
    return Phantom(image.astype(np.float32), phantom.mask, phantom.region)


def _check_parameters(kind: str, n_per_class, seed, classes) -> tuple[str, ...]:
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ParameterError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}.")
    classes = tuple(classes)
    known = PHANTOM_KINDS[kind].classes
    unknown = [name for name in classes if name not in known]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ParameterError(f"classes for phantom kind {kind!r} must be distinct names from {list(known)}, "
                             f"got {list(classes)}.")
    return classes


def _check_shape(shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    shape = tuple(shape)
    minimum = (_MIN_SIZE, _MIN_SIZE, 4)[:ndim]
    if len(shape) != ndim or any(not isinstance(n, (int, np.integer)) or n < low for n, low in zip(shape, minimum)):
        raise ParameterError(f"Phantom shape must be {ndim} integers of at least {minimum}, got {shape!r}.")
    return tuple(int(n) for n in shape)


def _save_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pillow writes no time stamp into PNGs, so equal pixels give equal bytes.
    Image.fromarray(values).save(path, format="PNG")


def _write_image_set(kind: str, out_dir, n_per_class: int, size: int, seed: int, classes) -> Path:
    classes = _check_parameters(kind, n_per_class, seed, classes)
    shape = _check_shape((size, size), 2)
    out_dir = Path(out_dir)
    for class_name in classes:
        for index in range(n_per_class):
            phantom = render_phantom(kind, class_name, index, shape, seed)
            name = f"{class_name}_{index:04d}.png"
            _save_png(out_dir / "images" / class_name / name, np.rint(phantom.image * 255).astype(np.uint8))
            _save_png(out_dir / "masks" / class_name / name, phantom.mask.astype(np.uint8) * 255)
    return out_dir


def make_chest_slices(out_dir, n_per_class: int, size: int = 128, seed: int = 0,
                      classes: Sequence[str] = ("normal", "benign", "malignant", "pneumonia")) -> Path:
    """Write 2D chest CT phantoms: normal, benign nodule, malignant nodule, pneumonia.

    Benign nodules are small, smooth and round (diameter 7-9% of the image
    width); malignant ones larger (12-16.5%), lobulated and spiculated;
    pneumonia is a large patchy ground-glass opacity with a few consolidated
    cores. Lesions lie inside a lung, either side.

    Args:
        out_dir: Folder to write ``images/`` and ``masks/`` into.
        n_per_class: Images per class.
        size: Image width and height in pixels.
        seed: Data set seed.
        classes: Subset of the class folders to write.

    Returns:
        ``out_dir`` as a Path.
    """
    return _write_image_set("chest", out_dir, n_per_class, size, seed, classes)


def make_multi_organ(out_dir, n_per_class: int, size: int = 128, seed: int = 0) -> Path:
    """Write the 8 organ x tumour classes of the multi-organ study (seed 003).

    Brain (axial MRI), breast (mammogram), kidney (abdominal CT) and lung
    (chest CT), each with and without a tumour, in the order of
    ``PHANTOM_KINDS["multi_organ"].classes``.

    Args:
        out_dir: Folder to write ``images/`` and ``masks/`` into.
        n_per_class: Images per class.
        size: Image width and height in pixels.
        seed: Data set seed.

    Returns:
        ``out_dir`` as a Path.
    """
    return _write_image_set("multi_organ", out_dir, n_per_class, size, seed, PHANTOM_KINDS["multi_organ"].classes)


def _format_ds(value: float) -> str:
    """A decimal string short enough for the DICOM DS value representation."""
    return f"{value:.6g}"


def _ct_slice(stored: np.ndarray, grid: _Grid, slice_index: int, case_id: str, class_name: str,
              uids: dict[str, str], sop_uid: str) -> pydicom.Dataset:
    """One CT Image Storage data set with fixed dates, so files are reproducible."""
    rows, columns = stored.shape
    pixel_mm = grid.spacing[0] * MM_PER_UNIT
    slice_mm = grid.spacing[2] * MM_PER_UNIT
    origin_mm = grid.origin * MM_PER_UNIT
    z_mm = origin_mm[2] + slice_index * slice_mm

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality = "CT"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Manufacturer = "camstudy phantom"
    ds.PatientID = case_id
    ds.PatientName = f"Phantom^{case_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientPosition = "HFS"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"phantom chest {class_name}"
    ds.InstanceNumber = slice_index + 1
    # Row direction +x, column direction +y; pixel (0, 0) centre at the origin.
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_format_ds(origin_mm[1]), _format_ds(origin_mm[0]), _format_ds(z_mm)]
    ds.SliceLocation = _format_ds(z_mm)
    ds.PixelSpacing = [_format_ds(pixel_mm), _format_ds(pixel_mm)]
    ds.SliceThickness = _format_ds(slice_mm)
    ds.SpacingBetweenSlices = _format_ds(slice_mm)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _format_ds(HU_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def make_chest_volumes(out_dir, n_per_class: int, shape: Sequence[int] = (64, 64, 32), seed: int = 0,
                       classes: Sequence[str] = ("normal", "tumor")) -> Path:
    """Write 3D chest CT phantoms as DICOM series, with lesion masks.

    Each volume is one series of single-slice CT files with deterministic
    UIDs, fixed dates and random (not slice-ordered) file names; see the
    module docstring for the slice order convention. ``tumor`` volumes hold a
    3D nodule in one lung.

    Args:
        out_dir: Folder to write ``series/`` and ``masks/`` into.
        n_per_class: Volumes per class.
        shape: (H, W, D) voxels.
        seed: Data set seed.
        classes: Subset of the class folders to write.

    Returns:
        ``out_dir`` as a Path.
    """
    kind = "chest_volumes"
    classes = _check_parameters(kind, n_per_class, seed, classes)
    shape = _check_shape(shape, 3)
    grid = _Grid.for_shape(shape)
    out_dir = Path(out_dir)
    for class_name in classes:
        for index in range(n_per_class):
            case_id = f"{class_name}_{index:04d}"
            phantom = render_phantom(kind, class_name, index, shape, seed)
            stored = np.clip(np.rint(phantom.image - HU_INTERCEPT), 0, 4095).astype(np.uint16)
            entropy = ["camstudy-phantom", kind, str(seed), case_id]
            uids = {part: generate_uid(entropy_srcs=entropy + [part]) for part in ("study", "series", "frame")}
            series_dir = out_dir / "series" / class_name / case_id
            series_dir.mkdir(parents=True, exist_ok=True)
            for slice_index in range(shape[2]):
                sop_uid = generate_uid(entropy_srcs=entropy + ["slice", str(slice_index)])
                dataset = _ct_slice(stored[:, :, slice_index], grid, slice_index, case_id, class_name, uids, sop_uid)
                # Names derive from the SOP UID: reproducible, unrelated to slice order.
                name = hashlib.sha256(sop_uid.encode()).hexdigest()[:16] + ".dcm"
                pydicom.dcmwrite(series_dir / name, dataset, enforce_file_format=True)
            mask_path = out_dir / "masks" / class_name / f"{case_id}.npz"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(mask_path, mask=phantom.mask.astype(np.uint8))
    return out_dir


_CHEST = {"normal": None, "benign": "benign_nodule", "malignant": "malignant_nodule", "pneumonia": "pneumonia"}
_ORGANS = {  # organ -> (scene, tumour style, window)
    "brain": (_brain_scene, "brain_tumour", None),
    "breast": (_breast_scene, "breast_mass", None),
    "kidney": (_kidney_scene, "kidney_tumour", ABDOMEN_WINDOW_HU),
    "lung": (_chest_scene, "lung_nodule", CHEST_WINDOW_HU),
}

PHANTOM_KINDS: dict[str, PhantomKind] = {
    "chest": PhantomKind(make_chest_slices,
                         {name: _Scene(_chest_scene, style, CHEST_WINDOW_HU) for name, style in _CHEST.items()}),
    "multi_organ": PhantomKind(make_multi_organ, {
        f"{organ}_{suffix}": _Scene(scene, style if has_tumour else None, window)
        for organ, (scene, style, window) in _ORGANS.items()
        for suffix, has_tumour in (("tumor", True), ("no_tumor", False))
    }),
    "chest_volumes": PhantomKind(make_chest_volumes, {
        "normal": _Scene(_chest_scene, None, None),
        "tumor": _Scene(_chest_scene, "volume_nodule", None),
    }),
}


def _phantom_kind(kind: str) -> PhantomKind:
    if kind not in PHANTOM_KINDS:
        raise ParameterError(f"Unknown phantom kind {kind!r}; choose from {sorted(PHANTOM_KINDS)}.")
    return PHANTOM_KINDS[kind]


def ensure_phantoms(kind: str, root, **params) -> Path:
    """Generate a phantom data set once and return its folder.

    The folder is ``root/<kind>-<hash>``, the hash taken over the kind, the
    full parameters (defaults filled in) and :data:`PHANTOM_VERSION`. Data are
    written into a temporary sibling folder, the marker ``phantom.json`` last,
    and the folder is then renamed into place, so an interrupted run never
    leaves a folder that looks complete.

    Args:
        kind: Key of :data:`PHANTOM_KINDS`.
        root: Cache folder holding the generated data sets.
        **params: Parameters of the kind's generator (``n_per_class``, ...).

    Returns:
        The complete data set folder.
    """
    generator = _phantom_kind(kind).generator
    try:
        bound = inspect.signature(generator).bind(None, **params)
    except TypeError as error:
        raise ParameterError(f"Bad parameters for phantom kind {kind!r}: {error}.") from None
    bound.apply_defaults()
    arguments = {name: value for name, value in bound.arguments.items() if name != "out_dir"}
    # Through JSON so tuples and lists, or numpy and Python ints, hash alike.
    record = json.loads(json.dumps({"kind": kind, "version": PHANTOM_VERSION, "parameters": arguments},
                                   default=int))
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(root)
    folder = root / f"{kind}-{digest}"
    if (folder / MARKER_NAME).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        generator(staging, **record["parameters"])
        (staging / MARKER_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if folder.exists():  # left by something other than this function: no marker, so incomplete
            shutil.rmtree(folder)
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / MARKER_NAME).is_file():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
