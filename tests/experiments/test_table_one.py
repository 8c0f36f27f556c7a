"""Tests of common.experiments.table_one: a model of this study for every row of seed 000's Table I."""

import dataclasses

import pytest

from common.config import registry
from common.errors import ParameterError
from common.experiments import leakage, loading, table_one
from common.training.runtime import Runtime


@pytest.fixture
def table_params(tmp_path, monkeypatch):
    """resnet50-gradcam's smoke parameters on 4 phantoms per class of 32 px, generated under ``tmp_path``."""
    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    return registry.resolve("resnet50-gradcam", "smoke", {"n_per_class": 4, "phantom_size": 32})


def test_every_table_model_stands_for_a_row_of_the_paper():
    paper_rows = registry.paper_claims("resnet50-gradcam")["run_model_for"]
    assert set(table_one.IMAGE_MODELS + table_one.VOLUME_MODELS) <= set(paper_rows.values())
    schema = registry.section("parameter_schemas")["table_models"]["items"]["enum"]
    assert schema == [*table_one.IMAGE_MODELS, *table_one.VOLUME_MODELS]


def test_model_parameters_take_their_overrides_and_the_no_augment_row_drops_augmentation(table_params):
    params = dataclasses.replace(table_params, model_overrides={"resnet32": {"image_size": 48, "epochs": 2}})
    assert table_one.model_params(params, "resnet32").image_size == 48
    assert table_one.model_params(params, "resnet32").augment == params.augment
    assert table_one.model_params(params, "resnet18") is params
    assert params.augment and table_one.model_params(params, table_one.RESNET50_NO_AUGMENT).augment is None
    bad = dataclasses.replace(table_params, model_overrides={"resnet18": {"depth": 3}})
    with pytest.raises(ParameterError, match="depth"):
        table_one.model_params(bad, "resnet18")
    with pytest.raises(ParameterError, match="resnet18"):
        table_one.build_image_model(table_params, "vgg", Runtime.local())
    with pytest.raises(ParameterError, match="cnn3d"):
        table_one.build_volume_model(table_one.volume_params(table_params), "vgg")


def test_the_no_augment_row_is_resnet50_under_its_own_name(table_params):
    model, preprocess = table_one.build_image_model(table_params, table_one.RESNET50_NO_AUGMENT, Runtime.local())
    assert model.name == table_one.RESNET50_NO_AUGMENT and preprocess == "resnet50"
    assert model.get_layer("conv5_block3_out") is not None  # the ResNet50 backbone, flat
    resnet18, none = table_one.build_image_model(table_params, "resnet18", Runtime.local())
    assert resnet18.name == "resnet18" and none is None and resnet18.input_shape[1:] == (32, 32, 3)


def test_image_rows_train_on_the_runs_split_and_are_scored_on_its_test_images(table_params):
    samples = leakage.plan_splits(table_params, loading.load_samples(table_params).samples).samples
    rows = table_one.fit_image_rows(table_params, samples, Runtime.local(), names=["resnet32"])
    row = rows["resnet32"]
    assert list(rows) == ["resnet32"] and row.image_size == 32 and row.parameters > 0
    assert row.fit.scores["n"] == int((samples["split"] == "test").sum())
    assert row.fit.scores["accuracy"]["ci95"][0] <= row.fit.scores["accuracy"]["value"]
    table = table_one.training_table(table_params, rows, None)
    assert table.loc["resnet32", "paper's model"] == "ResNet-32"
    assert table.loc["resnet32", "tested on"] == table_one.IMAGE_DATA
    # Without any Table I model (table_models=[]) the table is empty, with its columns.
    empty = table_one.training_table(table_params, {}, None)
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_volume_rows_train_on_their_own_split_of_phantom_volumes(table_params):
    found = table_one.fit_volume_rows(table_params, Runtime.local(), names=["cnn3d"])
    settings = registry.resolve("gradcam-3d", "smoke")
    assert found is not None and list(found.rows) == ["cnn3d"]
    assert len(found.samples) == 2 * settings.n_per_class and set(found.samples["split"]) == {"train", "val", "test"}
    scores = found.scores()["cnn3d"]
    assert scores["n"] == int((found.samples["split"] == "test").sum())
    record = found.record()
    assert record["settings_from"] == "gradcam-3d" and record["input_shape"] == settings.input_shape
    assert record["models"]["cnn3d"]["epochs"] == len(found.rows["cnn3d"].history)
    labels = table_one.tested_on({"cnn3d": scores, "ResNet50": scores}, found)
    assert labels == {"cnn3d": table_one.VOLUME_DATA, "ResNet50": table_one.IMAGE_DATA}
    assert table_one.fit_volume_rows(table_params, Runtime.local(), names=["resnet18"]) is None


def test_a_3d_row_may_change_its_training_but_not_the_shared_volumes(table_params):
    settings = table_one.volume_params(table_params)
    params = dataclasses.replace(table_params, model_overrides={"resnet3d_18": {"epochs": 3, "learning_rate": 0.01}})
    own = table_one.volume_model_params(params, settings, "resnet3d_18")
    assert (own.epochs, own.learning_rate, own.input_shape) == (3, 0.01, settings.input_shape)
    assert table_one.volume_model_params(params, settings, "cnn3d") is settings
    for bad in ({"input_shape": [16, 16, 8]}, {"dropout_rate": 0.1}):
        wrong = dataclasses.replace(table_params, model_overrides={"cnn3d": bad})
        with pytest.raises(ParameterError, match=next(iter(bad))):
            table_one.volume_model_params(wrong, settings, "cnn3d")
