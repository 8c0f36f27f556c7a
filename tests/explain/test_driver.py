"""Tests of common.explain.driver on tiny functional models, 2D and 3D, one model or one per fold."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses

import numpy as np
import pytest

from common.config import registry
from common.errors import DataError, ParameterError
from common.explain import driver
from common.explain.cams import CamExplainer, compute_cam
from common.explain.scores import energy_share, score_explanations
from tests.explain.helpers import random_images, tiny_model

SETTINGS = driver.ExplainSettings(seed=3, n_resamples=50, fraction=0.4, scorecam_max_channels=2)


def lesion_masks(images, empty=()):
    """A square lesion in the upper left of every image's grid; the images listed in ``empty`` have none."""
    masks = np.zeros(images.shape[:-1], bool)
    masks[:, 2:7, 3:8] = True
    masks[list(empty)] = False
    return masks


def subset(model, n=4, seed=1, empty=()):
    images = random_images(model, n=n, seed=seed)
    return driver.ImageSubset(np.arange(10, 10 + n), images, np.arange(n) % 2, lesion_masks(images, empty))


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
def test_explain_gives_each_methods_maps_and_scores_at_the_layer(three_d):
    model = tiny_model(three_d=three_d, pooled=True, seed=3)
    images = subset(model, empty=[1])
    explained = driver.explain(model, images, ["gradcam", "scorecam"], SETTINGS)
    assert explained.layer == "relu"  # the last convolutional layer by default
    assert list(explained.cams) == list(explained.scores) == list(explained.seconds) == ["gradcam", "scorecam"]
    assert explained.positions is images.positions and explained.masks is images.masks
    for method, cap in (("gradcam", None), ("scorecam", 2)):
        expected = CamExplainer(model, method).cams(images.images, images.targets, "relu", max_channels=cap)
        np.testing.assert_array_equal(explained.cams[method], expected)
        assert explained.scores[method] == score_explanations(
            expected, images.masks, seed=3, n_resamples=50, fraction=0.4
        )
        assert explained.scores[method]["iou"]["n_skipped_empty_mask"] == 1
        assert explained.seconds[method] >= 0
    at_conv = driver.explain(model, images, ["gradcam"], SETTINGS, layer="conv")
    assert at_conv.layer == "conv"
    np.testing.assert_array_equal(
        at_conv.cams["gradcam"], CamExplainer(model, "gradcam").cams(images.images, images.targets, "conv")
    )


def test_an_empty_subset_gives_an_explanation_without_maps():
    model = tiny_model(pooled=True)
    empty = driver.ImageSubset.take(random_images(model), np.zeros(4, int), np.array([], int), np.zeros((0, 16, 16)))
    explained = driver.explain(model, empty, ["gradcam"], SETTINGS)
    assert explained.layer == "relu" and len(explained.positions) == 0
    assert not explained.cams and not explained.scores and not explained.seconds


def test_fold_models_explain_each_volume_with_its_own_model():
    first, second = tiny_model(three_d=True, pooled=True, seed=3), tiny_model(three_d=True, pooled=True, seed=5)
    images = subset(first, n=5)
    owners = np.array([2, 1, 2, 2, 1])
    folds = driver.FoldModels({1: first, 2: second}, owners)
    explained = driver.explain(folds, images, ["gradcam", "gradcam++"], SETTINGS)
    for method in ("gradcam", "gradcam++"):
        for i, owner in enumerate(owners):
            model = first if owner == 1 else second
            expected = compute_cam(model, images.images[i : i + 1], images.targets[i], method=method, layer="relu")
            np.testing.assert_allclose(explained.cams[method][i], expected[0], atol=1e-6)
        assert explained.scores[method] == SETTINGS.score(explained.cams[method], images.masks)
    one = driver.owned_cams(
        driver.FoldModels({1: first, 2: second}, owners[:1]), images.images[:1], [1], "gradcam", None
    )
    np.testing.assert_allclose(one, compute_cam(second, images.images[:1], 1), atol=1e-6)
    with pytest.raises(DataError, match="owners"):
        driver.explain(driver.FoldModels({1: first}, owners[:2]), images, ["gradcam"], SETTINGS)


def test_image_subset_take_and_length_check():
    inputs = np.arange(5 * 2 * 2 * 1, dtype=np.float32).reshape(5, 2, 2, 1)
    taken = driver.ImageSubset.take(inputs, np.array([0, 1, 2, 0, 1]), [4, 1], np.ones((2, 2, 2), bool))
    np.testing.assert_array_equal(taken.images, inputs[[4, 1]])
    assert taken.targets.tolist() == [1, 1] and taken.positions.tolist() == [4, 1] and len(taken) == 2
    with pytest.raises(DataError, match="differ in length"):
        driver.ImageSubset(np.arange(2), inputs[:2], np.arange(2), np.ones((3, 2, 2)))


def test_settings_from_params_read_the_runs_typed_parameters():
    iqoth = registry.resolve("iqoth", "smoke", {"seed": 1, "n_resamples": 20, "scorecam_max_channels": 8})
    assert driver.ExplainSettings.from_params(iqoth) == driver.ExplainSettings(1, 20, iqoth.cam_fraction, 8)
    volume = registry.resolve("gradcam-3d", "smoke", {"seed": 1, "n_resamples": 20, "scorecam_max_channels": None})
    assert driver.ExplainSettings.from_params(volume) == driver.ExplainSettings(1, 20, volume.cam_fraction, None)
    assert SETTINGS.max_channels("scorecam") == 2 and SETTINGS.max_channels("gradcam++") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.seed = 2  # type: ignore[misc]


def test_best_layer_breaks_ties_by_energy_share_then_by_order():
    def scores(pointing, energy):
        return {"pointing_game": {"value": pointing}, "energy_share": {"value": energy}}

    table = {"a": scores(0.5, 0.1), "b": scores(0.9, 0.1), "c": scores(0.9, 0.2), "d": scores(0.9, 0.2)}
    assert driver.best_layer(table, ["a", "b", "c", "d"]) == "c"
    assert driver.best_layer({k: table[k] for k in "dc"}, ["d", "c"]) == "d"
    assert driver.best_layer({}, ["e"]) is None


def test_select_layer_scores_every_candidate_and_records_the_choice():
    model = tiny_model(pooled=True, seed=4)
    images = subset(model, n=4, seed=2)
    selection = driver.select_layer(model, images, ["conv2", "conv"], SETTINGS)
    maps = CamExplainer(model, "gradcam").cams_at_layers(images.images, images.targets, ["conv2", "conv"])
    assert list(selection.validation) == ["conv2", "conv"]
    for layer in ("conv2", "conv"):
        assert selection.validation[layer] == SETTINGS.score(maps[layer], images.masks)
    assert selection.chosen == driver.best_layer(selection.validation, ["conv2", "conv"]) and selection.n == 4
    assert selection.record() == {
        "chosen": selection.chosen,
        "validation": selection.validation,
        "n": 4,
        "seconds": selection.seconds,
    }
    nothing = driver.select_layer(model, subset(model, n=0), ["conv2", "conv"], SETTINGS, started=0.0)
    assert nothing.chosen is None and nothing.validation == {} and nothing.n == 0 and nothing.seconds > 0


def test_explain_split_scores_the_layer_and_the_validation_choice():
    model = tiny_model(pooled=True, seed=4)
    test = subset(model, n=5, seed=2)
    calls = []

    def validation():
        calls.append(1)
        return subset(model, n=4, seed=7)

    scored = driver.explain_split(
        model, test, "relu", ["gradcam", "gradcam++"], SETTINGS, ["conv2", "conv"], validation
    )
    assert len(calls) == 1
    chosen = scored.selection.chosen
    assert chosen in ("conv2", "conv") and scored.chosen.layer == chosen
    assert scored.selection == dataclasses.replace(
        driver.select_layer(model, validation(), ["conv2", "conv"], SETTINGS), seconds=scored.selection.seconds
    )
    assert scored.chosen.positions is test.positions and scored.chosen.masks is test.masks
    assert scored.chosen.scores == driver.explain(model, test, ["gradcam"], SETTINGS, chosen).scores
    assert scored.last.scores == driver.explain(model, test, ["gradcam", "gradcam++"], SETTINGS, "relu").scores
    assert scored.scores == {model.name: scored.last.scores, f"{model.name} at {chosen}": scored.chosen.scores}
    assert set(scored.seconds) == {"relu", "choosing the layer (validation)", f"chosen: {chosen}"}
    assert scored.layer_shapes == {"relu": (8, 8), "conv2": (8, 8), "conv": (16, 16)}
    assert list(scored.test_table().index) == [
        "relu (8, 8), gradcam",
        "relu (8, 8), gradcam++",
        f"{chosen} {scored.layer_shapes[chosen]}, gradcam, chosen on validation",
    ]
    assert list(scored.validation_table().index) == ["conv2 (8, 8)", "conv (16, 16)"]


def test_best_and_worst_pick_by_energy_share_from_the_chosen_layer():
    model = tiny_model(pooled=True, seed=4)
    test = subset(model, n=5, seed=2)
    scored = driver.explain_split(model, test, "relu", ["gradcam"], SETTINGS, ["conv"], lambda: subset(model, seed=7))
    positions, maps, masks, layer = scored.best_and_worst(2)
    assert layer == "conv" and len(positions) == len(maps) == len(masks) == 4
    energy = energy_share(maps, masks)
    assert energy[:2].min() >= energy[2:].max()  # the best two before the worst two
    np.testing.assert_array_equal(maps, scored.chosen.cams["gradcam"][positions - 10])
    assert sorted(scored.best_and_worst(5)[0]) == sorted(test.positions)  # every image once
    plain = driver.ExplanationSet(model.name, scored.last)
    assert plain.best_and_worst(1)[3] == "relu" and plain.validation_table() is None


def test_explain_split_without_a_scored_image_or_candidates():
    model = tiny_model(pooled=True, seed=4)
    unused = []
    no_lesion = subset(model, n=3, empty=[0, 1, 2])
    # Scores of images without a lesion are undefined but present: the split is scored.
    scored = driver.explain_split(model, no_lesion, "relu", ["gradcam"], SETTINGS)
    assert scored.selection is None and scored.chosen is None and set(scored.seconds) == {"relu"}
    assert np.isnan(scored.scores[model.name]["gradcam"]["iou"]["value"])
    nothing = subset(model, n=0)
    assert driver.explain_split(model, nothing, "relu", ["gradcam"], SETTINGS, ["conv"], unused.append) is None
    assert not unused  # no validation images made for a split without anything to score
    with pytest.raises(ParameterError, match="validation"):
        driver.explain_split(model, nothing, "relu", ["gradcam"], SETTINGS, ["conv"])
