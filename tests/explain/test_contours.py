"""Tests of common.explain.contours on hand-made scans whose abnormal region is known."""

import dataclasses

import numpy as np
import pytest

from common.config import registry
from common.errors import DataError, ParameterError
from common.explain import contours

SIZE = 128
SETTINGS = contours.ContourSettings(
    outlier_sd=1.5, margin_fraction=0.016, air_filled_organs=("lung",), min_air_share=0.02
)


def disc(centre, radius, size=SIZE):
    rows, cols = np.mgrid[:size, :size]
    return np.hypot(rows - centre[0], cols - centre[1]) < radius


def scan(blob_centre=(45, 75), blob_radius=7.0, blob_value=0.9, rim=False, seed=0):
    """A grey body on black air with a bright round blob inside, a little noise; optionally a bright rim."""
    rng = np.random.default_rng(seed)
    body = disc((SIZE / 2, SIZE / 2), 0.42 * SIZE)
    image = np.where(body, 0.4, 0.0)
    if rim:  # like scalp fat: brighter than the blob, at the body's edge
        image = np.where(body & ~disc((SIZE / 2, SIZE / 2), 0.42 * SIZE - 2), 1.0, image)
    blob = disc(blob_centre, blob_radius)
    image = np.where(blob, blob_value, image) + 0.02 * rng.standard_normal((SIZE, SIZE))
    return np.clip(image, 0, 1), blob


def chest(nodule_centre=(60, 40), nodule_radius=6.0, seed=0):
    """A tissue-grey chest with two dark lungs; a nodule as grey as the chest wall sits in the left lung."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    body = disc((SIZE / 2, SIZE / 2), 0.45 * SIZE)
    image = np.where(body, 0.7, 0.0)
    for centre_col in (40, 88):
        lung = ((rows - 62) / 30) ** 2 + ((cols - centre_col) / 17) ** 2 < 1
        image = np.where(lung, 0.1, image)
    nodule = disc(nodule_centre, nodule_radius)
    image = np.where(nodule, 0.7, image) + 0.02 * rng.standard_normal((SIZE, SIZE))
    return np.clip(image, 0, 1), nodule


def test_contour_finds_a_bright_blob_not_the_body():
    image, blob = scan()
    found = contours.abnormal_region(image, "brain", SETTINGS)
    assert found.found
    assert contours.region_iou(found.region, blob) > 0.85
    rows, cols = np.nonzero(blob)
    assert np.all(np.abs(np.array(found.box) - [cols.min(), rows.min(), cols.max(), rows.max()]) <= 1)
    # The body is far larger than the region found.
    assert found.region.sum() < 2 * blob.sum()


def test_contour_ignores_a_bright_rim_at_the_body_edge():
    image, blob = scan(rim=True)
    found = contours.abnormal_region(image, None, SETTINGS)
    assert contours.region_iou(found.region, blob) > 0.85


def test_contour_region_is_filled_inside_a_dark_core():
    # A ring-enhancing tumour: bright rim, necrotic centre; the outline encloses the centre.
    image, blob = scan(blob_radius=9.0)
    image = np.where(disc((45, 75), 4.0), 0.2, image)
    found = contours.abnormal_region(image, None, SETTINGS)
    assert found.region[45, 75] and contours.region_iou(found.region, blob) > 0.85


def test_in_the_lungs_the_nodule_is_looked_for_among_air():
    image, nodule = chest()
    in_lung = contours.abnormal_region(image, "lung", SETTINGS)
    assert contours.region_iou(in_lung.region, nodule) > 0.8
    # The searched fields are the lungs (closed around the nodule), not the chest wall.
    assert in_lung.searched[nodule].all() and not in_lung.searched[SIZE // 2, SIZE // 2]
    # Against the whole body the nodule is as grey as the chest wall: the tissue rule does not find it.
    as_tissue = contours.abnormal_region(image, "brain", SETTINGS)
    assert contours.region_iou(as_tissue.region, nodule) < 0.2


@pytest.mark.parametrize("image", [np.zeros((SIZE, SIZE)), np.full((SIZE, SIZE), 0.5)])
def test_a_blank_image_has_no_contour(image):
    found = contours.abnormal_region(image, None, SETTINGS)
    assert not found.found and found.box is None and not found.region.any()
    assert np.array_equal(
        contours.draw_image_contour(image, found), contours.grey_uint8(image)[..., None].repeat(3, -1)
    )


def test_draw_image_contour_draws_green_outline_and_box_around_the_region():
    image, blob = scan()
    found = contours.abnormal_region(image, None, SETTINGS)
    drawn = contours.draw_image_contour(image, found).astype(int)
    green = (drawn[..., 1] == 255) & (drawn[..., 0] == 0) & (drawn[..., 2] == 0)
    rows, cols = np.nonzero(green)
    x0, y0, x1, y1 = found.box
    assert rows.min() == y0 and rows.max() == y1 and cols.min() == x0 and cols.max() == x1
    # Elsewhere the image is untouched.
    assert np.array_equal(drawn[~green], contours.grey_uint8(image)[..., None].repeat(3, -1)[~green])
    with pytest.raises(DataError):
        contours.draw_image_contour(image[:64, :64], found)


def test_region_iou_on_constructed_masks():
    first = np.zeros((10, 10), bool)
    second = np.zeros((10, 10), bool)
    first[0:4, 0:4] = True
    second[2:6, 0:4] = True  # 8 shared pixels of 24
    assert contours.region_iou(first, second) == pytest.approx(8 / 24)
    assert contours.region_iou(first, first) == 1.0
    assert contours.region_iou(first, ~first) == 0.0
    assert contours.region_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 0.0  # nothing found overlaps nothing
    with pytest.raises(DataError):
        contours.region_iou(first, second[:5])


def test_settings_come_from_the_registry_and_are_checked():
    section = registry.section("image_contours")
    settings = contours.ContourSettings.from_registry()
    assert settings.record() == section
    assert settings.is_air_filled("lung") and not settings.is_air_filled("brain") and not settings.is_air_filled(None)
    with pytest.raises(ParameterError):
        dataclasses.replace(settings, outlier_sd=-1.0)
    with pytest.raises(ParameterError):
        dataclasses.replace(settings, margin_fraction=0.5)
