"""Tests of common.report.figures.calibration: the reliability diagram."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.errors import DataError
from common.evaluation.calibration import calibration
from common.evaluation.tables import format_estimate
from common.report import figures
from tests.report.figures.helpers import assert_draws_a_png


def top_label(n=300, temperature=1.0, seed=0):
    """The top-label calibration of a synthetic three-class model; temperature > 1 makes it overconfident."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits * temperature)
    return calibration(labels, probs / probs.sum(axis=1, keepdims=True), ["a", "b", "c"], n_resamples=100)


def test_reliability_diagram_draws_a_line_per_model_with_its_ece(tmp_path):
    calibrations = {"Calibrated": top_label(), "Overconfident": top_label(temperature=3.0, seed=1)}
    assert_draws_a_png(lambda path: figures.reliability_diagram(calibrations, path=path), tmp_path / "reliability.png")
    figure = figures.reliability_diagram(calibrations)
    try:
        reliability, counts = figure.axes
        # The diagonal and one line per model, through each model's bins.
        assert len(reliability.lines) == 1 + 2
        np.testing.assert_allclose(reliability.lines[2].get_xdata(), calibrations["Overconfident"].predicted)
        labels = [text.get_text() for text in reliability.get_legend().get_texts()]
        assert labels[1] == f"Calibrated: ECE {format_estimate(calibrations['Calibrated'].ece)}"
        assert "top-label" in reliability.get_title()
        # One step outline of bin counts per model below, summing to the images.
        assert len(counts.patches) == 2
        assert [patch.get_data().values.sum() for patch in counts.patches] == [300, 300]
        assert counts.get_yscale() == "log"
    finally:
        plt.close(figure)


def test_binary_diagram_names_the_positive_class_and_kinds_do_not_mix():
    rng = np.random.default_rng(2)
    probability = rng.random(200)
    labels = (rng.random(200) < probability).astype(int)
    binary = calibration(labels, probability, ["benign", "malignant"], n_resamples=100)
    figure = figures.reliability_diagram({"Model": binary}, title="Test set")
    try:
        assert figure.axes[0].get_title() == "Test set"
        assert figure.axes[1].get_xlabel() == "predicted probability of malignant"
    finally:
        plt.close(figure)
    with pytest.raises(DataError, match="mix kinds"):
        figures.reliability_diagram({"Binary": binary, "Top": top_label()})
    with pytest.raises(DataError, match="Nothing to draw"):
        figures.reliability_diagram({})
