"""Tests of common.report.figures.contrast_detail: sensitivity against lesion size per contrast bin."""

import math

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError, ParameterError
from common.evaluation.contrast_detail import PROPERTY_COLUMNS, contrast_detail
from common.report import figures
from tests.report.figures.helpers import assert_draws_a_png


def _analysis(detected_share: float, pointed: bool = False):
    """Three sizes x three contrasts, four images each; the first ``detected_share`` of each cell detected."""
    diameters = np.repeat([3.0, 6.0, 12.0], 12)
    contrasts = np.tile(np.repeat([0.5, 2.0, 5.0], 4), 3)
    properties = pd.DataFrame(np.nan, index=range(36), columns=list(PROPERTY_COLUMNS))
    properties["diameter_px"], properties["contrast"] = diameters, contrasts
    detected = np.tile(np.arange(4) < round(4 * detected_share), 9)
    return contrast_detail(properties, detected, pointed=detected if pointed else None)


def _points(axis):
    """(x, y) of every drawn marker line (the error-bar lines), sorted."""
    return sorted(
        (round(float(x), 6), float(y))
        for line in axis.lines
        if line.get_marker() == "o"
        for x, y in zip(line.get_xdata(), line.get_ydata())
    )


def test_one_model_draws_a_line_per_contrast_bin(figure_dir):
    result = _analysis(0.75)
    assert_draws_a_png(
        lambda path: figures.contrast_detail_figure({"ResNet50": result}, path, threshold=0.9),
        figure_dir / "contrast_detail.png",
    )
    fig = figures.contrast_detail_figure({"ResNet50": result})
    (axis,) = fig.axes
    assert axis.get_xscale() == "log"
    points = _points(axis)
    assert len(points) == 9 and {y for _, y in points} == {0.75}
    # Dodged around the bins' median diameters, at most DODGE apart in log space.
    assert all(min(abs(math.log(x / d)) for d in (3.0, 6.0, 12.0)) < 0.05 for x, _ in points)
    figures.plt.close(fig)


def test_several_models_draw_a_panel_per_contrast_bin():
    fig = figures.contrast_detail_figure(
        {"a": _analysis(1.0, True), "b": _analysis(0.5, True)}, measure="pointing_game"
    )
    assert len(fig.axes) == 3
    assert sorted({y for axis in fig.axes for _, y in _points(axis)}) == [0.5, 1.0]
    assert fig.axes[0].get_title().startswith("|contrast| 0.5")
    figures.plt.close(fig)


def test_bad_calls_are_refused():
    with pytest.raises(DataError):
        figures.contrast_detail_figure({})
    with pytest.raises(ParameterError):
        figures.contrast_detail_figure({"a": _analysis(1.0)}, measure="auc")
