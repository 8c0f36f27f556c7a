"""Tests of common.config.schemas: every registry parameter's constraints, checked with JSON Schema."""

import dataclasses
import typing

import pytest

from common.config import params, registry, schemas
from common.errors import ParameterError

EXPERIMENTS = registry.experiment_ids()


def _enum(name, *path):
    schema = schemas.constraints(name)
    for key in path:
        schema = schema[key]
    return schema["enum"]


def test_every_parameter_of_every_experiment_has_a_schema_and_none_is_stale():
    declared = {name for e in EXPERIMENTS for name in registry.experiment(e)["parameters"]}
    assert set(registry.section("parameter_schemas")) == declared


@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
def test_every_schema_is_valid_json_schema(experiment_id):
    cls = params.params_class(experiment_id)
    schema = schemas.experiment_schema(cls, tuple(cls.parameter_names()))
    schemas.Validator.check_schema(schema)


def test_the_allowed_names_are_the_ones_the_code_defines():
    from common.data import augment, folders
    from common.experiments import nine_models, slice_baselines
    from common.explain import methods
    from common.training import runtime

    backbones = list(registry.section("backbones"))
    assert _enum("cam_methods", "items") == list(methods.METHODS)
    assert _enum("backbone") == backbones
    assert _enum("slice_models", "items") == backbones
    assert _enum("models", "items") == list(registry.section("nine_models"))
    assert _enum("slice_poolings", "items") == list(slice_baselines.POOLINGS)
    assert _enum("slice_labels") == list(slice_baselines.SLICE_LABELS)
    assert _enum("on_bad_file") == list(folders.BAD_FILE_POLICIES)
    assert _enum("gpu_speedups") == list(runtime.GPU_SPEEDUP_SWITCH)
    assert set(schemas.constraints("augment")["properties"]) == set(augment.KINDS)
    assert set(augment.FLIP_MODES) <= set(_enum("augment", "properties", "flip"))
    assert set(augment.ZOOM_AXES) <= set(_enum("augment", "properties", "zoom_axes"))
    assert set(augment.FILL_MODES) <= set(_enum("augment", "properties", "fill"))
    assert _enum("input_scaling") == [nine_models.KERAS_SCALING, nine_models.AUTHORS_SCALING]


@pytest.mark.parametrize("name", ["auto", "default", "mirrored"])
def test_every_allowed_strategy_is_one_the_runtime_builds(name):
    from common.training import runtime

    assert name in _enum("strategy")
    assert runtime.distribution_strategy(name) is not None


def test_a_type_comes_from_the_annotation_and_null_from_optional():
    assert schemas.type_schema(int) == {"type": "integer"}
    assert schemas.type_schema(list[float] | None) == {"type": ["array", "null"], "items": {"type": "number"}}
    assert schemas.type_schema(dict[str, typing.Any]) == {"type": "object"}
    assert schemas.parameter_schema("cam_methods", list[str]) == {
        "type": "array",
        "items": {
            "type": "string",
            "enum": ["gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "xgradcam", "eigencam", "random"],
        },
        "minItems": 1,
        "uniqueItems": True,
    }


@pytest.mark.parametrize(
    ("experiment_id", "overrides", "message"),
    [
        ("iqoth", {"batch_size": 0}, r"Parameter 'batch_size' must be an integer from 1 to 4096; got 0\."),
        ("nine-models", {"image_size": -5}, r"Parameter 'image_size' must be an integer from 32 to 1024; got -5\."),
        ("iqoth", {"cam_methods": ["gradcam", "lime"]}, r"'cam_methods' must be a list .*one of gradcam, gradcam\+\+"),
        ("iqoth", {"cam_methods": []}, r"'cam_methods' must be a list of at least 1 item"),
        ("iqoth", {"cam_methods": ["gradcam", "gradcam"]}, r"'cam_methods' .*without repeats"),
        ("iqoth", {"split_fractions": [0.5, 0.5]}, r"'split_fractions' must be a list of 3 items"),
        ("iqoth", {"learning_rate": 0}, r"'learning_rate' must be a number greater than 0 and at most 1; got 0\.0"),
        ("iqoth", {"augment": {"rot": 0.1}}, r"'augment' must be a mapping, with keys among rotation"),
        ("iqoth", {"augment": {"flip": "diagonal"}}, r"flip: one of horizontal, vertical"),
        ("iqoth", {"gpu_speedups": "maybe"}, r"'gpu_speedups' must be one of auto, on, off; got 'maybe'"),
        ("iqoth", {"on_bad_file": "ignore"}, r"'on_bad_file' must be one of error, skip"),
        ("iqoth", {"channels": 2}, r"'channels' must be one of 1, 3; got 2"),
        ("iqoth", {"weights": ""}, r"'weights' must be text, not empty, or null"),
        ("gradcam-3d", {"window": [0, -3]}, r"'window' must be a list of 2 items, item 1 from -2000 to 4000"),
        ("gradcam-3d", {"k_folds": 1}, r"'k_folds' must be an integer from 2 to 50; got 1"),
        ("gradcam-3d", {"volume_shape": [64, 64]}, r"'volume_shape' must be a list of 3 items"),
        ("nine-models", {"models": ["ResNet51"]}, r"'models' .*each one of DenseNet121"),
        ("nine-models", {"split_counts": {"train": 10}}, r"'split_counts' must be a mapping, with the keys train"),
        ("nine-models", {"label_map": {"a": ""}}, r"'label_map' must be a mapping, each value text, not empty"),
    ],
)
def test_a_value_outside_its_schema_is_refused_with_the_valid_range(experiment_id, overrides, message):
    with pytest.raises(ParameterError, match=message):
        registry.resolve(experiment_id, "smoke", overrides)


@pytest.mark.parametrize(
    ("experiment_id", "overrides"),
    [
        ("iqoth", {"batch_size": 1}),
        ("iqoth", {"batch_size": 4096}),
        ("iqoth", {"image_size": 32}),
        ("iqoth", {"cam_methods": ["scorecam"]}),
        ("iqoth", {"augment": None}),
        ("iqoth", {"augment": {"rotation": 0, "flip": None}}),
        ("iqoth", {"learning_rate": 1}),
        ("iqoth", {"weights": "/models/resnet50.weights.h5"}),
        ("gradcam-3d", {"window": [-600, 1500], "k_folds": 2}),
        ("nine-models", {"models": ["VGG16", "Xception"], "split_counts": {"train": 10, "val": 2, "test": 2}}),
    ],
)
def test_a_value_on_or_inside_its_bounds_is_accepted(experiment_id, overrides):
    run_params = registry.resolve(experiment_id, "smoke", overrides)
    for name, value in overrides.items():
        assert getattr(run_params, name) == value


def test_the_schema_is_checked_again_when_a_field_is_replaced():
    run_params = registry.resolve("iqoth", "smoke")
    with pytest.raises(ParameterError, match="'n_explain' must be an integer from 1 to 100000; got 0"):
        dataclasses.replace(run_params, n_explain=0)


def test_the_first_bad_parameter_in_registry_order_is_named():
    with pytest.raises(ParameterError, match="'epochs'"):
        registry.resolve("iqoth", "smoke", {"batch_size": 0, "epochs": 0})


def test_a_wrong_type_names_an_example_of_the_right_one():
    with pytest.raises(ParameterError, match=r"Parameter 'epochs' expects an integer like 9, got 3\.0\."):
        registry.resolve("iqoth", "smoke", {"epochs": 3.0})


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "integer", "minimum": 1}, "an integer of at least 1"),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "a number greater than 0 and less than 1"),
        ({"type": ["integer", "null"], "minimum": 1, "maximum": 9}, "an integer from 1 to 9, or null"),
        ({"enum": ["a", None, False]}, "one of a, null, false"),
        ({"type": "array", "minItems": 2, "maxItems": 2}, "a list of 2 items"),
        ({"type": "array", "maxItems": 1}, "a list of at most 1 item"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "a mapping, each value an integer"),
        ({}, "any value"),
    ],
)
def test_describe_puts_a_schema_in_words(schema, words):
    assert schemas.describe(schema) == words
