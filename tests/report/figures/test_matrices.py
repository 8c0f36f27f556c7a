"""Tests of common.report.figures.matrices: one confusion matrix and a grid of them."""

import pytest

from common.report import figures
from tests.report.figures.helpers import CLASS_NAMES, MODEL_NAMES, assert_draws_a_png

CM = [[28, 2, 0], [3, 25, 2], [1, 4, 25]]


def make_cases():
    """(name, call that draws into the path it is given) for every confusion-matrix figure."""
    return {
        "confusion_matrix": lambda path: figures.confusion_matrix(CM, CLASS_NAMES, path=path, title="DenseNet121"),
        "confusion_matrix_grid": lambda path: figures.confusion_matrix_grid(
            {name: (CM, CLASS_NAMES) for name in MODEL_NAMES[:4]}, path=path
        ),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    assert_draws_a_png(make_cases()[kind], figure_dir / f"fig_{kind}.png")
