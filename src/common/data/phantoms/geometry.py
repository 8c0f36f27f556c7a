"""Sampling grid and geometric primitives of the phantoms, in phantom units.

Everything here works in 2D and 3D alike by broadcasting: a :class:`Grid`
gives open coordinate arrays, outlines map coordinates to a normalised radius
(< 1 inside), and vessel trees are drawn as blurred line segments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

VOLUME_Z_SPAN = 1.2  # cranio-caudal extent of a chest volume, phantom units


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular grid of pixel centres in phantom units, centred on 0.

    Attributes:
        shape: (H, W) or (H, W, D).
        spacing: Phantom units per pixel along each axis.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]

    @classmethod
    def for_shape(cls, shape: Sequence[int]) -> Grid:
        """The grid of an image or volume: the width spans [-1, 1], the depth :data:`VOLUME_Z_SPAN`.

        Args:
            shape: (H, W) or (H, W, D) pixels.

        Returns:
            The grid, square pixels in plane.
        """
        in_plane = 2.0 / max(shape[0], shape[1])
        spacing = (in_plane, in_plane) + ((VOLUME_Z_SPAN / shape[2],) if len(shape) == 3 else ())
        return cls(tuple(int(n) for n in shape), spacing)

    @property
    def ndim(self) -> int:
        """Number of axes (2 or 3)."""
        return len(self.shape)

    @property
    def origin(self) -> np.ndarray:
        """Coordinates of the first pixel's centre, phantom units."""
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


def rotate(dy, dx, angle: float):
    """Rotate offsets by ``angle`` radians.

    Args:
        dy: Offsets along y (arrays broadcast).
        dx: Offsets along x.
        angle: Rotation angle, radians.

    Returns:
        (dy, dx) rotated.
    """
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * dy + sin * dx, -sin * dy + cos * dx


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (a zero vector stays near zero)."""
    return vector / max(float(np.sqrt(vector @ vector)), 1e-12)


@dataclasses.dataclass(frozen=True)
class Outline:
    """A star-shaped outline: an ellipse whose radius wobbles smoothly with angle."""

    cy: float
    cx: float
    ry: float
    rx: float
    angle: float = 0.0
    amplitudes: tuple[float, ...] = ()
    phases: tuple[float, ...] = ()

    @classmethod
    def random(cls, rng, cy, cx, ry, rx, angle=0.0, wobble=0.0, harmonics=3) -> Outline:
        """An outline with random harmonic wobble.

        Args:
            rng: Generator.
            cy: Centre y.
            cx: Centre x.
            ry: Radius along y (before rotation).
            rx: Radius along x.
            angle: Rotation, radians.
            wobble: Relative amplitude of the lowest harmonic.
            harmonics: Number of harmonics (orders 2, 3, ...).

        Returns:
            The outline.
        """
        orders = np.arange(2, 2 + harmonics)
        amplitudes = wobble * rng.uniform(0.3, 1.0, harmonics) / (orders - 1)
        phases = rng.uniform(0, 2 * np.pi, harmonics)
        return cls(cy, cx, ry, rx, angle, tuple(amplitudes), tuple(phases))

    def rho(self, y, x, scale=1.0):
        """Normalised radius: < 1 inside; ``scale`` shrinks the outline (e.g. per slice)."""
        dy, dx = rotate(y - self.cy, x - self.cx, self.angle)
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


def superellipse_rho(y, x, ry, rx, power):
    """Normalised radius of an axis-aligned superellipse centred on 0 (< 1 inside)."""
    return (np.abs(y / ry) ** power + np.abs(x / rx) ** power) ** (1.0 / power)


def smooth_noise(rng, grid: Grid, sigma_units: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(grid.shape), grid.pixels(sigma_units), truncate=3.0)
    return field / (field.std() + 1e-12)


def random_direction(rng, ndim: int) -> np.ndarray:
    """A random unit vector, uniform over directions in ``ndim`` dimensions."""
    return unit(rng.standard_normal(ndim))


def draw_segments(grid: Grid, segments: np.ndarray, widths: np.ndarray, sigma_units: float) -> np.ndarray:
    """Render line segments as blurred tubes with peak strength ~ width (clipped to 1).

    Points sampled every half pixel along each segment are accumulated into the
    grid and blurred, which works the same in 2D and 3D.

    Args:
        grid: Target grid.
        segments: (n, 2, ndim) start and end points.
        widths: (n,) relative strengths; above 1 a tube saturates and looks thicker.
        sigma_units: Tube radius (Gaussian sigma), phantom units; tubes thinner
            than 0.6 pixel are drawn 0.6 pixel wide but proportionally dimmer.

    Returns:
        Tube strength in [0, 1] on the grid.
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


def vessel_tree(rng, root: np.ndarray, direction: np.ndarray, generations: int, length: float) -> list:
    """Branching (start, end, width) segments growing from ``root``.

    Args:
        rng: Generator.
        root: Start point of the trunk, (ndim,).
        direction: Initial heading of the trunk (any length).
        generations: Number of branching generations, the trunk included.
        length: Length of the trunk; each generation is 0.85 times shorter.

    Returns:
        List of (start, end, width) tuples.
    """
    segments = []
    stack = [(root, unit(direction), 0.7, length, 0)]
    while stack:
        start, heading, width, seg_length, generation = stack.pop()
        heading = unit(heading + rng.normal(0.0, 0.3, root.size))
        end = start + heading * seg_length * rng.uniform(0.7, 1.2)
        segments.append((start, end, width))
        if generation + 1 < generations:
            for _ in range(2 if rng.random() < 0.6 else 1):
                stack.append(
                    (end, heading + rng.normal(0.0, 0.55, root.size), width * 0.72, seg_length * 0.85, generation + 1)
                )
    return segments


def segments_array(segments: list) -> tuple[np.ndarray, np.ndarray]:
    """(start, end, width) tuples as (n, 2, ndim) points and (n,) widths for :func:`draw_segments`."""
    points = np.array([(start, end) for start, end, _ in segments], dtype=float)
    widths = np.array([width for _, _, width in segments], dtype=float)
    return points, widths


@dataclasses.dataclass(frozen=True)
class Pose:
    """A random in-plane shift and rotation of the body in the image."""

    oy: float
    ox: float
    angle: float

    @classmethod
    def random(cls, rng, max_offset: float, max_rotation: float) -> Pose:
        """A pose with shift and rotation drawn uniformly up to the given bounds."""
        oy, ox = rng.uniform(-max_offset, max_offset, 2)
        return cls(float(oy), float(ox), float(rng.uniform(-max_rotation, max_rotation)))

    def to_body(self, y, x):
        """Image coordinates to body-frame coordinates."""
        return rotate(y - self.oy, x - self.ox, self.angle)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Body-frame points (..., ndim) to image coordinates (extra axes pass through)."""
        y, x = rotate(points[..., 0], points[..., 1], -self.angle)
        result = points.copy()
        result[..., 0], result[..., 1] = y + self.oy, x + self.ox
        return result


def body_frame(grid: Grid, rng, max_offset: float, max_rotation: float):
    """Pose of a randomly placed body and the grid's coordinates in its frame.

    Args:
        grid: Grid of the image.
        rng: Generator.
        max_offset: Largest shift, phantom units.
        max_rotation: Largest rotation, radians.

    Returns:
        (pose, yb, xb): the pose and the body-frame coordinate arrays.
    """
    pose = Pose.random(rng, max_offset, max_rotation)
    return (pose, *pose.to_body(*grid.axes()[:2]))
