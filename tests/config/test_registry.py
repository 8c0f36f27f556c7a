"""Tests of common.config.registry: experiments, profiles, overrides and their types."""

import pytest

from common.config import registry
from common.errors import ParameterError

EXPECTED_IDS = ["resnet50-gradcam", "nine-models", "multi-organ", "iqoth", "gradcam-3d"]


def test_every_experiment_is_registered_with_a_notebook_and_three_profiles():
    assert registry.experiment_ids() == EXPECTED_IDS
    for experiment_id in EXPECTED_IDS:
        entry = registry.experiment(experiment_id)
        assert entry["notebook"] == f"notebooks/{experiment_id}.ipynb"
        assert set(entry["profiles"]) == set(registry.PROFILES)


@pytest.mark.parametrize("experiment_id", EXPECTED_IDS)
@pytest.mark.parametrize("profile", registry.PROFILES)
def test_every_profile_resolves(experiment_id, profile):
    params = registry.resolve(experiment_id, profile)
    assert params.experiment == experiment_id
    assert params.profile == profile
    assert params.data_source == "phantoms"
    assert params.classes


def test_profiles_differ_where_they_should():
    smoke = registry.resolve("iqoth", "smoke")
    default = registry.resolve("iqoth", "default")
    paper = registry.resolve("iqoth", "paper")
    assert smoke.epochs == 1 and smoke.weights is None
    assert default.weights is None
    assert paper.weights == "imagenet" and paper.image_size == 224


def test_overrides_are_parsed_and_type_checked():
    overrides = registry.parse_overrides(["epochs=3", "learning_rate=1e-3", "models=[VGG16, ResNet50]"])
    assert overrides == {"epochs": 3, "learning_rate": 1e-3, "models": ["VGG16", "ResNet50"]}
    params = registry.resolve("nine-models", "smoke", overrides)
    assert params.epochs == 3 and params.models == ["VGG16", "ResNet50"]
    # an int is fine for a float parameter
    assert registry.resolve("iqoth", "smoke", {"learning_rate": 1}).learning_rate == 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: registry.resolve("no-such", "smoke"), "Unknown experiment 'no-such'"),
        (lambda: registry.resolve("iqoth", "fast"), "Unknown profile 'fast'"),
        (lambda: registry.resolve("iqoth", "smoke", {"epoch": 3}), "Unknown parameter 'epoch'"),
        (
            lambda: registry.resolve("iqoth", "smoke", registry.parse_overrides(["epochs=abc"])),
            "Parameter 'epochs' expects an integer",
        ),
        (lambda: registry.parse_overrides(["epochs"]), "not of the form name=value"),
    ],
)
def test_bad_names_and_values_are_refused_with_a_clear_message(call, message):
    with pytest.raises(ParameterError, match=message):
        call()


def test_real_data_switches_the_label_map():
    params = registry.resolve("iqoth", "default", data_dir="/somewhere")
    assert params.data_source == "real_data"
    assert params.label_map["Bengin cases"] == "benign"
    assert params.manifest == "iqothnccd"


def test_paper_claims_are_data():
    claims = registry.paper_claims("nine-models")["models"]
    assert len(claims) == 9
    assert claims["ResNet50"]["accuracy"] == pytest.approx(0.977)
    assert registry.paper_claims("resnet50-gradcam")["models"]["ResNet-50-Grad"]["accuracy"] == 98.2


def test_yaml_switch_words_stay_strings_for_a_string_parameter_and_work_for_a_boolean_one():
    overrides = registry.parse_overrides(["gpu_speedups=off", "baseline_cnn=no"])
    assert overrides == {"gpu_speedups": "off", "baseline_cnn": "no"}
    params = registry.resolve("resnet50-gradcam", "smoke", overrides)
    assert params.gpu_speedups == "off"
    assert params.baseline_cnn is False
    assert registry.parse_value("true") is True and registry.parse_value("False") is False
