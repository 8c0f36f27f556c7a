"""Tests of common.experiments.comparison: per-model settings, tables, layer groups, a tiny end-to-end run.

Head layers and trainable-layer counts of all nine backbones are checked in
tests/test_models.py (built at each architecture's minimum size, whose layer
structure is the paper size's); here the same table is checked through the
settings a profile resolves to.
"""

import dataclasses
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.experiments import comparison, workflow
from common import models
from common.config import registry
from common.errors import DataError, ParameterError

# Seed 002 as distilled in STUDY.md: input size, trainable last layers, Adam learning rate and epsilon.
PAPER_SPEC = {
    "DenseNet121": (224, 128, 6e-5, 1e-2),
    "MobileNetV2": (320, 46, 1e-5, 5e-3),
    "InceptionV3": (299, 94, 1e-5, 1e-2),
    "InceptionResNetV2": (299, 170, 1e-4, 7.5e-2),
    "ResNet50": (224, 53, 5e-5, 1e-2),
    "ResNet101": (224, 104, 1e-5, 1e-2),
    "VGG16": (320, 7, 5e-6, 1e-2),
    "VGG19": (320, 8, 5e-6, 5e-3),
    "Xception": (299, 41, 1e-4, 1e-1),
}


def test_paper_profile_resolves_to_the_papers_settings():
    params = registry.resolve("nine-models", "paper")
    assert params.models == list(PAPER_SPEC)
    assert params.batch_size == 16 and params.epochs == 150 and params.weights == "imagenet"
    assert params.split_counts == {"train": 714, "val": 150, "test": 150}
    for name, (size, trainable, learning_rate, epsilon) in PAPER_SPEC.items():
        settings = comparison.model_settings(params, name)
        assert (settings.input_size, settings.trainable_last_layers) == (size, trainable), name
        assert settings.learning_rate == pytest.approx(learning_rate) and settings.epsilon == pytest.approx(epsilon)
        assert settings.preprocess == models.BACKBONES[name].preprocess
    assert set(comparison.settings_table(params, PAPER_SPEC).index) == set(PAPER_SPEC)


def test_cpu_profiles_use_the_smallest_accepted_size_and_train_everything():
    params = registry.resolve("nine-models", "smoke")
    sizes = {name: comparison.model_settings(params, name).input_size for name in PAPER_SPEC}
    assert sizes["InceptionV3"] == 75 and sizes["Xception"] == 71
    assert sizes["VGG16"] == max(params.image_size, 32)
    settings = comparison.model_settings(params, "ResNet50")
    assert settings.trainable_last_layers is None and settings.paper_trainable_last_layers == 53
    assert settings.learning_rate == params.learning_rate
    assert settings.epsilon == comparison.KERAS_ADAM_EPSILON and settings.weights is None


def test_a_models_override_row_changes_that_model_only():
    params = registry.resolve("nine-models", "smoke", {"model_overrides": {
        "MobileNetV2": {"learning_rate": 0.003, "epochs": 4, "augment": {"flip": "horizontal"}}}})
    changed, other = comparison.model_parameters(params, "MobileNetV2"), comparison.model_parameters(params, "VGG16")
    assert (changed.epochs, changed.augment) == (4, {"flip": "horizontal"})
    assert other == params and params.epochs == 1  # the run's parameters themselves are left alone
    assert comparison.model_settings(params, "MobileNetV2").learning_rate == 0.003
    assert comparison.model_settings(params, "VGG16").learning_rate == params.learning_rate
    table = comparison.settings_table(params, ["MobileNetV2", "VGG16"])
    assert table.loc["MobileNetV2", "epochs"] == 4 and table.loc["VGG16", "epochs"] == 1
    assert table.loc["VGG16", "augment"] == "none"


@pytest.mark.parametrize("rows, message", [
    ({"MobileNetV3": {"epochs": 2}}, "unknown model"),
    ({"VGG16": {"epoch": 2}}, "epoch"),
    ({"VGG16": {"models": ["VGG16"]}}, "models"),
    ({"VGG16": {"epochs": "two"}}, "Parameter 'epochs' expects a int like 6, got 'two'"),
])
def test_override_rows_name_known_models_and_parameters(rows, message):
    params = registry.resolve("nine-models", "smoke", {"model_overrides": rows})
    with pytest.raises(ParameterError, match=message):
        comparison.model_settings(params, "VGG16")


def test_head_is_the_papers_with_the_runs_batch_norm_momentum():
    paper = comparison.model_settings(registry.resolve("nine-models", "paper"), "Xception")
    assert comparison.head_spec(paper) == models.NINE_MODEL_SETTINGS["Xception"].head
    cpu = comparison.model_settings(registry.resolve("nine-models", "smoke"), "Xception")
    head = comparison.head_spec(cpu)["layers"]
    assert [e["layer"] for e in head] == [e["layer"] for e in models.NINE_MODEL_SETTINGS["Xception"].head["layers"]]
    # One after the pooling, one after each Dense (Xception has two).
    assert [e["momentum"] for e in head if e["layer"] == "batchnorm"] == [cpu.bn_momentum] * 3


def test_model_names_are_checked():
    with pytest.raises(ParameterError, match="Unknown model"):
        comparison.check_model_names(["VGG16", "ResNet18"])
    with pytest.raises(ParameterError, match="more than once"):
        comparison.check_model_names(["VGG16", "VGG16"])
    with pytest.raises(ParameterError, match="empty"):
        comparison.check_model_names([])


def test_build_model_and_layer_groups_follow_the_papers_freezing():
    params = registry.resolve("nine-models", "paper")
    # The paper's VGG16 settings at a CPU size (same layers), without downloading weights.
    settings = dataclasses.replace(comparison.model_settings(params, "VGG16"), input_size=32, weights=None)
    model = comparison.build_model(settings, 2)
    trainable_convs = [layer.name for layer in model.layers
                       if isinstance(layer, keras.layers.Conv2D) and layer.trainable]
    groups = comparison.layer_groups(model, settings)
    # Last 7 layers: block5_pool, block5_conv3..1, block4_pool, block4_conv3, block4_conv2.
    assert groups["trainable"] == trainable_convs == [
        "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3"]
    assert groups["frozen"][0] == "block1_conv1" and groups["frozen"][-1] == "block4_conv1"
    assert len(groups["frozen"]) == 8
    thinned = comparison.layer_groups(model, settings, max_layers=3)
    assert thinned["frozen"] == ["block1_conv1", "block3_conv1", "block4_conv1"]
    assert thinned["trainable"][0] == "block4_conv2" and thinned["trainable"][-1] == "block5_conv3"
    # A run that trains every layer keeps the paper's split for the groups.
    everything = dataclasses.replace(settings, trainable_last_layers=None)
    assert comparison.layer_groups(comparison.build_model(everything, 2), everything) == groups
    with pytest.raises(ParameterError, match="max_layers"):
        comparison.layer_groups(model, settings, max_layers=0)


def entry(value, low, high):
    return {"value": value, "ci95": [low, high]}


def test_comparison_table_marks_every_best_model_and_shows_costs():
    records = {
        "A": {"accuracy": entry(0.9, 0.8, 0.95), "auc": entry(0.97, 0.9, 1.0), "params_total": 10,
              "params_trainable": 4, "train_seconds": 3.0, "inference_images_per_s": 50.0},
        "B": {"accuracy": entry(0.9, 0.85, 0.95), "auc": entry(0.95, 0.9, 0.99), "params_total": 20,
              "params_trainable": 20, "train_seconds": 5.0, "inference_images_per_s": 20.0},
        "C": {"accuracy": entry(0.7, 0.6, 0.8), "auc": entry(0.99, 0.95, 1.0), "params_total": 5,
              "params_trainable": 5, "train_seconds": 1.0, "inference_images_per_s": 90.0},
    }
    table = comparison.comparison_table(records, ("accuracy", "auc"))
    assert table.loc["A", "accuracy"] == "0.900 [0.800, 0.950]" + comparison.BEST_MARK
    assert table.loc["B", "accuracy"].endswith(comparison.BEST_MARK)  # a tie: both marked
    assert not table.loc["C", "accuracy"].endswith(comparison.BEST_MARK)
    assert table.loc["C", "auc"].endswith(comparison.BEST_MARK)
    assert not table.loc["A", "auc"].endswith(comparison.BEST_MARK)
    assert list(table.columns) == ["accuracy", "auc", "params_total", "params_trainable", "train_seconds",
                                   "inference_images_per_s"]
    assert table.loc["B", "params_total"] == 20
    # Read back from metrics.json, an undefined number is None.
    records["C"]["auc"] = {"value": 0.99, "ci95": [None, None]}
    assert comparison.comparison_table(records, ("auc",)).loc["C", "auc"] == "0.990 [nan, nan]" + comparison.BEST_MARK


def test_paper_comparison_table_pivots_rows_in_table_order():
    rows = [
        {"model": "VGG16", "metric": "auc", "paper": 0.999, "this_run": 0.9, "difference": -0.099},
        {"model": "VGG16", "metric": "accuracy", "paper": 0.963, "this_run": 0.95, "difference": -0.013},
        {"model": "ResNet50", "metric": "accuracy", "paper": 0.977, "this_run": 1.0, "difference": 0.023},
        {"model": "ResNet50", "metric": "auc", "paper": 0.999, "this_run": 1.0, "difference": 0.001},
    ]
    table = comparison.paper_comparison_table(rows)
    assert list(table.index) == ["VGG16", "ResNet50"]
    assert list(table.columns)[:3] == [("accuracy", "paper"), ("accuracy", "this run"), ("accuracy", "difference")]
    assert table.loc["ResNet50", ("accuracy", "difference")] == pytest.approx(0.023)
    assert comparison.paper_comparison_table([]).empty


def test_correct_by_all_prefers_images_every_model_got_right():
    test = pd.DataFrame({"label": ["cancer", "cancer", "pneumonia", "cancer"], "label_index": [1, 1, 0, 1]})
    right = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    one_wrong = right.copy()
    one_wrong[0] = [0.8, 0.2]
    runs = {"A": SimpleNamespace(probabilities=right), "B": SimpleNamespace(probabilities=one_wrong)}
    assert comparison.correct_by_all(runs, test, "cancer", 2).tolist() == [1, 3]
    assert comparison.correct_by_all(runs, test, "cancer", 5).tolist() == [1, 3, 0]


def test_overlay_panels_put_one_row_per_model_under_the_images():
    images = np.zeros((2, 16, 16), np.float32)
    cams = {"A": np.ones((2, 8, 8), np.float32), "B": np.zeros((2, 8, 8), np.float32)}
    masks = np.zeros((2, 16, 16), bool)
    panels = comparison.overlay_panels(images, cams, masks, {"A": np.array([0.9, 0.6])})
    assert len(panels["images"]) == len(panels["titles"]) == len(panels["masks"]) == 6
    assert panels["titles"] == ["image 1", "image 2", "A (p = 0.90)", "A (p = 0.60)", "B", "B"]
    assert panels["images"][2].shape == (16, 16, 3) and panels["images"][2].dtype == np.uint8
    assert panels["ncols"] == 2
    by_image = comparison.overlay_panels(images, cams, masks, one_row_per_image=True)
    assert by_image["titles"] == ["image 1", "A", "B", "image 2", "A", "B"] and by_image["ncols"] == 3
    np.testing.assert_array_equal(by_image["images"][1], panels["images"][2])
    with pytest.raises(DataError, match="3 CAMs for 2 images"):
        comparison.overlay_panels(images, {"A": np.ones((3, 8, 8))})


def write_mixed_folder(root, n_per_class):
    """cancer/ and pneumonia/ with PNG, JPEG and JPG, RGB and greyscale, of different sizes."""
    rng = np.random.default_rng(0)
    formats = [(".png", "L", (40, 36)), (".jpeg", "RGB", (52, 60)), (".JPG", "RGB", (33, 33)), (".png", "RGB", (64, 48))]
    for class_name in ("cancer", "pneumonia"):
        (root / class_name).mkdir(parents=True)
        for index in range(n_per_class):
            suffix, mode, size = formats[index % len(formats)]
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / class_name / f"scan_{index}{suffix}")
    return root


def test_a_real_two_class_folder_trains_with_a_label_map_parameter(tmp_path):
    root = write_mixed_folder(tmp_path / "ct", 8)
    (root / "cancer").rename(root / "tumour")  # folder names the manifest does not know
    overrides = {"label_map": {"tumour": "cancer", "pneumonia": "pneumonia"}, "epochs": 1, "batch_size": 4,
                 "image_size": 32, "models": ["MobileNetV2"],
                 "model_overrides": {"MobileNetV2": {"epochs": 2, "patience": 2}}}
    params = registry.resolve("nine-models", "smoke", overrides, data_dir=root)
    loaded = workflow.load_samples(params)
    assert sorted(loaded.samples["class_folder"].unique()) == ["pneumonia", "tumour"]
    assert set(loaded.samples["label"]) == {"cancer", "pneumonia"} and not loaded.has_masks
    # Class order is the registry's, whatever the folders are called.
    assert (loaded.samples["label_index"] == (loaded.samples["label"] == "cancer").astype(int)).all()
    samples = workflow.split(params, loaded.samples)
    runs = comparison.train_and_evaluate(params, samples, log=None)
    record = comparison.model_records(runs)["MobileNetV2"]
    n_test = int((samples["split"] == "test").sum())
    assert runs["MobileNetV2"].probabilities.shape == (n_test, 2)
    assert runs["MobileNetV2"].test_inputs.shape == (n_test, 32, 32, 3)
    assert sum(map(sum, record["confusion_matrix"])) == n_test
    # Everything trains but batch-norm moving statistics.
    assert (record["params_total"], record["params_trainable"]) == models.count_params(runs["MobileNetV2"].model)
    assert 0 < record["params_total"] - record["params_trainable"] < 0.02 * record["params_total"]
    # Its override row, not the run's one epoch.
    assert record["epochs_trained"] == 2 and record["train_seconds"] > 0 and record["inference_images_per_s"] > 0
    head_norms = [layer for layer in runs["MobileNetV2"].model.layers
                  if models.is_head_layer(layer) and isinstance(layer, keras.layers.BatchNormalization)]
    assert len(head_norms) == 2 and all(layer.momentum == params.bn_momentum for layer in head_norms)
    # Inference is timed as a graph; the model keeps the eager mode it trained in.
    assert runs["MobileNetV2"].model.run_eagerly is True
    with pytest.raises(DataError, match="empty"):
        comparison.inference_images_per_second(runs["MobileNetV2"].model, np.zeros((0, 32, 32, 3), np.float32), 4)


def test_a_released_model_is_read_back_with_the_weights_it_trained(tmp_path):
    root = write_mixed_folder(tmp_path / "ct", 6)
    overrides = {"epochs": 1, "batch_size": 4, "image_size": 32, "models": ["MobileNetV2"]}
    params = registry.resolve("nine-models", "smoke", overrides, data_dir=root)
    samples = workflow.split(params, workflow.load_samples(params).samples)
    runs = comparison.train_and_evaluate(params, samples, log=None, weights_dir=tmp_path / "models")
    run = runs["MobileNetV2"]
    assert run.model is None and run.weights_path == tmp_path / "models" / "MobileNetV2.weights.npz"
    # float32 weights, all of them and nothing else (no optimiser state)
    assert 4 * run.params_total < run.weights_path.stat().st_size < 4.1 * run.params_total
    assert comparison.model_records(runs)["MobileNetV2"]["inference_mode"] == "eager"
    with run.loaded() as model:
        np.testing.assert_allclose(model.predict(run.test_inputs, verbose=0), run.probabilities, atol=2e-4)  # batch-order float noise
    assert run.model is None  # read back for the block only
    explained = comparison.explain_models(params, runs, samples, np.array([0, 1]), "cancer", score=False)
    assert explained.last_layer_cams["MobileNetV2"].shape[0] == 2 and explained.scores == {}
    assert explained.last_layer["MobileNetV2"] == "out_relu"  # MobileNetV2's last spatial layer in Keras
    gone = dataclasses.replace(run, weights_path=None)
    with pytest.raises(DataError, match="neither a model in memory nor saved weights"):
        with gone.loaded():
            pass
