"""Tests of common.report.figures.bars: metric bars, bars against paper references, benchmark ratios."""

import matplotlib.pyplot as plt
import pytest

from common.errors import DataError
from common.report import figures
from tests.report.figures.helpers import MODEL_NAMES, assert_draws_a_png

# The ratios of a bench.json record (common.bench), one below its target; other keys are ignored.
BENCH_RECORD = {
    "quick": True,
    "pipeline_vs_model": {"value": 7.5, "target": 3.0, "meets_target": True, "cold_ratio": 1.2},
    "pipeline_vs_in_memory": {"value": 0.9, "target": 0.95, "meets_target": False},
    "cam_fraction_of_ceiling": {"value": 0.93, "target": 0.9, "meets_target": True, "batch_size": 32},
    "machine": {"cpu_count": 2},
}


def metrics_entry(value, half_width=0.05):
    return {"value": value, "ci95": [value - half_width, min(value + half_width, 1.0)]}


def make_cases():
    """(name, call that draws into the path it is given) for every bar figure."""
    models = {
        name: {
            m: metrics_entry(0.7 + 0.02 * k) for m in ("accuracy", "precision", "recall", "specificity", "f1", "auc")
        }
        for k, name in enumerate(MODEL_NAMES)
    }
    return {
        "metric_bars": lambda path: figures.metric_bars(models, path=path, title="test set"),
        "bar_with_reference": lambda path: figures.bar_with_reference(
            {organ: metrics_entry(0.8 + 0.02 * k) for k, organ in enumerate(["lung", "liver", "kidney", "brain"])},
            {"lung": 0.97, "liver": 0.95, "kidney": 0.96, "pancreas": 0.9},
            ylabel="accuracy",
            path=path,
        ),
        "bench_ratios": lambda path: figures.bench_ratios(BENCH_RECORD, path=path),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    assert_draws_a_png(make_cases()[kind], figure_dir / f"fig_{kind}.png")


def test_bench_ratios_draw_one_panel_per_ratio_with_its_target_line():
    figure = figures.bench_ratios(BENCH_RECORD)
    try:
        assert [axis.get_title() for axis in figure.axes] == [
            "pipeline vs model",
            "pipeline vs in memory",
            "cam fraction of ceiling",
        ]
        for axis, key in zip(figure.axes, ("pipeline_vs_model", "pipeline_vs_in_memory", "cam_fraction_of_ceiling")):
            (bar,) = axis.patches
            (target_line,) = axis.lines
            assert bar.get_height() == BENCH_RECORD[key]["value"]
            assert target_line.get_ydata()[0] == BENCH_RECORD[key]["target"]
        # Green when the target is met, red when it is missed.
        colours = [axis.patches[0].get_facecolor()[:3] for axis in figure.axes]
        assert colours[0] == colours[2] != colours[1]
    finally:
        plt.close(figure)
    with pytest.raises(DataError, match="no ratio"):
        figures.bench_ratios({"quick": True})
