"""Tests of common.config.params: one typed, frozen parameter class per experiment, matching the registry."""

import dataclasses
import json
import typing

import pytest

from common.config import params, registry
from common.errors import ParameterError

EXPERIMENTS = registry.experiment_ids()


def test_every_experiment_has_a_parameter_class():
    assert set(params.PARAMS_CLASSES) == set(EXPERIMENTS)
    for experiment_id in EXPERIMENTS:
        assert issubclass(params.params_class(experiment_id), params.RunParams)


@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
def test_the_class_fields_are_exactly_the_registry_parameters(experiment_id):
    entry = registry.experiment(experiment_id)
    declared = set(params.params_class(experiment_id).parameter_names())
    assert declared == set(entry["parameters"])
    for profile, values in entry["profiles"].items():
        assert set(values or {}) <= declared, f"{experiment_id}/{profile} sets a parameter without a field"


@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
@pytest.mark.parametrize("profile", registry.PROFILES)
@pytest.mark.parametrize("data_dir", [None, "/data/set"])
def test_every_profile_validates_and_as_dict_is_the_plain_parameter_dict(experiment_id, profile, data_dir):
    entry = registry.experiment(experiment_id)
    run_params = registry.resolve(experiment_id, profile, data_dir=data_dir)
    assert type(run_params) is params.params_class(experiment_id)
    expected = {**entry["parameters"], **(entry["profiles"][profile] or {})}
    record = run_params.as_dict()
    # Parameters first in the registry's order, then the run context.
    assert list(record)[: len(entry["parameters"])] == list(entry["parameters"])
    for name, value in expected.items():
        if name != "label_map":
            assert record[name] == value and type(record[name]) is type(value), name
    source = "real_data" if data_dir else "phantoms"
    assert record["data_source"] == source and record["data_dir"] == data_dir
    assert ("phantom_kind" in record) == (source == "phantoms")
    assert record["label_map"] == (entry[source].get("label_map"))
    json.dumps(record)  # metrics.json records it as it is


def test_parameters_are_frozen_and_changed_through_replace_which_validates_again():
    run_params = registry.resolve("iqoth", "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run_params.epochs = 3
    changed = dataclasses.replace(run_params, epochs=3, learning_rate=1)
    assert (changed.epochs, changed.learning_rate, run_params.epochs) == (3, 1.0, 1)
    assert isinstance(changed.learning_rate, float)
    with pytest.raises(ParameterError, match=r"Parameter 'epochs' expects an integer like 9, got 'x'\."):
        dataclasses.replace(run_params, epochs="x")


def test_as_dict_is_a_copy():
    run_params = registry.resolve("iqoth", "smoke")
    record = run_params.as_dict()
    record["classes"].append("extra")
    assert run_params.classes == ["normal", "benign", "malignant"]


@pytest.mark.parametrize(
    "experiment_id, overrides, message",
    [
        ("iqoth", {"x": 1}, r"Unknown parameter 'x' for iqoth; known: annotations, augment, backbone, "),
        ("iqoth", {"epochs": "abc"}, r"Parameter 'epochs' expects an integer like 9, got 'abc'\."),
        ("iqoth", {"epochs": 2.5}, r"Parameter 'epochs' expects an integer like 9, got 2\.5\."),
        ("iqoth", {"epochs": True}, r"Parameter 'epochs' expects an integer like 9, got True\."),
        ("iqoth", {"epochs": None}, r"Parameter 'epochs' expects an integer like 9, got None\."),
        ("iqoth", {"baseline_cnn": "maybe"}, r"Parameter 'baseline_cnn' expects true or false like False"),
        ("iqoth", {"cam_methods": "gradcam"}, r"Parameter 'cam_methods' expects a list like \['gradcam'"),
        ("iqoth", {"augment": [1]}, r"Parameter 'augment' expects a mapping like \{'rotation'"),
        ("iqoth", {"backbone": 50}, r"Parameter 'backbone' expects text like 'ResNet50', got 50\."),
        # weights is None by default: the example is the paper profile's value
        ("iqoth", {"weights": 1}, r"Parameter 'weights' expects text like 'imagenet', got 1\."),
        ("gradcam-3d", {"hidden_units": "x"}, r"Parameter 'hidden_units' expects an integer or null, got 'x'\."),
    ],
)
def test_wrong_overrides_are_refused_with_todays_messages(experiment_id, overrides, message):
    with pytest.raises(ParameterError, match=message):
        registry.resolve(experiment_id, "smoke", overrides)


def test_none_ints_for_floats_and_yaml_words_are_accepted_where_they_fit():
    run_params = registry.resolve(
        "iqoth",
        "smoke",
        {"weights": None, "bn_momentum": None, "learning_rate": 1, "baseline_cnn": "on", "augment": {}},
    )
    assert run_params.weights is None and run_params.bn_momentum is None
    assert run_params.learning_rate == 1.0 and isinstance(run_params.learning_rate, float)
    assert run_params.baseline_cnn is True
    assert registry.resolve("gradcam-3d", "smoke", {"hidden_units": 16}).hidden_units == 16


def test_a_label_map_parameter_replaces_the_registry_map():
    run_params = registry.resolve("multi-organ", "smoke", {"label_map": {"Brain Tumor": "brain_tumor"}})
    assert run_params.label_map == {"Brain Tumor": "brain_tumor"}
    assert registry.resolve("multi-organ", "smoke").label_map is None
    with pytest.raises(ParameterError, match="Unknown parameter 'label_map' for iqoth"):
        registry.resolve("iqoth", "smoke", {"label_map": {}})


def test_a_literal_experiment_id_tells_type_checkers_its_parameter_class():
    overloads = typing.get_overloads(registry.resolve)
    namespace = {**vars(registry), **vars(params)}  # the overloads name the classes only for type checkers
    hints = [typing.get_type_hints(function, globalns=namespace) for function in overloads]
    literal = {
        typing.get_args(h["experiment_id"])[0]: h["return"]
        for h in hints
        if typing.get_origin(h["experiment_id"]) is typing.Literal
    }
    assert literal == params.PARAMS_CLASSES
    assert any(h["experiment_id"] is str and h["return"] is params.RunParams for h in hints)
