"""Tests of common.explain.overlays on hand-made maps."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from common.explain import overlays


def disc_cam(size=64, centre=(40, 22), radius=8.0):
    rows, cols = np.mgrid[:size, :size]
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return np.exp(-0.5 * (distance / radius) ** 2).astype(np.float32), distance


def test_cam_region_box_of_a_gaussian_blob():
    cam, distance = disc_cam()
    # cam >= 0.5 * max is the disc of radius r * sqrt(2 ln 2) around the centre.
    rows, cols = np.nonzero(distance <= 8.0 * np.sqrt(2 * np.log(2)))
    true_box = (cols.min(), rows.min(), cols.max(), rows.max())
    contours, box = overlays.cam_region(cam, fraction=0.5)
    assert len(contours) == 1
    assert np.all(np.abs(np.array(box) - np.array(true_box)) <= 2)


def test_cam_region_picks_the_largest_of_two_regions_and_handles_zero_maps():
    cam = np.zeros((40, 40), np.float32)
    cam[5:8, 5:8] = 1.0
    cam[20:35, 10:30] = 0.9
    contours, box = overlays.cam_region(cam, fraction=0.5)
    assert len(contours) == 2
    assert box == (10, 20, 29, 34)
    assert overlays.cam_region(np.zeros((8, 8)), 0.5) == ([], None)


def test_draw_contours_draws_green_outline_and_box():
    cam, _ = disc_cam()
    image = np.full((64, 64), 0.5, np.float32)
    drawn = overlays.draw_contours(image, cam)
    assert drawn.shape == (64, 64, 3) and drawn.dtype == np.uint8
    green = np.all(drawn == (0, 255, 0), axis=-1)
    _, (x0, y0, x1, y1) = overlays.cam_region(cam)
    assert green[y0, x0 : x1 + 1].all() and green[y0 : y1 + 1, x1].all()
    assert not green[40, 22], "the centre of the region stays unpainted"
    assert np.all(drawn[~green] == 128)


@pytest.mark.parametrize(
    "image",
    [
        np.full((32, 32), 0.5),
        np.full((32, 32), 127.5),
        np.full((32, 32, 1), 128, np.uint8),
        np.full((32, 32, 3), 128, np.uint8),
    ],
    ids=["unit-float", "byte-float", "grey-uint8", "rgb-uint8"],
)
def test_overlay_blends_colour_map_over_image(image):
    cam = np.zeros((16, 16), np.float32)
    cam[8:, :] = 1.0
    blended = overlays.overlay(image, cam, alpha=0.4)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(overlays.overlay(image, cam, alpha=0.0), np.full((32, 32, 3), 128, np.uint8))
    # jet: low values blue, high values red.
    top, bottom = blended[0, 0].astype(int), blended[-1, 0].astype(int)
    assert top[2] > top[0] and bottom[0] > bottom[2]
