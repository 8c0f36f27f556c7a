"""Tests of common.experiments.explaining: the explained images, the driver's calls, and the figures' rows."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from common.config import registry
from common.experiments import explaining, fitting, loading
from common.explain import driver
from common.explain.scores import energy_share


def test_explained_subset_keeps_correct_lesion_images_only():
    samples = pd.DataFrame(
        {
            "label_index": [0, 1, 1, 2],
            "label": ["normal", "benign", "benign", "malignant"],
            "mask_path": [None, "a.png", "b.png", "c.png"],
        }
    )
    probabilities = np.eye(3)[[0, 1, 0, 2]]  # the second benign image is misclassified
    assert explaining.explained_subset(samples, probabilities, n=10).tolist() == [1, 3]
    assert explaining.explained_subset(samples, probabilities, n=10, lesion_classes=["malignant"]).tolist() == [3]
    # the smoke profile scores every lesion image, right or wrong
    assert explaining.explained_subset(samples, probabilities, n=10, only_correct=False).tolist() == [1, 2, 3]


def test_in_turn_takes_the_first_of_every_label_then_the_second():
    assert explaining.in_turn(np.array(["a", "a", "b", "a", "b"])).tolist() == [0, 2, 1, 4, 3]
    assert explaining.in_turn(np.array(["b", "b", "a"])).tolist() == [0, 2, 1]
    assert explaining.in_turn(np.array([], str)).tolist() == []


def test_scored_images_come_from_every_lesion_class(tiny_params):
    samples = loading.load_samples(tiny_params).samples  # class by class: normal, benign, malignant
    probabilities = np.eye(3)[samples["label_index"].to_numpy()]  # every image right
    params = dataclasses.replace(tiny_params, n_explain=4)
    positions, masks = explaining.lesion_subset(params, samples, probabilities, 32)
    assert samples["label"].iloc[positions].tolist() == ["benign", "malignant", "benign", "malignant"]
    assert masks.shape == (4, 32, 32) and masks.any(axis=(1, 2)).all()
    # each image's own mask, in the same order as the positions
    expected = loading.read_masks(samples.iloc[positions], 32)
    assert np.array_equal(masks, expected)


def test_merged_classes_take_turns_by_their_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    params = registry.resolve("resnet50-gradcam", "smoke", {"n_per_class": 6, "phantom_size": 32, "n_explain": 4})
    samples = loading.load_samples(params).samples  # benign and malignant phantoms are both "nodule"
    probabilities = np.eye(2)[samples["label_index"].to_numpy()]
    positions, _ = explaining.lesion_subset(params, samples, probabilities, 32)
    assert samples["class_folder"].iloc[positions].tolist() == ["benign", "malignant", "benign", "malignant"]


def test_example_positions_pick_a_correct_and_a_wrong_prediction_per_class():
    samples = pd.DataFrame({"label_index": [0, 0, 1, 1]})
    probabilities = np.eye(2)[[0, 1, 1, 1]]
    assert explaining.example_positions(samples, probabilities).tolist() == [0, 1, 2]


def test_select_cam_layer_scores_every_candidate_on_the_validation_split(tiny_params, two_layer_model):
    params = dataclasses.replace(tiny_params, explain_only_correct=False, n_resamples=50)
    samples = loading.split(params, loading.load_samples(params).samples)
    val = samples[samples["split"] == "val"].reset_index(drop=True)
    data = fitting.datasets(params, samples, None, channels=3)
    model = two_layer_model(params.image_size)
    selection = driver.select_layer(
        model,
        explaining.validation_images(params, model, data["val"], val),
        ["coarse", "fine"],
        driver.ExplainSettings.from_params(params),
    ).record()
    assert set(selection["validation"]) == {"coarse", "fine"}
    assert selection["n"] == int(val["label"].isin(["benign", "malignant"]).sum()) > 0
    # The highest pointing game, then energy share, then the first listed ("coarse") on a tie.
    validation = selection["validation"]
    ranked = sorted(
        validation,
        key=lambda layer: (
            validation[layer]["pointing_game"]["value"],
            validation[layer]["energy_share"]["value"],
            layer == "coarse",
        ),
    )
    assert selection["chosen"] == ranked[-1]


def test_validation_images_take_probabilities_predicted_before_without_predicting(
    tiny_params, two_layer_model, monkeypatch
):
    from common.training import fit

    params = dataclasses.replace(tiny_params, explain_only_correct=True)
    samples = loading.split(params, loading.load_samples(params).samples)
    val = samples[samples["split"] == "val"].reset_index(drop=True)
    dataset = fitting.datasets(params, samples, None, channels=3)["val"]
    model = two_layer_model(params.image_size)
    predicted = explaining.validation_images(params, model, dataset, val)
    # Every image right but the first lesion image: the subset follows the probabilities given.
    given = np.eye(3)[val["label_index"].to_numpy()]
    first_lesion = int(np.flatnonzero(val["label"].isin(["benign", "malignant"]).to_numpy())[0])
    given[first_lesion] = np.roll(given[first_lesion], 1)
    monkeypatch.setattr(fit, "predict_proba", lambda *args, **kwargs: pytest.fail("predicted again"))
    taken = explaining.validation_images(params, model, dataset, val, probabilities=given)
    expected, _ = explaining.lesion_subset(params, val, given, params.image_size)
    assert np.array_equal(taken.positions, expected) and first_lesion not in taken.positions
    assert taken.images.shape[1:] == predicted.images.shape[1:]


def test_explain_test_split_scores_the_cam_layer_and_the_validation_choice(tiny_params, two_layer_model):
    params = dataclasses.replace(
        tiny_params,
        explain_only_correct=False,
        n_resamples=50,
        cam_methods=["gradcam", "gradcam++"],
        cam_layer_candidates=["coarse", "fine"],
    )
    samples = loading.split(params, loading.load_samples(params).samples)
    data = fitting.datasets(params, samples, None, channels=3)
    model = two_layer_model(params.image_size)
    test_inputs = fitting.model_inputs(data["test"])
    probabilities = model.predict(test_inputs, verbose=0)
    scored = explaining.explain_test_split(params, model, data, samples, test_inputs, probabilities, "coarse")
    chosen = scored.selection.chosen
    assert chosen in ("coarse", "fine") and scored.chosen.layer == chosen
    assert set(scored.scores) == {model.name, f"{model.name} at {chosen}"}
    assert set(scored.scores[model.name]) == {"gradcam", "gradcam++"}
    assert set(scored.scores[f"{model.name} at {chosen}"]) == {"gradcam"}
    grid = params.image_size // 4
    assert list(scored.test_table().index) == [
        f"coarse ({grid}, {grid}), gradcam",
        f"coarse ({grid}, {grid}), gradcam++",
        f"{chosen} {scored.layer_shapes[chosen]}, gradcam, chosen on validation",
    ]
    assert list(scored.validation_table().index) == [
        f"coarse ({grid}, {grid})",
        f"fine ({params.image_size}, {params.image_size})",
    ]
    assert set(scored.seconds) == {"coarse", "choosing the layer (validation)", f"chosen: {chosen}"}
    n = len(scored.chosen.positions)
    k = min(2, n // 2)
    assert k >= 1, "degenerate fixture: fewer than two lesion images in the test split"
    positions, maps, masks, layer = scored.best_and_worst(k)
    assert layer == chosen and len(positions) == len(maps) == len(masks) == 2 * k
    energy = energy_share(maps, masks)
    assert energy[:k].min() >= energy[k:].max()  # the best k before the worst k
    # Asked for more than there are: every image once, best first.
    assert sorted(scored.best_and_worst(n)[0]) == sorted(scored.chosen.positions)
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    assert set(positions) <= set(scored.chosen.positions) and test["mask_path"].iloc[positions].notna().all()
    # No lesion mask in the test split: nothing to score.
    unmasked = samples.assign(mask_path=None)
    assert explaining.explain_test_split(params, model, data, unmasked, test_inputs, probabilities, "coarse") is None
    # The same through the test images; none without masks.
    images = explaining.TestImages(test, test_inputs, test_inputs[..., 0], probabilities, has_masks=True)
    again = explaining.explain_test_images(params, model, data, samples, images, "coarse")
    assert again.scores[model.name]["gradcam"] == scored.scores[model.name]["gradcam"]
    assert (
        explaining.explain_test_images(
            params, model, data, samples, dataclasses.replace(images, has_masks=False), "coarse"
        )
        is None
    )
    rows, shown_layer = explaining.extreme_rows(params, images, scored, k)
    assert shown_layer == chosen and [row["title"] for row in rows] == [
        row["title"]
        for row in explaining.cam_rows(
            params, images.display[positions], maps, test.iloc[positions], probabilities[positions], masks
        )
    ]
    assert explaining.selection_caption(scored.selection).endswith(f"chosen: `{chosen}`")
    assert explaining.scored_caption(scored).startswith(f"{len(scored.last.positions)} lesion images;")


def _explanation(energies):
    """An explanation whose Grad-CAMs have the given energy shares in a one-pixel lesion of a 1 x 2 image."""
    shares = np.asarray(energies, dtype=float)
    cams = np.stack([[[share, 1 - share]] for share in shares]).astype(np.float32)
    masks = np.zeros(cams.shape, bool)
    masks[:, 0, 0] = True
    return driver.Explanation(np.arange(10, 10 + len(shares)), "conv", masks, {"gradcam": cams})


def test_ranked_by_energy_gives_the_best_highest_first_then_the_worst_lowest_first():
    explained = _explanation([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2])
    positions, cams, masks = explaining.ranked_by_energy(explained, 3)
    assert positions.tolist() == [11, 15, 13, 12, 16, 14]
    np.testing.assert_allclose(energy_share(cams, masks), [0.9, 0.8, 0.7, 0.1, 0.2, 0.3], rtol=1e-6)
    # Fewer than 2 k images: an image may be among both.
    assert explaining.ranked_by_energy(_explanation([0.2, 0.6]), 3)[0].tolist() == [11, 10, 10, 11]


def test_score_summary_formats_every_score_with_its_interval():
    scores = {"gradcam": {"iou": {"value": 0.25, "ci95": [0.1, 0.4], "n": 3}, "n_images": 3}}
    assert explaining.score_summary(scores).loc["gradcam", "iou"] == "0.250 (0.10–0.40)"
