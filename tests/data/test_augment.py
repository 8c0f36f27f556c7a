"""Stateless batch augmentation: geometry, ranges, repeatability, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from common.data import augment
from common.errors import ParameterError

SEED = tf.constant([3, 7], dtype=tf.int64)


def dots(n: int, size: int = 33) -> np.ndarray:
    """``n`` black images with one bright pixel each, at different places."""
    images = np.zeros((n, size, size, 1), np.float32)
    rng = np.random.default_rng(0)
    for image, (row, col) in zip(images, rng.integers(10, size - 10, size=(n, 2))):
        image[row, col] = 255.0
    return images


def test_each_image_is_moved_by_its_own_transform():
    images = dots(16)
    settings = {"rotation": 0.1, "shift": 0.1, "zoom": 0.1, "flip": "horizontal_and_vertical"}
    transforms = augment.affine_transforms(settings, SEED, 16, 33, 33).numpy()
    moved = augment.random_affine(tf.constant(images), SEED, settings).numpy()
    assert len({tuple(np.round(row, 4)) for row in transforms}) == 16  # one draw per image
    for image, output, (a0, a1, a2, b0, b1, b2, _, _) in zip(images, moved, transforms):
        row, col = np.unravel_index(output[..., 0].argmax(), output.shape[:2])
        # The brightest output pixel samples the input next to the dot.
        source_x, source_y = a0 * col + a1 * row + a2, b0 * col + b1 * row + b2
        dot_row, dot_col = np.unravel_index(image[..., 0].argmax(), image.shape[:2])
        assert abs(source_x - dot_col) < 1 and abs(source_y - dot_row) < 1


def test_draws_stay_within_the_asked_ranges():
    n = 256
    rotation = augment.affine_transforms({"rotation": 0.05}, SEED, n, 20, 20).numpy()
    angles = np.arctan2(rotation[:, 3], rotation[:, 0])
    assert np.abs(angles).max() <= 2 * math.pi * 0.05 and np.abs(angles).max() > 2 * math.pi * 0.04
    np.testing.assert_allclose(np.hypot(rotation[:, 0], rotation[:, 3]), 1.0, rtol=1e-6)
    zoom = augment.affine_transforms({"zoom": 0.1}, SEED, n, 20, 20).numpy()
    assert zoom[:, 0].min() >= 0.9 and zoom[:, 0].max() <= 1.1 and np.ptp(zoom[:, 0]) > 0.15
    np.testing.assert_array_equal(zoom[:, 0], zoom[:, 4])  # one scale for both axes
    shift = augment.affine_transforms({"shift": 0.1}, SEED, n, 20, 40).numpy()
    assert np.abs(shift[:, 2]).max() <= 4 and np.abs(shift[:, 5]).max() <= 2  # 0.1 of 40 wide, 20 high


def test_horizontal_flip_mirrors_about_half_the_images_exactly():
    images = np.random.default_rng(1).random((64, 12, 12, 2)).astype(np.float32)
    flipped = augment.random_affine(tf.constant(images), SEED, {"flip": "horizontal"}).numpy()
    same = [np.array_equal(out, image) for out, image in zip(flipped, images)]
    mirrored = [np.allclose(out, image[:, ::-1]) for out, image in zip(flipped, images)]
    assert all(a != b for a, b in zip(same, mirrored))  # each image one or the other
    assert 16 < sum(mirrored) < 48


def test_same_seed_same_batch_and_nothing_asked_nothing_done():
    images = tf.constant(dots(4))
    settings = {"rotation": 0.1, "zoom": 0.1}
    first = augment.random_affine(images, SEED, settings).numpy()
    np.testing.assert_array_equal(first, augment.random_affine(images, SEED, settings).numpy())
    other = augment.random_affine(images, tf.constant([3, 8], tf.int64), settings).numpy()
    assert not np.array_equal(first, other)
    assert augment.augmenter({"rotation": 0, "flip": None}) is None
    assert augment.random_affine(images, SEED, {}) is images


def test_batch_seeds_repeat_per_seed_and_change_per_epoch():
    def seeds(dataset):
        return [seed.numpy().tolist() for _, seed in dataset]

    paired = augment.with_batch_seeds(tf.data.Dataset.range(5), seed=11)
    first, second = seeds(paired), seeds(paired)
    assert len(first) == 5 and len({tuple(s) for s in first}) == 5
    assert first != second  # a new draw each epoch
    again = augment.with_batch_seeds(tf.data.Dataset.range(5), seed=11)
    assert seeds(again) == first and seeds(again) == second


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"sheer": 0.1}, r"Unknown augmentation\(s\) \['sheer'\]"),
        ({"flip": "diagonal"}, "flip='diagonal'"),
        ({"rotation": 1.5}, "rotation=1.5 must be a fraction"),
        ({"shear": 1.5}, "shear=1.5 must be a fraction"),
        ({"fill": "reflect"}, "fill='reflect': use one of constant, nearest"),
        ({"zoom": 0.1, "zoom_axes": "diagonal"}, "zoom_axes='diagonal': use one of together, independent"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ParameterError, match=message):
        augment.augmenter(settings)


# Transforms the code drew for this dict before shear, zoom_axes and fill existed (commit c2a5da1, seed [3, 7],
# 3 images of 24 x 32): the augmentation of resnet50-gradcam's default profile. They must not change.
BEFORE_SETTINGS = {"rotation": 0.04, "shift": 0.06, "flip": "horizontal", "zoom": 0.08}
BEFORE_TRANSFORMS = [
    [-0.9570584297180176, 0.2372989058494568, 26.47954750061035, 0.2372989058494568, 0.9570584297180176,
     -3.322476863861084, 0.0, 0.0],
    [-0.9582724571228027, -0.09994842857122421, 32.27722930908203, -0.09994842857122421, 0.9582724571228027,
     1.1843546628952026, 0.0, 0.0],
    [1.0309399366378784, -0.13862137496471405, 0.446752667427063, 0.13862137496471405, 1.0309399366378784,
     -2.736598253250122, 0.0, 0.0],
]  # fmt: skip


def test_a_dict_without_the_later_kinds_draws_what_it_drew_before():
    transforms = augment.affine_transforms(BEFORE_SETTINGS, SEED, 3, 24, 32).numpy()
    np.testing.assert_array_equal(transforms, np.array(BEFORE_TRANSFORMS, np.float32))
    # The constant fill stays the default: a shifted bright image opens black gaps.
    bright = tf.fill((8, 24, 32, 1), 200.0)
    assert augment.random_affine(bright, SEED, {"shift": 0.3}).numpy().min() == 0.0


def test_shear_moves_columns_in_proportion_to_the_row_within_its_range():
    n = 256
    transforms = augment.affine_transforms({"shear": 0.2}, SEED, n, 20, 20).numpy()
    np.testing.assert_array_equal(transforms[:, [0, 3, 4]], np.tile([1.0, 0.0, 1.0], (n, 1)))
    shear = transforms[:, 1]
    assert np.abs(shear).max() <= 0.2 and np.abs(shear).max() > 0.19 and (shear < 0).any() and (shear > 0).any()
    # About the centre: the centre pixel stays where it is.
    np.testing.assert_allclose(transforms[:, 2], -shear * 9.5, atol=1e-5)
    # With a rotation the shear is applied before it: input = R(angle) H(shear) (output - centre).
    both = augment.affine_transforms({"shear": 0.2, "rotation": 0.05}, SEED, n, 20, 20).numpy()
    angle = np.arctan2(both[:, 3], both[:, 0])
    np.testing.assert_allclose(both[:, 1], np.cos(angle) * shear - np.sin(angle), atol=1e-6)
    np.testing.assert_allclose(both[:, 4], np.sin(angle) * shear + np.cos(angle), atol=1e-6)


def test_independent_zoom_draws_a_scale_per_axis():
    n = 256
    together = augment.affine_transforms({"zoom": 0.2}, SEED, n, 20, 20).numpy()
    apart = augment.affine_transforms({"zoom": 0.2, "zoom_axes": "independent"}, SEED, n, 20, 20).numpy()
    np.testing.assert_array_equal(apart[:, 0], together[:, 0])  # the width's scale is the one drawn before
    assert not np.allclose(apart[:, 0], apart[:, 4])
    for scale in (apart[:, 0], apart[:, 4]):
        assert scale.min() >= 0.8 and scale.max() <= 1.2 and np.ptp(scale) > 0.35
    assert abs(np.corrcoef(apart[:, 0], apart[:, 4])[0, 1]) < 0.2


def test_nearest_fill_repeats_the_edge_instead_of_black():
    rows = np.linspace(10, 250, 24, dtype=np.float32)  # each row one value, 10 at the top, 250 at the bottom
    images = tf.constant(np.broadcast_to(rows[None, :, None, None], (8, 24, 24, 1)))
    settings = {"shift": 0.3, "rotation": 0.1}
    nearest = augment.random_affine(images, SEED, {**settings, "fill": "nearest"}).numpy()
    constant = augment.random_affine(images, SEED, settings).numpy()
    assert constant.min() == 0.0 and nearest.min() >= 10.0 - 1e-3 and nearest.max() <= 250.0 + 1e-3
    # Where an output pixel samples the input well inside its edges, both fills agree.
    transforms = augment.affine_transforms(settings, SEED, 8, 24, 24).numpy()
    row, col = np.mgrid[0:24, 0:24]
    for out_nearest, out_constant, (a0, a1, a2, b0, b1, b2, _, _) in zip(nearest, constant, transforms):
        source_x, source_y = a0 * col + a1 * row + a2, b0 * col + b1 * row + b2
        inside = (source_x > 1) & (source_x < 22) & (source_y > 1) & (source_y < 22)
        assert inside.sum() > 100
        np.testing.assert_allclose(out_nearest[inside], out_constant[inside], rtol=1e-5)


def test_describe_names_each_kind_in_the_units_image_data_generator_uses():
    shear = math.tan(math.radians(0.15))
    settings = {"rotation": 10 / 360, "shift": 0.2, "zoom": 0.2, "zoom_axes": "independent",
                "shear": shear, "flip": "horizontal_and_vertical", "fill": "nearest"}  # fmt: skip
    assert augment.describe(settings) == (
        "rotation ±10°, shift ±0.2, zoom ±0.2 per axis, shear ±0.15°, flips horizontal_and_vertical, fill nearest"
    )
    assert augment.describe({"zoom": 0.1, "fill": "constant"}) == "zoom ±0.1"
    assert augment.describe(None) == augment.describe({"flip": None}) == "none"
