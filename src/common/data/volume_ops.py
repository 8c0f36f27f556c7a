"""Volume operations of the 3D experiment: resampling, min-max scaling, Sobel edges.

They work on (H, W, D) arrays whatever their source (a DICOM series read by
:mod:`common.data.dicom`, a phantom, a mask); seed 001 names min-max scaling
(its equation 2) and the Sobel operator without further detail, so the choices
made here are stated in each function.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.interpolate import make_interp_spline

from common.errors import ParameterError

# Weight of the normalised Sobel gradient magnitude added to the volume; our choice (see sobel_enhance).
SOBEL_WEIGHT = 0.5


def resample(
    volume: np.ndarray,
    size: tuple[int, int] | None,
    depth: int | None,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """Resample a (H, W, D) volume to (size[0], size[1], depth), linearly.

    In-plane by :func:`scipy.ndimage.zoom` (order 1). Along D, linear
    interpolation at ``depth`` evenly spaced points between the first and last
    of ``positions`` (the slice positions in mm, ascending), so uneven slice
    gaps are respected; None takes the slices as equidistant.

    Args:
        volume: (H, W, D) array.
        size: (H, W) of the output, or None to keep the in-plane size.
        depth: Number of output slices, or None to keep D.
        positions: Ascending, distinct position of each slice, or None.

    Returns:
        float32 array (H', W', D').
    """
    volume = np.asarray(volume, dtype=np.float32)
    if size is not None and tuple(size) != volume.shape[:2]:
        factors = (size[0] / volume.shape[0], size[1] / volume.shape[1], 1.0)
        volume = ndimage.zoom(volume, factors, order=1, mode="nearest")
    n_slices = volume.shape[2]
    if depth is None or (depth == n_slices and positions is None):
        return volume
    if n_slices == 1:
        return np.repeat(volume, depth, axis=2)
    source = np.arange(n_slices, dtype=float) if positions is None else np.asarray(positions, float)
    targets = np.linspace(source[0], source[-1], depth)
    linear = make_interp_spline(source, volume, k=1, axis=2)
    return linear(targets).astype(np.float32)


def min_max_normalise(volume: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]: (x - min) / (max - min) over the whole volume.

    Seed 001, equation 2. A volume with one value becomes all zeros, as there
    is no range to scale.

    Args:
        volume: Array of any shape.

    Returns:
        float32 array of the same shape in [0, 1].
    """
    volume = np.asarray(volume, dtype=np.float32)
    low, high = float(volume.min()), float(volume.max())
    if high == low:
        return np.zeros_like(volume)
    return (volume - low) / (high - low)


def sobel_enhance(volume: np.ndarray, weight: float = SOBEL_WEIGHT) -> np.ndarray:
    """Add Sobel edges to a volume and bring it back to its input range.

    Seed 001 says only that it uses "the Sobel operator to enhance the tumor"
    and shows the output as "Sobel Edge Detection"; it does not say whether
    the operator was 2D or 3D or how the edges were combined with the image.
    Here: the gradient magnitude sqrt(sx^2 + sy^2 + sz^2) from
    :func:`scipy.ndimage.sobel` along the three axes, scaled to the volume's
    range, is added with ``weight``; the sum is then min-max rescaled to the
    input's [min, max] (so a [0, 1] volume stays in [0, 1]).

    Args:
        volume: (H, W, D) array.
        weight: Weight of the edges, >= 0; 0 returns the volume unchanged.

    Returns:
        float32 array of the input's shape and range.

    Raises:
        ParameterError: ``weight`` is negative or not a number.
    """
    check_sobel_weight(weight)
    volume = np.asarray(volume, dtype=np.float32)
    low, high = float(volume.min()), float(volume.max())
    if high == low:
        return volume.copy()
    # Summed one axis at a time: a (512, 512, 64) volume is 64 MB per gradient.
    squared_sum = np.zeros_like(volume)
    for axis in range(volume.ndim):
        squared_sum += np.square(ndimage.sobel(volume, axis=axis, mode="nearest"))
    magnitude = np.sqrt(squared_sum)
    enhanced = volume + weight * (high - low) * min_max_normalise(magnitude)
    return (low + (high - low) * min_max_normalise(enhanced)).astype(np.float32)


def check_sobel_weight(weight: float) -> None:
    """Raise ParameterError unless ``weight`` is a number >= 0 (the Sobel edges' weight)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or not weight >= 0:
        raise ParameterError(f"sobel_weight={weight!r}: give a number >= 0")
