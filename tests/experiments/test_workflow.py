"""Tests of common.experiments.workflow on tiny phantoms: class order, splits, paper rows, subsets."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from common.explain import explain_metrics
from common.config import registry
from common.experiments import workflow
from common.training import runtime


@pytest.fixture
def tiny_params(tmp_path, monkeypatch):
    monkeypatch.setattr(workflow, "phantom_root", lambda: tmp_path / "phantoms")
    return registry.resolve("iqoth", "smoke", {"n_per_class": 6, "phantom_size": 32})


def test_phantom_samples_follow_the_registry_class_order_and_have_masks(tiny_params):
    loaded = workflow.load_samples(tiny_params)
    samples = loaded.samples
    assert loaded.has_masks
    assert samples.groupby("label")["label_index"].first().to_dict() == {"normal": 0, "benign": 1, "malignant": 2}
    split = workflow.split(tiny_params, samples)
    assert set(split["split"]) == {"train", "val", "test"}
    record = workflow.data_record(loaded, split)
    assert record["n_images"] == 18 and sum(record["class_counts"]["total"].values()) == 18
    masks = workflow.read_masks(samples, 16)
    assert masks.shape == (18, 16, 16)
    assert not masks[samples["label"].to_numpy() == "normal"].any()
    assert masks[samples["label"].to_numpy() == "malignant"].any(axis=(1, 2)).all()


def test_explained_subset_keeps_correct_lesion_images_only():
    samples = pd.DataFrame({"label_index": [0, 1, 1, 2], "label": ["normal", "benign", "benign", "malignant"],
                            "mask_path": [None, "a.png", "b.png", "c.png"]})
    probabilities = np.eye(3)[[0, 1, 0, 2]]  # the second benign image is misclassified
    assert workflow.explained_subset(samples, probabilities, n=10).tolist() == [1, 3]
    assert workflow.explained_subset(samples, probabilities, n=10, lesion_classes=["malignant"]).tolist() == [3]
    # the smoke profile scores every lesion image, right or wrong
    assert workflow.explained_subset(samples, probabilities, n=10, only_correct=False).tolist() == [1, 2, 3]


def test_example_positions_pick_a_correct_and_a_wrong_prediction_per_class():
    samples = pd.DataFrame({"label_index": [0, 0, 1, 1]})
    probabilities = np.eye(2)[[0, 1, 1, 1]]
    assert workflow.example_positions(samples, probabilities).tolist() == [0, 1, 2]


def test_paper_rows_pair_paper_models_with_this_runs_models():
    params = registry.resolve("resnet50-gradcam", "smoke")
    entry = {"value": 0.9, "ci95": [0.8, 0.95]}
    run = {"ResNet50": {m: entry for m in ("accuracy", "precision", "recall", "f1", "auc", "specificity")}}
    paper, rows = workflow.paper_rows(params, run)
    assert "ResNet-50-Grad" in paper
    accuracy = next(r for r in rows if r["metric"] == "accuracy")
    assert accuracy["model"] == "ResNet50" and accuracy["paper"] == pytest.approx(0.982)
    assert accuracy["difference"] == pytest.approx(0.9 - 0.982) and accuracy["paper_inside_ci"] is False


def test_split_variants_share_one_split_when_the_audit_finds_no_duplicates(tiny_params):
    samples = workflow.load_samples(tiny_params).samples
    no_duplicates = {"exact_groups": [], "near_groups": [], "pairs": []}
    variants = workflow.split_variants(tiny_params, samples, no_duplicates)
    assert list(variants) == ["grouped", "image"]
    assert variants["grouped"] is variants["image"]


def test_split_variants_keep_duplicate_groups_on_one_side(tiny_params, tmp_path):
    import shutil

    from common.data import audit

    samples = workflow.load_samples(tiny_params).samples
    # plant duplicates: rows 1-2 become copies of row 0's file, row 7 of row 6's
    for row, source in ((1, 0), (2, 0), (7, 6)):
        copy = tmp_path / f"copy_{row}.png"
        shutil.copyfile(samples.loc[source, "path"], copy)
        samples.loc[row, "path"] = str(copy)
    result = audit.audit_samples(samples, progress=False)
    grouped = workflow.split_variants(dataclasses.replace(tiny_params, split="grouped"), samples, result)["grouped"]
    for rows in ([0, 1, 2], [6, 7]):
        assert grouped.loc[rows, "split"].nunique() == 1


def test_an_unknown_split_name_is_refused(tiny_params):
    with pytest.raises(Exception, match="must be image, grouped or both"):
        workflow.split_variants(dataclasses.replace(tiny_params, split="patient"), None, {})


def test_runtime_on_a_cpu_keeps_float32_and_one_replica(tiny_params):
    rt = runtime.for_run(tiny_params)
    assert rt.record["replicas"] == 1 and rt.record["mixed_precision"] is False and rt.record["jit_compile"] is False
    with pytest.raises(Exception, match="must be auto, on or off"):
        runtime.for_run(dataclasses.replace(tiny_params, gpu_speedups="maybe"))


def test_select_cam_layer_scores_every_candidate_on_the_validation_split(tiny_params):
    import keras

    params = dataclasses.replace(tiny_params, explain_only_correct=False, n_resamples=50)
    samples = workflow.split(params, workflow.load_samples(params).samples)
    val = samples[samples["split"] == "val"].reset_index(drop=True)
    data = workflow.datasets(params, samples, None, channels=3)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((params.image_size, params.image_size, 3))
    fine = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="fine")(inputs)
    coarse = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu", name="coarse")(fine)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(coarse))
    model = keras.Model(inputs, outputs)
    selection = workflow.select_cam_layer(params, model, data["val"], val, ["coarse", "fine"])
    assert set(selection["validation"]) == {"coarse", "fine"}
    assert selection["n"] == int(val["label"].isin(["benign", "malignant"]).sum()) > 0
    # The highest pointing game, then energy share, then the first listed ("coarse") on a tie.
    ranked = sorted(selection["validation"], key=lambda layer: (selection["validation"][layer]["pointing_game"]["value"],
                                                                selection["validation"][layer]["energy_share"]["value"],
                                                                layer == "coarse"))
    assert selection["chosen"] == ranked[-1]


def test_explain_test_split_scores_the_cam_layer_and_the_validation_choice(tiny_params):
    import keras

    params = dataclasses.replace(tiny_params, explain_only_correct=False, n_resamples=50,
                                 cam_methods=["gradcam", "gradcam++"], cam_layer_candidates=["coarse", "fine"])
    samples = workflow.split(params, workflow.load_samples(params).samples)
    data = workflow.datasets(params, samples, None, channels=3)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((params.image_size, params.image_size, 3))
    fine = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="fine")(inputs)
    coarse = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu", name="coarse")(fine)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(coarse)))
    test_inputs = workflow.model_inputs(data["test"])
    probabilities = model.predict(test_inputs, verbose=0)
    scored = workflow.explain_test_split(params, model, data, samples, test_inputs, probabilities, "coarse")
    chosen = scored.selection["chosen"]
    assert chosen in ("coarse", "fine") and scored.chosen["layer"] == chosen
    assert set(scored.scores) == {model.name, f"{model.name} at {chosen}"}
    assert set(scored.scores[model.name]) == {"gradcam", "gradcam++"}
    assert set(scored.scores[f"{model.name} at {chosen}"]) == {"gradcam"}
    grid = params.image_size // 4
    assert list(scored.test_table().index) == [f"coarse ({grid}, {grid}), gradcam", f"coarse ({grid}, {grid}), gradcam++",
                                               f"{chosen} {scored.layer_shapes[chosen]}, gradcam, chosen on validation"]
    assert list(scored.validation_table().index) == [f"coarse ({grid}, {grid})",
                                                     f"fine ({params.image_size}, {params.image_size})"]
    assert set(scored.seconds) == {"coarse", "choosing the layer (validation)", f"chosen: {chosen}"}
    n = len(scored.chosen["positions"])
    k = min(2, n // 2)
    assert k >= 1, "degenerate fixture: fewer than two lesion images in the test split"
    positions, maps, masks, layer = scored.best_and_worst(k)
    assert layer == chosen and len(positions) == len(maps) == len(masks) == 2 * k
    energy = explain_metrics.energy_share(maps, masks)
    assert energy[:k].min() >= energy[k:].max()  # the best k before the worst k
    # Asked for more than there are: every image once, best first.
    assert sorted(scored.best_and_worst(n)[0]) == sorted(scored.chosen["positions"])
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    assert set(positions) <= set(scored.chosen["positions"]) and test["mask_path"].iloc[positions].notna().all()
    # No lesion mask in the test split: nothing to score.
    unmasked = samples.assign(mask_path=None)
    assert workflow.explain_test_split(params, model, data, unmasked, test_inputs, probabilities, "coarse") is None


def test_best_layer_breaks_ties_by_energy_share_then_by_order():
    def scores(pointing, energy):
        return {"pointing_game": {"value": pointing}, "energy_share": {"value": energy}}

    table = {"a": scores(0.5, 0.1), "b": scores(0.9, 0.1), "c": scores(0.9, 0.2), "d": scores(0.9, 0.2)}
    assert workflow.best_layer(table, ["a", "b", "c", "d"]) == "c"
    assert workflow.best_layer({k: table[k] for k in "dc"}, ["d", "c"]) == "d"
    assert workflow.best_layer({}, ["e"]) is None  # no lesion image in the validation split

def test_fit_and_evaluate_returns_a_frozen_result_with_balanced_class_weights(tiny_params):
    import keras

    params = dataclasses.replace(tiny_params, epochs=1, n_resamples=20)
    samples = workflow.split(params, workflow.load_samples(params).samples)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((params.image_size, params.image_size, params.channels))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(params.classes), activation="softmax")(pooled))
    result = workflow.fit_and_evaluate(params, model, samples, None)
    test = samples[samples["split"] == "test"]
    assert isinstance(result, workflow.FitResult)
    assert len(result.history) == 1 and set(result.datasets) == {"train", "val", "test"}
    assert result.probabilities.shape == (len(test), len(params.classes)) and len(result.test) == len(test)
    assert list(result.test.index) == list(range(len(test))) and "accuracy" in result.scores
    assert params.class_weights and set(result.class_weight) == {0, 1, 2}  # iqoth weighs its classes
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.scores = {}
