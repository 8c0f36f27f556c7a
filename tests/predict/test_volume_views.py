"""Tests of common.predict.volume_views: a volume's montage and projections are readable and mark the CAM maximum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.errors import DataError
from common.predict import volume_views
from common.predict.volume_views import GAP, LINE_HEIGHT, MAX_COLOUR, READABLE_WIDTH

PEAK = (5, 9, 7)  # row, column, slice of the test CAM's maximum


def _volume_and_cam(shape=(12, 16, 10), peak=PEAK) -> tuple[np.ndarray, np.ndarray]:
    """A grey noise volume and a CAM that is 0 but for a blob at ``peak``, weaker in the slices either side."""
    volume = np.random.default_rng(0).uniform(0.2, 0.8, shape).astype(np.float32)
    cam = np.zeros(shape, dtype=np.float32)
    row, column, z = peak
    cam[row - 1 : row + 2, column - 1 : column + 2, z] = 0.6
    cam[row, column, z] = 1.0
    cam[row - 1 : row + 2, column - 1 : column + 2, z - 1] = 0.4
    return volume, cam


def _marked(image: np.ndarray) -> np.ndarray:
    """Mask of the pixels in the maximum's colour."""
    return np.all(image == MAX_COLOUR, axis=-1)


def _above_key(image: np.ndarray) -> np.ndarray:
    """The figure without its CAM colour key (the last lines), whose red end would count as hot."""
    return image[: -(volume_views.KEY_SIZE[1] + LINE_HEIGHT + GAP)]


def _hot(image: np.ndarray) -> np.ndarray:
    """Mask of overlay pixels where the CAM is high (jet's red end; a zero CAM tints blue)."""
    return image[..., 0].astype(int) > image[..., 2].astype(int) + 30


def test_montage_is_readable_and_frames_only_the_tile_holding_the_cam_maximum():
    volume, cam = _volume_and_cam()
    montage = volume_views.slice_montage(volume, cam, "series: tumor")
    assert montage.dtype == np.uint8 and montage.ndim == 3 and montage.shape[1] >= READABLE_WIDTH
    # Only slice 7 holds CAM values above the jet mid-point, so its tile is the only one with hot pixels.
    hot_rows, hot_columns = np.nonzero(_hot(_above_key(montage)))
    rows, columns = np.nonzero(_marked(montage))
    assert hot_rows.size and rows.size
    # The frame (and the "max" label above it) encloses the hot tile, and no other tile: at most one tile wide.
    assert columns.min() < hot_columns.min() and hot_columns.max() < columns.max()
    assert rows.min() < hot_rows.min() and hot_rows.max() < rows.max()
    tile_width = montage.shape[1] // min(volume.shape[2], volume_views.MONTAGE_COLUMNS)
    assert columns.max() - columns.min() < tile_width
    # Slices 0-7 fill the first row of eight tiles, so slice 7's frame lies in the right-most column of tiles.
    assert columns.min() > montage.shape[1] - tile_width - GAP
    np.testing.assert_array_equal(montage, volume_views.slice_montage(volume, cam, "series: tumor"))


def test_a_deep_volume_shows_at_most_the_cap_of_slices_and_always_the_maximum():
    shown = volume_views.montage_slices(200, peak=101)
    assert len(shown) == volume_views.MONTAGE_MAX_TILES and 101 in shown
    assert shown == sorted(set(shown)) and shown[0] == 0 and shown[-1] == 199
    assert volume_views.montage_slices(5, peak=3) == [0, 1, 2, 3, 4]
    volume, cam = _volume_and_cam(shape=(6, 6, 40), peak=(3, 3, 21))
    montage = volume_views.slice_montage(volume, cam, "deep")
    assert _marked(montage).any() and _hot(_above_key(montage)).any()
    # 32 tiles in rows of eight: four rows of tiles under a two-line heading.
    assert montage.shape[0] > 4 * volume_views.TILE_MIN_SIDE


def test_a_large_volume_montage_is_shrunk_to_the_tile_cap():
    volume, cam = _volume_and_cam(shape=(600, 400, 16), peak=(300, 200, 1))
    montage = volume_views.slice_montage(volume, cam, "large")
    # Two rows of eight tiles of 256 x 171 px (the long side capped).
    assert montage.shape[1] == 8 * (math.ceil(400 * volume_views.TILE_MAX_SIDE / 600) + 2 * GAP)
    assert 2 * volume_views.TILE_MAX_SIDE < montage.shape[0] < 3 * volume_views.TILE_MAX_SIDE


def test_projections_are_readable_and_circle_the_cam_maximum_in_each_view():
    volume, cam = _volume_and_cam()
    height, width, depth = volume.shape
    views = volume_views.projections(volume, cam, "series: tumor")
    scale = READABLE_WIDTH / width
    # Axial (H x W), coronal (D x W) and sagittal (D x H) side by side, the axial view READABLE_WIDTH wide.
    assert views.shape[1] == round((2 * width + height) * scale) + 6 * GAP
    view_top = GAP + 2 * LINE_HEIGHT + GAP + LINE_HEIGHT
    axial = views[view_top : view_top + round(height * scale), GAP : GAP + READABLE_WIDTH]
    rows, columns = np.nonzero(_marked(axial))
    row, column, _ = PEAK
    assert abs(rows.mean() - (row + 0.5) * scale) < 2 and abs(columns.mean() - (column + 0.5) * scale) < 2
    assert _hot(axial)[round((row + 0.5) * scale), round((column + 0.5) * scale)]
    # The coronal and sagittal views (slices running down) circle the maximum at its slice.
    for left in (GAP + READABLE_WIDTH + 2 * GAP, GAP + 2 * (READABLE_WIDTH + 2 * GAP)):
        rows, _ = np.nonzero(_marked(views[view_top:, left : left + round(height * scale)]))
        assert abs(rows.mean() - (PEAK[2] + 0.5) * scale) < 2
    assert depth * scale < views.shape[0]


def test_cam_max_slice_and_shape_checks():
    volume, cam = _volume_and_cam()
    assert volume_views.cam_max_slice(cam) == PEAK[2]
    with pytest.raises(DataError, match="differs from the volume"):
        volume_views.slice_montage(volume, cam[..., :-1], "t")
    with pytest.raises(DataError, match=r"\(H, W, D\) volume"):
        volume_views.projections(volume[..., 0], cam[..., 0], "t")
