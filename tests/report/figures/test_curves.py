"""Tests of common.report.figures.curves: training curves and ROC curves."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.report import figures
from tests.report.figures.helpers import CLASS_NAMES, MODEL_NAMES, assert_draws_a_png, history
from tests.scores import three_class_scores


def make_cases():
    """(name, call that draws into the path it is given) for every curve figure."""
    labels, probs = three_class_scores()
    binary_labels = (labels == 2).astype(int)
    return {
        "training_curves": lambda path: figures.training_curves(history(), title="ResNet-50", path=path),
        "training_curves_grid": lambda path: figures.training_curves_grid(
            {name: history(offset=0.01 * k) for k, name in enumerate(MODEL_NAMES)}, path=path
        ),
        "roc_curves_binary": lambda path: figures.roc_curves(
            binary_labels, probs[:, 2], ["no cancer", "cancer"], path=path, title="binary"
        ),
        "roc_curves": lambda path: figures.roc_curves(labels, probs, CLASS_NAMES, path=path),
        "roc_curves_models": lambda path: figures.roc_curves_models(
            {
                name: (binary_labels, probs[:, 2] + 0.05 * k * np.random.default_rng(k).random(90))
                for k, name in enumerate(MODEL_NAMES)
            },
            path=path,
        ),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    assert_draws_a_png(make_cases()[kind], figure_dir / f"fig_{kind}.png")


def test_roc_curves_show_one_curve_per_class_or_one_for_binary():
    labels, probs = three_class_scores()
    multi = figures.roc_curves(labels, probs, ["normal", "benign", "malignant"])
    binary = figures.roc_curves((labels == 2).astype(int), probs[:, 2], ["rest", "malignant"])
    try:
        assert len(multi.axes[0].lines) == 3 + 1  # curves + chance line
        assert len(binary.axes[0].lines) == 1 + 1
        assert "malignant (AUC = " in binary.axes[0].get_legend().get_texts()[0].get_text()
    finally:
        plt.close(multi)
        plt.close(binary)
