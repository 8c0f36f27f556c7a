"""Tests of common.experiments.nine_models.runs: the paper's heads, tiny end-to-end runs, released models."""

import dataclasses

import keras
import numpy as np
import pytest

from common import models
from common.config import registry
from common.errors import DataError
from common.experiments import fitting, loading, nine_models
from tests.experiments.nine_models.mixed_folders import write_mixed_folder


def test_head_is_the_papers_with_the_runs_batch_norm_momentum():
    paper = nine_models.model_settings(registry.resolve("nine-models", "paper"), "Xception")
    assert nine_models.head_spec(paper) == models.NINE_MODEL_SETTINGS["Xception"].head
    cpu = nine_models.model_settings(registry.resolve("nine-models", "smoke"), "Xception")
    head = nine_models.head_spec(cpu)["layers"]
    assert [e["layer"] for e in head] == [e["layer"] for e in models.NINE_MODEL_SETTINGS["Xception"].head["layers"]]
    # One after the pooling, one after each Dense (Xception has two).
    assert [e["momentum"] for e in head if e["layer"] == "batchnorm"] == [cpu.bn_momentum] * 3


def test_a_real_two_class_folder_trains_with_a_label_map_parameter(tmp_path):
    root = write_mixed_folder(tmp_path / "ct", 8)
    (root / "cancer").rename(root / "tumour")  # folder names the manifest does not know
    overrides = {
        "label_map": {"tumour": "cancer", "pneumonia": "pneumonia"},
        "epochs": 1,
        "batch_size": 4,
        "image_size": 32,
        "models": ["MobileNetV2"],
        "model_overrides": {"MobileNetV2": {"epochs": 2, "patience": 2}},
    }
    params = registry.resolve("nine-models", "smoke", overrides, data_dir=root)
    loaded = loading.load_samples(params)
    assert sorted(loaded.samples["class_folder"].unique()) == ["pneumonia", "tumour"]
    assert set(loaded.samples["label"]) == {"cancer", "pneumonia"} and not loaded.has_masks
    # Class order is the registry's, whatever the folders are called.
    assert (loaded.samples["label_index"] == (loaded.samples["label"] == "cancer").astype(int)).all()
    samples = loading.split(params, loaded.samples)
    lines = []
    runs = nine_models.train_and_evaluate(params, samples, log=lines.append)
    record = nine_models.model_records(runs)["MobileNetV2"]
    # One line for the model, naming its own epoch limit (the override's 2, not the run's 1).
    assert len(lines) == 1 and lines[0].startswith("MobileNetV2, 32 px: 2 of 2 epochs in "), lines
    assert lines[0].endswith(f"test accuracy {record['accuracy']['value']:.3f}")
    n_test = int((samples["split"] == "test").sum())
    assert runs["MobileNetV2"].probabilities.shape == (n_test, 2)
    assert runs["MobileNetV2"].test_inputs.shape == (n_test, 32, 32, 3)
    assert sum(map(sum, record["confusion_matrix"])) == n_test
    # Everything trains but batch-norm moving statistics.
    assert (record["params_total"], record["params_trainable"]) == models.count_params(runs["MobileNetV2"].model)
    assert 0 < record["params_total"] - record["params_trainable"] < 0.02 * record["params_total"]
    # Its override row, not the run's one epoch.
    assert record["epochs_trained"] == 2 and record["train_seconds"] > 0 and record["inference_images_per_s"] > 0
    head_norms = [
        layer
        for layer in runs["MobileNetV2"].model.layers
        if models.is_head_layer(layer) and isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(head_norms) == 2 and all(layer.momentum == params.bn_momentum for layer in head_norms)
    # Inference is timed as a graph; the model keeps the eager mode it trained in.
    assert runs["MobileNetV2"].model.run_eagerly is True
    with pytest.raises(DataError, match="empty"):
        nine_models.inference_images_per_second(runs["MobileNetV2"].model, np.zeros((0, 32, 32, 3), np.float32), 4)


def test_a_released_model_is_read_back_with_the_weights_it_trained(tmp_path):
    root = write_mixed_folder(tmp_path / "ct", 6)
    # Trained in bfloat16, evaluated in float32: the model read back (built in float32) predicts the same.
    overrides = {"epochs": 1, "batch_size": 4, "image_size": 32, "models": ["MobileNetV2"], "precision": "bfloat16"}
    params = registry.resolve("nine-models", "smoke", overrides, data_dir=root)
    samples = loading.split(params, loading.load_samples(params).samples)
    runs = nine_models.train_and_evaluate(params, samples, log=None, weights_dir=tmp_path / "models")
    run = runs["MobileNetV2"]
    assert nine_models.model_records(runs)["MobileNetV2"]["training_precision"] == "bfloat16"
    assert run.model is None and run.weights_path == tmp_path / "models" / "MobileNetV2.weights.npz"
    # float32 weights, all of them and nothing else (no optimiser state)
    assert 4 * run.params_total < run.weights_path.stat().st_size < 4.1 * run.params_total
    assert nine_models.model_records(runs)["MobileNetV2"]["inference_mode"] == "eager"
    with run.loaded() as model:
        # Equal up to batch-order float noise.
        np.testing.assert_allclose(model.predict(run.test_inputs, verbose=0), run.probabilities, atol=2e-4)
        # The validation split was predicted with the test split, for the CAM layer choice on a rebuilt model.
        val_inputs = fitting.model_inputs(fitting.datasets(params, samples, run.settings.preprocess, 32)["val"])
        assert run.val_probabilities is not None and len(run.val_probabilities) == (samples["split"] == "val").sum()
        np.testing.assert_allclose(model.predict(val_inputs, verbose=0), run.val_probabilities, atol=2e-4)
    assert run.model is None  # read back for the block only
    explained = nine_models.explain_models(params, runs, samples, np.array([0, 1]), "cancer", score=False)
    assert explained.last_layer_cams["MobileNetV2"].shape[0] == 2 and explained.scores == {}
    assert explained.last_layer["MobileNetV2"] == "out_relu"  # MobileNetV2's last spatial layer in Keras
    gone = dataclasses.replace(run, weights_path=None)
    with pytest.raises(DataError, match="neither a model in memory nor saved weights"):
        with gone.loaded():
            pass
