"""Tests of common.data.volume_ops: resampling, min-max scaling and Sobel edges of (H, W, D) arrays."""

import numpy as np
import pytest

from common.data.volume_ops import min_max_normalise, resample, sobel_enhance
from common.errors import ParameterError


def test_resample_keeps_volume_when_nothing_asked_and_repeats_a_lone_slice():
    volume = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(resample(volume, None, None), volume)
    lone = resample(volume[:, :, :1], (2, 3), 3)
    assert lone.shape == (2, 3, 3) and np.all(lone == volume[:, :, :1])


def test_min_max_normalise_range_and_constant_volume():
    normalised = min_max_normalise(np.array([[-1000.0, 0.0], [500.0, 1000.0]]))
    np.testing.assert_allclose(normalised, [[0.0, 0.5], [0.75, 1.0]])
    assert np.all(min_max_normalise(np.full((2, 2, 2), 7.0)) == 0.0)


def test_sobel_enhance_brightens_edges_and_keeps_range():
    cube = np.zeros((12, 12, 12), dtype=np.float32)
    cube[3:9, 3:9, 3:9] = 1.0
    np.testing.assert_allclose(sobel_enhance(cube, 0.0), cube)
    enhanced = sobel_enhance(cube, 0.5)
    assert enhanced.shape == cube.shape and enhanced.dtype == np.float32
    assert enhanced.min() == pytest.approx(0.0) and enhanced.max() == pytest.approx(1.0)
    # Same original value, but the face voxel sits on an edge and the centre does not.
    assert enhanced[3, 6, 6] > enhanced[6, 6, 6]
    hu = cube * 1000.0 - 1000.0
    assert sobel_enhance(hu, 0.5).min() == pytest.approx(-1000.0)
    with pytest.raises(ParameterError, match="sobel_weight"):
        sobel_enhance(cube, -1.0)
