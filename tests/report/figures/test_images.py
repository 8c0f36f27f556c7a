"""Tests of common.report.figures.images: image grids with mask outlines and CAM grids."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.report import figures
from tests.report.figures.helpers import assert_draws_a_png


def disc(size=64, radius=12, centre=(32, 36)):
    rows, cols = np.mgrid[:size, :size]
    return ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2).astype(float)


def gray_image(seed):
    rng = np.random.default_rng(seed)
    return np.clip(disc() * 150 + rng.normal(60, 20, (64, 64)), 0, 255)


def make_cases():
    """(name, call that draws into the path it is given) for every image figure."""
    cam_2d = np.exp(-((np.mgrid[:64, :64] - np.array([32, 36])[:, None, None]) ** 2).sum(axis=0) / 200.0)
    overlay = np.stack([gray_image(0)] * 3, axis=-1) * 0.6 + plt.get_cmap("jet")(cam_2d)[..., :3] * 255 * 0.4
    return {
        "image_grid": lambda path: figures.image_grid(
            [gray_image(k) for k in range(6)],
            [f"malignant_{k:04d}.png" for k in range(6)],
            masks=[disc()] * 5 + [None],
            ncols=3,
            path=path,
        ),
        "cam_grid": lambda path: figures.cam_grid(
            [
                {
                    "image": gray_image(k),
                    "cam": cam_2d,
                    "overlay": overlay,
                    "mask": disc(),
                    "title": f"true malignant / predicted malignant (p = 0.9{k})",
                }
                for k in range(2)
            ],
            path=path,
            cam_label="Grad-CAM",
        ),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    assert_draws_a_png(make_cases()[kind], figure_dir / f"fig_{kind}.png")


def test_image_grid_wraps_titles_wider_than_a_panel():
    images = np.zeros((2, 8, 8))
    long = "MobileNetV2 at block_13_expand_relu (p = 0.71)"
    figure = figures.image_grid(images, [long, "cancer"], ncols=2)
    try:
        titles = [axis.get_title() for axis in figure.axes]
        assert titles[0].replace("\n", " ") == long and "\n" in titles[0]
        assert titles[1] == "cancer"
    finally:
        plt.close(figure)
