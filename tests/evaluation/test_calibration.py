"""Tests of common.evaluation.calibration on predictors whose calibration is known."""

import json

import numpy as np
import pytest

from common.errors import ParameterError
from common.evaluation.calibration import Calibration, calibration


def overconfident(n=1000, right_share=0.69):
    """Three classes; the top class always gets 0.99 and is right on the first ``right_share`` of the images."""
    labels = np.arange(n) % 3
    n_right = round(right_share * n)
    predicted = np.where(np.arange(n) < n_right, labels, (labels + 1) % 3)
    probs = np.full((n, 3), 0.005)
    probs[np.arange(n), predicted] = 0.99
    return labels, probs


def test_perfectly_calibrated_predictor_has_ece_near_zero():
    rng = np.random.default_rng(0)
    probability = rng.random(20_000)
    labels = (rng.random(20_000) < probability).astype(int)  # drawn from the predictor's own probabilities
    result = calibration(labels, probability, ["negative", "positive"], n_resamples=300)
    assert result.kind == "binary" and result.positive == "positive"
    assert result.ece.value < 0.015 and result.ece.low < 0.015
    # The bins lie on the diagonal.
    np.testing.assert_allclose(result.observed, result.predicted, atol=0.03)
    # Brier of a calibrated uniform predictor: E[p(1 - p)] = 1/6.
    assert result.brier.value == pytest.approx(1 / 6, abs=0.005)


def test_predictor_saying_099_but_right_69_percent_has_ece_030():
    labels, probs = overconfident()
    result = calibration(labels, probs, ["a", "b", "c"], n_resamples=300)
    assert result.kind == "top-label" and result.positive is None
    assert result.ece.value == pytest.approx(0.30)
    assert result.ece.low <= 0.30 <= result.ece.high
    # Every image in the top bin: its mean confidence 0.99, its accuracy 0.69.
    assert result.count == (1000,) and result.bin_lower == pytest.approx((0.9,))
    assert result.predicted == pytest.approx((0.99,)) and result.observed == pytest.approx((0.69,))
    # Brier by hand: right, 0.01^2 + 2 * 0.005^2; wrong, 0.99^2 + 0.995^2 + 0.005^2.
    right, wrong = 0.01**2 + 2 * 0.005**2, 0.99**2 + 0.995**2 + 0.005**2
    assert result.brier.value == pytest.approx(0.69 * right + 0.31 * wrong)


def test_brier_and_ece_by_hand_on_three_images():
    # Binary: (0.25 - 0)^2 + (0.65 - 1)^2 + (0.95 - 1)^2 over 3; one image per bin.
    binary = calibration([0, 1, 1], [0.25, 0.65, 0.95], ["no", "yes"], n_resamples=50)
    assert binary.brier.value == pytest.approx((0.0625 + 0.1225 + 0.0025) / 3)
    assert binary.ece.value == pytest.approx((0.25 + 0.35 + 0.05) / 3)
    assert binary.count == (1, 1, 1) and binary.bin_lower == pytest.approx((0.2, 0.6, 0.9))
    # Three classes: squared distance of each probability vector to its one-hot label.
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
    three = calibration([0, 2, 2], probs, ["a", "b", "c"], n_resamples=50)
    by_hand = [0.3**2 + 0.2**2 + 0.1**2, 0.1**2 + 0.5**2 + 0.6**2, 0.3**2 + 0.3**2 + 0.6**2]
    assert three.kind == "top-label"
    assert three.brier.value == pytest.approx(np.mean(by_hand))
    # Top label: 0.7 right (bin 0.6-0.7), 0.5 wrong (bin 0.4-0.5), 0.4 right (bin 0.3-0.4).
    assert three.ece.value == pytest.approx((0.3 + 0.5 + 0.6) / 3)


def test_record_round_trip_and_group_bootstrap():
    labels, probs = overconfident(n=300)
    grouped = calibration(labels, probs, ["a", "b", "c"], groups=np.arange(300) // 10, n_resamples=200)
    record = json.loads(json.dumps(grouped.record()))
    assert set(record) == {"kind", "positive", "ece", "brier", "bins", "n_bins"}
    assert record["ece"]["n"] == 300 and "30 groups" in record["ece"]["ci_method"]
    assert set(record["bins"]) == {"lower", "upper", "predicted", "observed", "count"}
    assert Calibration.from_record(record) == grouped
    table = grouped.table()
    assert list(table.index) == ["0.90–1.00"] and table.loc["0.90–1.00", "gap"] == pytest.approx(-0.3, abs=1e-3)


def test_n_bins_is_checked():
    with pytest.raises(ParameterError, match="n_bins"):
        calibration([0, 1], [0.2, 0.8], ["no", "yes"], n_bins=0)
