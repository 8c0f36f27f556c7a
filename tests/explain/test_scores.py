"""Tests of common.explain.scores on hand-made CAMs and masks with known scores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from common.errors import DataError, ParameterError
from common.explain import scores as em


def square_mask(size=224, top_left=(100, 100), side=20, n=1):
    mask = np.zeros((n, size, size), bool)
    mask[:, top_left[0] : top_left[0] + side, top_left[1] : top_left[1] + side] = True
    return mask


def peaked_cam(shape, peak, n=1):
    """A smooth map, highest at the given pixel/voxel."""
    grid = np.indices(shape)
    squared = sum((axis - centre) ** 2 for axis, centre in zip(grid, peak))
    return np.repeat(np.exp(-squared / 200.0)[None], n, axis=0).astype(np.float32)


@pytest.mark.parametrize(
    "peak_column,tolerance_px,expected",
    [(110, 15, True), (130, 15, True), (134, 15, True), (135, 15, False), (160, 15, False), (130, 0, False)],
)
def test_pointing_game_inside_within_and_beyond_tolerance(peak_column, tolerance_px, expected):
    # The mask's last column is 119, so a peak at column c lies c - 119 px away.
    mask = square_mask()
    cam = peaked_cam((224, 224), (110, peak_column))
    assert em.pointing_game(cam, mask, tolerance_px=tolerance_px).tolist() == [expected]


def test_pointing_game_tolerance_scales_with_image_size():
    # At 112 px the 15 px tolerance becomes 7.5 px: 8 px away misses, 7 px hits.
    mask = square_mask(size=112, top_left=(50, 50), side=10)
    far = peaked_cam((112, 112), (55, 67))
    near = peaked_cam((112, 112), (55, 66))
    hits = em.pointing_game(np.concatenate([far, near]), np.concatenate([mask, mask]))
    assert hits.tolist() == [False, True]


def test_pointing_game_flat_cam_points_nowhere():
    assert em.pointing_game(np.ones((1, 224, 224)), square_mask()).tolist() == [False]


def test_pointing_game_3d():
    mask = np.zeros((2, 32, 32, 16), bool)
    mask[:, 10:14, 10:14, 5:9] = True
    cams = np.concatenate([peaked_cam((32, 32, 16), (12, 12, 6)), peaked_cam((32, 32, 16), (28, 28, 14))])
    assert em.pointing_game(cams, mask).tolist() == [True, False]


def test_energy_share_of_uniform_mask_and_zero_cams():
    mask = square_mask(n=3)
    cams = np.stack([np.full((224, 224), 0.3), mask[0].astype(float), np.zeros((224, 224))])
    shares = em.energy_share(cams, mask)
    np.testing.assert_allclose(shares, [400 / 224**2, 1.0, 0.0])


def test_energy_share_3d_uniform_equals_volume_share():
    mask = np.zeros((1, 16, 16, 8), bool)
    mask[0, :4, :4, :2] = True
    np.testing.assert_allclose(em.energy_share(np.ones(mask.shape), mask), [32 / (16 * 16 * 8)])


def test_iou_known_values_2d_and_3d():
    mask = square_mask(size=64, top_left=(10, 10), side=10, n=3)
    disjoint = np.zeros((64, 64))
    disjoint[40:50, 40:50] = 1.0
    half = np.zeros((64, 64))
    half[10:20, 15:25] = 1.0  # overlaps 50 of 150 pixels in the union
    cams = np.stack([mask[0] * 0.8, disjoint, half])
    np.testing.assert_allclose(em.iou(cams, mask), [1.0, 0.0, 50 / 150])
    volume_mask = np.zeros((1, 8, 8, 4), bool)
    volume_mask[0, 2:5, 2:5, 1:3] = True
    np.testing.assert_allclose(em.iou(volume_mask.astype(float), volume_mask), [1.0])


def test_cam_regions_threshold_each_map_at_a_fraction_of_its_own_peak():
    cams = np.zeros((3, 4, 4), np.float32)
    cams[0] = np.arange(16).reshape(4, 4)  # peak 15: >= 7.5 keeps the values 8..15
    cams[1, 0, 0] = 0.2  # a faint map keeps its own peak
    regions = em.cam_regions(cams, 0.5)
    assert regions[0].sum() == 8 and regions[0].reshape(-1)[8:].all()
    assert regions[1].sum() == 1 and regions[1, 0, 0]
    assert not regions[2].any()  # an all-zero map has no region
    with pytest.raises(ParameterError):
        em.cam_regions(cams, 1.5)


def test_iou_curve_of_a_blob_against_its_core():
    mask = np.zeros((1, 64, 64), bool)
    cam = peaked_cam((64, 64), (32, 32))
    mask[0] = cam[0] >= 0.5
    fractions, ious = em.iou_curve(cam, mask)
    assert len(fractions) == len(ious) == 19
    assert ious[np.argmin(np.abs(fractions - 0.5))] == pytest.approx(1.0)
    # Away from 0.5 the thresholded region grows or shrinks away from the mask.
    assert ious[0] < 0.5 and ious[-1] < 0.5


def test_empty_or_mismatched_masks_are_rejected():
    with pytest.raises(DataError, match="empty"):
        em.pointing_game(np.ones((2, 8, 8)), np.stack([np.ones((8, 8)), np.zeros((8, 8))]))
    with pytest.raises(DataError, match="shape"):
        em.energy_share(np.ones((1, 8, 8)), np.ones((1, 16, 16)))


def test_score_explanations_skips_empty_masks_and_brackets_values():
    rng = np.random.default_rng(0)
    n = 12
    masks = square_mask(size=64, top_left=(20, 20), side=12, n=n + 2)
    masks[-2:] = False  # two normal cases without a lesion
    cams = []
    for i in range(n + 2):
        inside = i % 2 == 0
        peak = (25, 25) if inside else (58, 58)
        cams.append(peaked_cam((64, 64), peak)[0] + 0.05 * rng.random((64, 64)))
    scores = em.score_explanations(np.stack(cams), masks, seed=0)
    assert set(scores) == {"pointing_game", "energy_share", "iou"}
    assert scores["pointing_game"]["value"] == pytest.approx(0.5)
    for entry in scores.values():
        low, high = entry["ci95"]
        assert low <= entry["value"] <= high and low < high
        assert entry["n"] == n and entry["n_skipped_empty_mask"] == 2
    assert scores == em.score_explanations(np.stack(cams), masks, seed=0)


def test_score_explanations_without_lesions_gives_nan():
    scores = em.score_explanations(np.ones((2, 8, 8)), np.zeros((2, 8, 8)))
    assert np.isnan(scores["iou"]["value"]) and scores["iou"]["n"] == 0


def trained_blob_model():
    """A tiny CNN trained for a few steps to tell images with a bright blob (class 1) from noise."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x))
    rng = np.random.default_rng(0)
    images = 0.1 * rng.random((64, 16, 16, 1)).astype(np.float32)
    labels = np.arange(64) % 2
    images[labels == 1, 4:9, 6:11] += 0.9
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=3, batch_size=16, verbose=0)
    return model, images[:4], labels[:4]


def test_randomisation_check_cascades_top_down_and_leaves_model_alone():
    model, images, labels = trained_blob_model()
    weights_before = [w.copy() for w in model.get_weights()]
    steps = em.randomisation_check(model, images, labels, method="gradcam", seed=0)
    assert [step["layer"] for step in steps] == ["head", "bn", "conv"]
    assert [step["step"] for step in steps] == [1, 2, 3]
    for step in steps:
        assert -1.0 <= step["spearman"] <= 1.0
        assert len(step["spearman_per_image"]) == len(images)
    # With every layer redrawn the explanation no longer resembles the trained one.
    assert steps[-1]["spearman"] < 0.9
    for before, after in zip(weights_before, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert em.randomisation_check(model, images, labels, n_layers=1, seed=0) == steps[:1]


def test_randomisation_table_is_the_check_as_a_table():
    model, images, labels = trained_blob_model()
    steps = em.randomisation_check(model, images, labels, n_layers=2, seed=3, layer="conv")
    table = em.randomisation_table(model, images, labels, n_layers=2, seed=3, layer="conv")
    assert list(table.columns) == ["step", "layer", "spearman"]
    assert table.to_dict("records") == [{k: step[k] for k in ("step", "layer", "spearman")} for step in steps]


def test_a_map_that_is_exactly_the_lesion_scores_the_maximum_of_every_localisation_score():
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 3:9] = True
    masks[1, 10:14, 10:12] = True
    masks[2, 0:16, 0:1] = True
    maps = masks.astype(np.float32)
    assert em.pointing_game(maps, masks).all()
    np.testing.assert_allclose(em.energy_share(maps, masks), 1.0)
    np.testing.assert_allclose(em.iou(maps, masks), 1.0)
    # Any mass outside the lesion lowers the energy share below that maximum.
    assert (em.energy_share(maps + 0.01, masks) < 1.0).all()
