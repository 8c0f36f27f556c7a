"""Tests of common.report.figures.forest: the papers' claims against this run's values and intervals."""

import matplotlib.colors
import numpy as np
import pytest

from common.errors import DataError
from common.report import figures
from common.report.figures import forest
from tests.report.figures.helpers import assert_draws_a_png


def claim(model, metric, paper, this_run, ci95, comparable=True):
    """A paper-vs-run row; comparable: a paper-profile run on the real data (the default here)."""
    reason = None if comparable else "phantoms"
    row = {"model": model, "metric": metric, "paper": paper, "this_run": this_run, "ci95": ci95}
    return row | {"comparable": comparable, "reason": reason}


EXPERIMENTS = {
    "alpha": [
        claim("ResNet50", "accuracy", 0.982, 0.75, [0.25, 1.0]),  # the claim inside the interval
        claim("ResNet50", "f1", 0.98, 0.4, [0.1, 0.6]),  # outside
        claim("plain_cnn", "accuracy", 0.8, None, [None, None]),  # a claim the run has no value for
        claim("plain_cnn", "f1", None, 0.5, [0.3, 0.7]),  # a run value the paper does not give
        claim("plain_cnn", "auc", 0.9, 0.7, None),  # a run value without an interval
    ],
    "beta": [],  # a paper without numbers: no row
    "gamma": [claim("CNN3D", "accuracy", 0.85, 0.5, [0.5, 0.5])],
}


def marks(axis, marker):
    """(x, y) of every point drawn with ``marker`` in one panel."""
    return sorted(
        (float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in axis.lines if line.get_marker() == marker
    )


def bars(axis):
    """((low, high), y, colour) of every interval bar in one panel."""
    found = []
    for collection in axis.collections:
        for segment, colour in zip(collection.get_segments(), collection.get_colors()):
            (low, y), (high, _) = segment
            found.append(((float(low), float(high)), float(y), matplotlib.colors.to_hex(colour)))
    return sorted(found)


@pytest.fixture
def drawn():
    figure = figures.paper_vs_run_forest(EXPERIMENTS)
    yield figure, {axis.get_title(): axis for axis in figure.axes}
    figures.plt.close(figure)


def test_a_panel_per_metric_and_a_row_per_experiment_and_model(drawn):
    figure, panels = drawn
    assert list(panels) == ["accuracy", "f1", "auc"]
    labels = [label.get_text() for label in panels["accuracy"].get_yticklabels()]
    # beta has no claims: no row; each experiment heads its models.
    assert labels == ["alpha", "ResNet50", "plain_cnn", "gamma", "CNN3D"]
    assert [label.get_fontweight() for label in panels["accuracy"].get_yticklabels()][::3] == ["bold", "bold"]


def test_interval_bars_span_exactly_the_runs_intervals_coloured_by_agreement(drawn):
    _, panels = drawn
    agrees, differs = (matplotlib.colors.to_hex(c) for c in (forest.AGREES, forest.DIFFERS))
    # Rows from the top: alpha 0, ResNet50 -1, plain_cnn -2, gamma -3, CNN3D -4.
    assert bars(panels["accuracy"]) == [((0.25, 1.0), -1.0, agrees), ((0.5, 0.5), -4.0, differs)]
    assert bars(panels["f1"]) == [((0.1, 0.6), -1.0, differs), ((0.3, 0.7), -2.0, differs)]
    assert bars(panels["auc"]) == []  # no interval: no bar


def test_claims_and_run_values_are_drawn_where_given_and_only_there(drawn):
    _, panels = drawn
    # plain_cnn's accuracy: the claim without a run value (a diamond, no dot).
    assert marks(panels["accuracy"], "D") == sorted([(0.85, -4.0), (0.8, -2.0), (0.982, -1.0)])
    assert marks(panels["accuracy"], "o") == sorted([(0.5, -4.0), (0.75, -1.0)])
    # plain_cnn's F1: a run value the paper does not give (a dot, no diamond).
    assert marks(panels["f1"], "D") == sorted([(0.98, -1.0)])
    assert marks(panels["f1"], "o") == sorted([(0.4, -1.0), (0.5, -2.0)])
    assert marks(panels["auc"], "o") == sorted([(0.7, -2.0)])
    assert marks(panels["auc"], "D") == sorted([(0.9, -2.0)])


def dot_colours(axis):
    """(x, y, colour) of every run value (a dot) in one panel."""
    return sorted(
        (float(line.get_xdata()[0]), float(line.get_ydata()[0]), matplotlib.colors.to_hex(line.get_color()))
        for line in axis.lines
        if line.get_marker() == "o"
    )


def test_a_phantom_run_is_drawn_grey_even_where_its_interval_holds_the_claim():
    # delta's interval [0.25, 1.0] holds the claim 0.982, and epsilon's [0.1, 0.6] misses 0.98: both are phantom
    # runs, so neither is coloured as agreeing or differing; an older row without "comparable" is not comparable.
    older = claim("CNN3D", "accuracy", 0.85, 0.5, [0.4, 0.9])
    del older["comparable"], older["reason"]
    phantom = {
        "delta": [claim("ResNet50", "accuracy", 0.982, 0.75, [0.25, 1.0], comparable=False)],
        "epsilon": [claim("VGG16", "accuracy", 0.98, 0.4, [0.1, 0.6], comparable=False)],
        "zeta": [older],
    }
    figure = figures.paper_vs_run_forest(phantom)
    try:
        (axis,) = figure.axes
        grey = matplotlib.colors.to_hex(forest.NOT_COMPARABLE)
        assert grey not in {matplotlib.colors.to_hex(c) for c in (forest.AGREES, forest.DIFFERS)}
        # Rows from the top: delta 0, ResNet50 -1, epsilon -2, VGG16 -3, zeta -4, CNN3D -5.
        assert bars(axis) == [((0.1, 0.6), -3.0, grey), ((0.25, 1.0), -1.0, grey), ((0.4, 0.9), -5.0, grey)]
        assert dot_colours(axis) == [(0.4, -3.0, grey), (0.5, -5.0, grey), (0.75, -1.0, grey)]
        # The legend names the grey runs and offers no "holds the claim" entry.
        legend = [text.get_text() for text in figure.legends[0].get_texts()]
        assert legend == [forest.LEGEND_TEXT[forest.NOT_COMPARABLE], "paper's claim"]
        assert "not comparable" in legend[0]
    finally:
        figures.plt.close(figure)


def test_the_legend_of_comparable_runs_names_both_verdicts(drawn):
    figure, _ = drawn
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [forest.LEGEND_TEXT[forest.AGREES], forest.LEGEND_TEXT[forest.DIFFERS], "paper's claim"]


def test_the_forest_plot_is_saved_as_png(figure_dir):
    assert_draws_a_png(lambda path: figures.paper_vs_run_forest(EXPERIMENTS, path=path), figure_dir / "forest.png")


def test_nothing_to_draw_is_a_data_error():
    with pytest.raises(DataError, match="no experiment has a paper-vs-run row"):
        figures.paper_vs_run_forest({"beta": []})
    assert np.isnan(forest._number(None))
