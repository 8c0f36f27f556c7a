"""Tests of common.evaluation.estimate: the Estimate value type and its metrics.json record."""

import dataclasses
import json
import math

import pytest

from common.evaluation.estimate import Estimate


def test_record_holds_value_and_interval_only_by_default():
    assert Estimate(0.9, 0.85, 0.95).to_record() == {"value": 0.9, "ci95": [0.85, 0.95]}
    assert json.dumps(Estimate(0.9, 0.85, 0.95).to_record()) == '{"value": 0.9, "ci95": [0.85, 0.95]}'


def test_record_adds_count_method_and_folds_in_a_fixed_order():
    estimate = Estimate(0.5, 0.25, 0.75, n=12, method="Wilson")
    assert list(estimate.to_record()) == ["value", "ci95", "n", "ci_method"]
    assert estimate.to_record() == {"value": 0.5, "ci95": [0.25, 0.75], "n": 12, "ci_method": "Wilson"}
    folds = Estimate(0.7, 0.45, 0.95, folds=(0.6, 0.7, 0.8)).to_record()
    assert folds == {"value": 0.7, "ci95": [0.45, 0.95], "folds": [0.6, 0.7, 0.8]}
    assert list(Estimate(0.5, 0.4, 0.6, n=3).with_count(7).to_record()) == ["value", "ci95", "n"]


def test_record_numbers_are_plain_python_numbers():
    import numpy as np

    record = Estimate(np.float64(0.5), np.float32(0.25), np.float64(0.75), n=np.int64(4)).to_record()
    assert type(record["value"]) is float and all(type(v) is float for v in record["ci95"])
    assert type(record["n"]) is int


def test_undefined_and_missing_intervals_are_nan():
    undefined = Estimate.undefined(n=0)
    assert math.isnan(undefined.value) and not undefined.is_defined
    assert undefined.to_record()["n"] == 0
    single = Estimate.without_interval(0.3, method="none (one group)")
    assert single.value == 0.3 and single.is_defined
    assert all(math.isnan(v) for v in single.interval)
    assert not single.contains(0.3)


def test_from_record_round_trips_and_reads_json_nulls_as_nan():
    estimate = Estimate(0.7, 0.45, 0.95, confidence=0.9, n=3, method="t", folds=(0.6, 0.7, 0.8))
    assert Estimate.from_record(estimate.to_record(), confidence=0.9) == estimate
    read = Estimate.from_record(json.loads('{"value": null, "ci95": [null, 0.5], "n": 0, "extra": 1}'))
    assert math.isnan(read.value) and math.isnan(read.low) and read.high == 0.5 and read.n == 0
    assert read.method is None and read.folds is None and read.confidence == 0.95
    with pytest.raises(KeyError):
        Estimate.from_record({"value": 0.5})


def test_estimate_is_frozen_and_contains_its_bounds():
    estimate = Estimate(0.5, 0.4, 0.6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.value = 0.1  # type: ignore[misc]
    assert estimate.contains(0.4) and estimate.contains(0.6) and not estimate.contains(0.61)
    assert estimate.interval == (0.4, 0.6)
