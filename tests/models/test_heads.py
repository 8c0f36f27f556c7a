"""Tests of common.models.heads: the GAP head, the nine-models heads and their registry settings."""

import pytest

from common import models
from common.config import registry
from common.errors import ParameterError
from common.models import heads
from tests.models.helpers import assert_head_matches


def test_nine_models_heads_follow_the_paper():
    # No dropout for the VGGs; Xception has none before its first Dense.
    for name in ("VGG16", "VGG19"):
        kinds = [entry["layer"] for entry in models.NINE_MODEL_SETTINGS[name].head["layers"]]
        assert "dropout" not in kinds
    xception = [e["layer"] for e in models.NINE_MODEL_SETTINGS["Xception"].head["layers"]]
    assert xception[:4] == ["upsampling2d", "gap2d", "batchnorm", "dense"]
    second_dense = {
        name: setting.dense_units[1]
        for name, setting in models.NINE_MODEL_SETTINGS.items()
        if len(setting.dense_units) == 2
    }
    assert second_dense == {"ResNet50": 128, "ResNet101": 256, "Xception": 128}
    assert set(models.NINE_MODEL_SETTINGS) <= set(models.BACKBONES)


def test_gap_head_and_custom_head_spec():
    model = models.build_backbone_model("VGG16", (32, 32, 1), 3, head="gap")
    assert_head_matches(model, models.gap_head(0.3)["layers"], 3)
    assert model.get_layer("predictions").dtype == "float32"
    assert model.name == "VGG16_gap"

    custom = {"layers": [{"layer": "gap2d"}, {"layer": "dense", "units": 7, "activation": "relu"}]}
    model = models.build_backbone_model("VGG16", (32, 32, 3), 2, head=custom, name="mine")
    assert_head_matches(model, custom["layers"], 2)
    assert model.get_layer("head_dense_1").units == 7
    assert model.name == "mine"

    assert [e["layer"] for e in models.gap_head(0)["layers"]] == ["gap2d"]
    with pytest.raises(ParameterError, match="layer"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, head={"layers": [{"units": 3}]})
    with pytest.raises(ParameterError, match="Unknown head"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, head="nope")
    with pytest.raises(ParameterError, match="Unknown backbone"):
        models.min_input_size("ResNet18")
    with pytest.raises(ParameterError, match="softmax"):
        models.build_backbone_model("VGG16", (32, 32, 3), 1)
    with pytest.raises(ParameterError, match="3 input channels"):
        models.build_backbone_model("VGG16", (32, 32, 1), 2, weights="imagenet")


def test_nine_model_settings_are_read_from_the_registry(monkeypatch):
    entries = registry.section("nine_models")
    assert list(models.NINE_MODEL_SETTINGS) == list(entries)
    # Every nine-models architecture is a backbone, in the same order; the backbones add seed 001's EfficientNetB0.
    assert list(models.NINE_MODEL_SETTINGS) == [name for name in models.BACKBONES if name in entries]
    assert [name for name in models.BACKBONES if name not in entries] == ["EfficientNetB0"]
    for name, entry in entries.items():
        setting = models.NINE_MODEL_SETTINGS[name]
        assert isinstance(setting, heads.NineModelSetting)
        assert setting.dense_units == tuple(entry["dense_units"])
        assert isinstance(setting.learning_rate, float) and isinstance(setting.epsilon, float)
        for field in ("trainable_last_layers", "learning_rate", "epsilon", "dropout"):
            assert getattr(setting, field) == entry[field], (name, field)
        assert setting.dropout_before_first_dense == entry.get("dropout_before_first_dense", True)
    # The authors' per-model values (seed 002's code, as in STUDY.md), spot-checked.
    xception = models.NINE_MODEL_SETTINGS["Xception"]
    assert (xception.trainable_last_layers, xception.learning_rate, xception.epsilon) == (41, 1e-4, 1e-1)
    assert models.NINE_MODEL_SETTINGS["InceptionResNetV2"].epsilon == 7.5e-2

    monkeypatch.setattr(registry, "section", lambda name: {"VGG16": {"trainable_last_layers": 7}})
    with pytest.raises(ParameterError, match="nine_models.VGG16"):
        heads.load_nine_model_settings()
    row = dict(vars(models.NINE_MODEL_SETTINGS["VGG16"]), authors_scaling="zscore")
    monkeypatch.setattr(registry, "section", lambda name: {"VGG16": row})
    with pytest.raises(ParameterError, match="nine_models.VGG16: authors_scaling='zscore' is none of unit"):
        heads.load_nine_model_settings()


def test_resolve_head_rejects_a_spec_without_layers():
    with pytest.raises(ParameterError, match="'layers' list"):
        heads.resolve_head({"dense": 3}, "VGG16")
    assert heads.resolve_head("nine_models", "VGG19") == models.NINE_MODEL_SETTINGS["VGG19"].head["layers"]
