"""Tests of common.report.figures.volumes: orthogonal views, maximum projections and slice montages."""

import numpy as np
import pytest

from common.report import figures
from tests.report.figures.helpers import assert_draws_a_png


def phantom_volume(shape=(48, 48, 20)):
    rows, cols, depth = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    body = (rows**2 + cols**2 < 0.8) * 400.0 - 1000.0
    lesion = ((rows - 0.2) ** 2 + (cols + 0.3) ** 2 + depth**2) < 0.05
    cam = np.exp(-((rows - 0.2) ** 2 + (cols + 0.3) ** 2 + depth**2) / 0.1)
    return body + lesion * 300.0, cam, lesion.astype(np.uint8)


def make_cases():
    """(name, call that draws into the path it is given) for every volume figure."""
    volume, cam, mask = phantom_volume()
    return {
        "volume_views": lambda path: figures.volume_views(volume, cam=cam, mask=mask, path=path),
        "volume_views_mip": lambda path: figures.volume_views(volume, cam=cam, projection="max", path=path),
        "slice_montage": lambda path: figures.slice_montage(volume, cam=cam, mask=mask, n=8, path=path),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    assert_draws_a_png(make_cases()[kind], figure_dir / f"fig_{kind}.png")


def test_orthogonal_views_shapes_and_projection():
    volume = np.zeros((6, 5, 4))
    volume[1, 2, 3] = 7.0
    middle = figures.orthogonal_views(volume, "slice")
    maximum = figures.orthogonal_views(volume, "max")
    assert middle["axial"].shape == (6, 5) and middle["coronal"].shape == (4, 5) and middle["sagittal"].shape == (4, 6)
    assert middle["axial"].max() == 0.0
    assert maximum["axial"][1, 2] == 7.0 and maximum["coronal"][3, 2] == 7.0 and maximum["sagittal"][3, 1] == 7.0
