"""Tests of common.experiments.nine_models.settings: per-model settings from the registry and the run.

Head layers and trainable-layer counts of all nine backbones are checked in
tests/models (built at each architecture's minimum size, whose layer
structure is the paper size's); here the same table is checked through the
settings a profile resolves to.
"""

import pytest

from common import models
from common.config import registry
from common.errors import ParameterError
from common.experiments import nine_models

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
        settings = nine_models.model_settings(params, name)
        assert (settings.input_size, settings.trainable_last_layers) == (size, trainable), name
        assert settings.learning_rate == pytest.approx(learning_rate) and settings.epsilon == pytest.approx(epsilon)
        assert settings.preprocess == models.BACKBONES[name].preprocess
    assert set(nine_models.settings_table(params, PAPER_SPEC).index) == set(PAPER_SPEC)


def test_cpu_profiles_use_the_smallest_accepted_size_and_train_everything():
    params = registry.resolve("nine-models", "smoke")
    sizes = {name: nine_models.model_settings(params, name).input_size for name in PAPER_SPEC}
    assert sizes["InceptionV3"] == 75 and sizes["Xception"] == 71
    assert sizes["VGG16"] == max(params.image_size, 32)
    settings = nine_models.model_settings(params, "ResNet50")
    assert settings.trainable_last_layers is None and settings.paper_trainable_last_layers == 53
    assert settings.learning_rate == params.learning_rate
    assert settings.epsilon == nine_models.KERAS_ADAM_EPSILON and settings.weights is None
    assert nine_models.largest_input_size(params) == max(sizes.values()) == 75
    assert nine_models.largest_input_size(params, ["VGG16", "Xception"]) == 71


def test_a_models_override_row_changes_that_model_only():
    params = registry.resolve(
        "nine-models",
        "smoke",
        {"model_overrides": {"MobileNetV2": {"learning_rate": 0.003, "epochs": 4, "augment": {"flip": "horizontal"}}}},
    )
    changed = nine_models.model_parameters(params, "MobileNetV2")
    other = nine_models.model_parameters(params, "VGG16")
    assert (changed.epochs, changed.augment) == (4, {"flip": "horizontal"})
    assert other == params and params.epochs == 1  # the run's parameters themselves are left alone
    assert nine_models.model_settings(params, "MobileNetV2").learning_rate == 0.003
    assert nine_models.model_settings(params, "VGG16").learning_rate == params.learning_rate
    table = nine_models.settings_table(params, ["MobileNetV2", "VGG16"])
    assert table.loc["MobileNetV2", "epochs"] == 4 and table.loc["VGG16", "epochs"] == 1
    assert table.loc["VGG16", "augment"] == "none"


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"MobileNetV3": {"epochs": 2}}, "unknown model"),
        ({"VGG16": {"epoch": 2}}, "epoch"),
        ({"VGG16": {"models": ["VGG16"]}}, "models"),
        ({"VGG16": {"epochs": "two"}}, "Parameter 'epochs' expects an integer like 6, got 'two'"),
    ],
)
def test_override_rows_name_known_models_and_parameters(rows, message):
    params = registry.resolve("nine-models", "smoke", {"model_overrides": rows})
    with pytest.raises(ParameterError, match=message):
        nine_models.model_settings(params, "VGG16")


def test_model_names_are_checked():
    with pytest.raises(ParameterError, match="Unknown model"):
        nine_models.check_model_names(["VGG16", "ResNet18"])
    with pytest.raises(ParameterError, match="more than once"):
        nine_models.check_model_names(["VGG16", "VGG16"])
    with pytest.raises(ParameterError, match="empty"):
        nine_models.check_model_names([])
