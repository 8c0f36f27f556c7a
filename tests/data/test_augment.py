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
        ({"shear": 0.1}, r"Unknown augmentation\(s\) \['shear'\]"),
        ({"flip": "diagonal"}, "flip='diagonal'"),
        ({"rotation": 1.5}, "rotation=1.5 must be a fraction"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ParameterError, match=message):
        augment.augmenter(settings)
