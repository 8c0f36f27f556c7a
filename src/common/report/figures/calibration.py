"""Reliability diagram: how well models' probabilities match what happens, one line per model.

The upper panel plots each reliability bin's mean probability against its
observed frequency (dots joined by a line); a calibrated model lies on the
diagonal, an overconfident one below it. The legend gives each model's expected
calibration error with its interval. The lower panel shows how many images fall
in each bin (a step outline per model, log scale): a bin of three images says
little, and most images of a confident model sit in the top bin.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.ticker
import numpy as np

from common.errors import DataError
from common.evaluation.calibration import BINARY, Calibration
from common.evaluation.tables import format_estimate
from common.report.figures._shared import _finish, plt

# Inches of the figure (the reliability panel about square) and the height ratio of the reliability panel to the
# count panel.
FIGURE_SIZE = (6.2, 7.4)
HEIGHT_RATIOS = (3, 1)
# The count panel's lower end (below one image) and the mantissas of its labelled ticks.
COUNT_FLOOR = 0.7
COUNT_TICKS = (1.0, 2.0, 5.0)


def _axis_labels(calibration: Calibration) -> tuple[str, str, str]:
    """x label, y label and default title for the calibrations' kind."""
    if calibration.kind == BINARY:
        positive = calibration.positive or "the positive class"
        return (
            f"predicted probability of {positive}",
            f"observed share of {positive}",
            f"Reliability diagram ({positive})",
        )
    return (
        "confidence (probability of the top class)",
        "accuracy (share of top classes right)",
        "Reliability diagram (top-label confidence)",
    )


def _bin_counts(calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """Edges of all bins and the count of each, zero for the empty ones."""
    edges = np.linspace(0.0, 1.0, calibration.n_bins + 1)
    counts = np.zeros(calibration.n_bins)
    index = np.rint(np.asarray(calibration.bin_lower) * calibration.n_bins).astype(int)
    counts[index] = calibration.count
    return edges, counts


def reliability_diagram(calibrations: Mapping[str, Calibration], path=None, title: str | None = None) -> plt.Figure:
    """Reliability diagram of one or more models, with each model's ECE in the legend and the bin counts below.

    Args:
        calibrations: Model name -> its :class:`~common.evaluation.calibration.Calibration`
            (all of one kind: binary or top-label).
        path: Where to save the PNG, or None.
        title: Figure title (default: names the kind).

    Returns:
        The figure: the reliability panel on [0, 1] x [0, 1] with the diagonal, and
        the count panel below it sharing the probability axis.

    Raises:
        DataError: If no calibration is given, or they are of different kinds.
    """
    if not calibrations:
        raise DataError("Nothing to draw: no model's calibration was given.")
    kinds = {calibration.kind for calibration in calibrations.values()}
    if len(kinds) > 1:
        raise DataError(f"The calibrations mix kinds {sorted(kinds)}: draw binary and top-label ones apart.")
    first = next(iter(calibrations.values()))
    x_label, y_label, default_title = _axis_labels(first)

    figure, (reliability, histogram) = plt.subplots(
        2, 1, sharex=True, figsize=FIGURE_SIZE, gridspec_kw={"height_ratios": HEIGHT_RATIOS}, layout="constrained"
    )
    colours = plt.get_cmap("tab10")
    reliability.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for index, (name, calibration) in enumerate(calibrations.items()):
        colour = colours(index % 10)
        reliability.plot(
            calibration.predicted,
            calibration.observed,
            marker="o",
            markersize=4,
            lw=1.4,
            color=colour,
            label=f"{name}: ECE {format_estimate(calibration.ece)}",
        )
        edges, counts = _bin_counts(calibration)
        histogram.stairs(counts, edges, color=colour, lw=1.4)
    reliability.set_xlim(0, 1)
    reliability.set_ylim(0, 1)
    reliability.set_ylabel(y_label)
    reliability.grid(alpha=0.3)
    # Below and right of the diagonal is where an overconfident model's line runs least often near the corner.
    reliability.legend(loc="lower right", fontsize="small")
    reliability.set_title(title or default_title)
    # Counts on a log scale labelled 1, 2, 5, 10, 20, ...: a bin of one image still shows.
    histogram.set_yscale("log")
    histogram.set_ylim(bottom=COUNT_FLOOR)
    histogram.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=COUNT_TICKS))
    histogram.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
    histogram.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    histogram.set_ylabel("images per bin")
    histogram.set_xlabel(x_label)
    histogram.grid(alpha=0.3)
    return _finish(figure, path)
