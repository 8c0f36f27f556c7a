"""Tests of common.experiments.evidence: calibration and paired tests of a run's models."""

import numpy as np
import pandas as pd

from common.config import registry
from common.experiments import evidence


def _probabilities(labels, right):
    """Two-class probabilities that are right (0.9 on the true class) where ``right`` is True."""
    chosen = np.where(right, labels, 1 - labels)
    return np.eye(2)[chosen] * 0.8 + 0.1


def test_a_copy_of_the_best_ties_and_a_guesser_is_worse():
    params = registry.resolve("resnet50-gradcam", "smoke")
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 100)
    good = _probabilities(labels, rng.random(200) < 0.95)
    guess = _probabilities(labels, rng.random(200) < 0.5)
    found = evidence.evidence_of(params, labels, {"A": good, "B": good.copy(), "C": guess})
    assert found.best_per_metric(("accuracy",)) == {"accuracy": ["A", "B"]}
    record = found.record()
    assert set(record["calibration"]) == {"A", "B", "C"}
    assert record["paired_tests"]["metrics"]["accuracy"]["comparisons"]["C"]["tie"] is False
    assert list(found.calibration_table().columns) == ["n", "calibration of", "ECE", "Brier"]
    assert "ResNet50" not in found.summary() and "A is best" in found.summary()


def test_one_model_has_calibration_and_no_comparison():
    params = registry.resolve("iqoth", "smoke")
    labels = np.array([0, 1, 2] * 10)
    found = evidence.evidence_of(params, labels, {"M": np.eye(3)[labels] * 0.7 + 0.1})
    assert found.comparison is None and found.record()["paired_tests"] is None
    assert found.calibrations["M"].kind == "top-label"
    assert found.best_per_metric(("accuracy",)) == {"accuracy": ["M"]}


def test_groups_of_reads_the_group_column_only_when_it_holds_groups():
    assert evidence.groups_of(pd.DataFrame({"group": [None, None]})) is None
    assert evidence.groups_of(pd.DataFrame({"group": [1, 1, 2]})).tolist() == [1, 1, 2]
