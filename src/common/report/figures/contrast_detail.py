"""The contrast-detail plot: sensitivity against lesion size, one line per contrast.

Radiology's contrast-detail curve shows, for each contrast, how detection
falls as lesions get smaller. Here each point is one size x contrast bin of a
:class:`~common.evaluation.contrast_detail.ContrastDetail`, drawn at the median
lesion diameter of its images (log scale) with its Wilson interval as an error
bar. One model gives one panel with a line per contrast bin (faint to strong
from light to dark); several models give one panel per contrast bin with a line
per model, so models are compared at equal contrast. Bins without images are
left out; the ceiling, when given, is a dashed line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from common.errors import DataError, ParameterError
from common.evaluation.contrast_detail import MEASURES, SIZE_LABEL, ContrastDetail, DetailBin
from common.report.figures._shared import _finish, plt

# Horizontal shift between neighbouring lines (a factor on the diameter), so error bars do not overlap.
DODGE = 0.035
PANEL_SIZE = (4.2, 3.6)
MEASURE_LABELS = {"sensitivity": "sensitivity", "pointing_game": "pointing game"}


def _draw_line(axis, bins: Sequence[DetailBin], measure: str, shift: float, colour, label: str) -> None:
    """One line of bins (ascending size) with error bars, at ``diameter * exp(shift)``."""
    points = [(entry, getattr(entry, measure)) for entry in bins]
    points = [(entry, estimate) for entry, estimate in points if estimate is not None and estimate.is_defined]
    if not points:
        return
    x = np.array([entry.median_diameter for entry, _ in points]) * math.exp(shift)
    y = np.array([estimate.value for _, estimate in points])
    low = np.array([estimate.low for _, estimate in points])
    high = np.array([estimate.high for _, estimate in points])
    has_interval = np.isfinite(low) & np.isfinite(high)
    errors = np.vstack([np.where(has_interval, y - low, 0.0), np.where(has_interval, high - y, 0.0)])
    axis.errorbar(x, y, yerr=errors, color=colour, marker="o", markersize=4.5, lw=1.5, capsize=3, label=label)


def _style_axis(axis, measure: str, threshold: float | None) -> None:
    """Log size axis with plain-number ticks, [0, 1] measure axis, grid and the ceiling."""
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_ylim(-0.03, 1.05)
    axis.set_xlabel(SIZE_LABEL)
    axis.set_ylabel(MEASURE_LABELS[measure])
    axis.grid(alpha=0.3, which="both")
    if threshold is not None:
        axis.axhline(threshold, color="grey", lw=1, ls="--", label=f"ceiling {threshold:.2f}")


def _column(result: ContrastDetail, contrast_bin: int) -> list[DetailBin]:
    """The bins of one contrast, smallest lesions first."""
    return [result.bin(size_bin, contrast_bin) for size_bin in range(result.n_size_bins)]


def _shifts(n_lines: int) -> list[float]:
    """Log-scale shifts centring ``n_lines`` dodged lines on the bins."""
    return [DODGE * (k - (n_lines - 1) / 2) for k in range(n_lines)]


def _one_model(name: str, result: ContrastDetail, measure: str, threshold: float | None) -> plt.Figure:
    """One panel, a line per contrast bin."""
    fig, axis = plt.subplots(figsize=(PANEL_SIZE[0] * 1.35, PANEL_SIZE[1] * 1.2), layout="constrained")
    n_lines = result.n_contrast_bins
    colours = plt.get_cmap("viridis_r")(np.linspace(0.2, 0.9, n_lines))
    for contrast_bin, shift in zip(range(n_lines), _shifts(n_lines)):
        column = _column(result, contrast_bin)
        label = f"|contrast| {column[0].contrast_label}"
        _draw_line(axis, column, measure, shift, colours[contrast_bin], label)
    _style_axis(axis, measure, threshold)
    axis.set_title(f"{name}: {MEASURE_LABELS[measure]} by lesion size and contrast ({result.n} lesion images)")
    axis.legend(fontsize="small", loc="best")
    return fig


def _panel_title(results: Sequence[ContrastDetail], contrast_bin: int, n_bins: int) -> str:
    """The contrast range when every model has the same edges, else the bin's rank."""
    ranges = {result.bin(0, contrast_bin).contrast_range for result in results}
    if len(ranges) == 1:
        return f"|contrast| {results[0].bin(0, contrast_bin).contrast_label}"
    return f"contrast bin {contrast_bin + 1} of {n_bins}"


def _several_models(by_model: Mapping[str, ContrastDetail], measure: str, threshold: float | None) -> plt.Figure:
    """A panel per contrast bin, a line per model."""
    results = list(by_model.values())
    n_panels = max(result.n_contrast_bins for result in results)
    fig, axes = plt.subplots(
        1,
        n_panels,
        figsize=(PANEL_SIZE[0] * n_panels, PANEL_SIZE[1] + 0.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    colours = plt.get_cmap("tab10")
    shifts = _shifts(len(results))
    for contrast_bin, axis in enumerate(axes[0]):
        present = [result for result in results if contrast_bin < result.n_contrast_bins]
        for index, (name, result) in enumerate(by_model.items()):
            if contrast_bin < result.n_contrast_bins:
                _draw_line(axis, _column(result, contrast_bin), measure, shifts[index], colours(index % 10), name)
        _style_axis(axis, measure, threshold)
        axis.set_title(_panel_title(present, contrast_bin, n_panels) + (" (faintest)" if contrast_bin == 0 else ""))
        if contrast_bin:
            axis.set_ylabel("")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 6), frameon=False, fontsize="small")
    return fig


def contrast_detail_figure(
    by_model: Mapping[str, ContrastDetail],
    path=None,
    measure: str = "sensitivity",
    threshold: float | None = None,
) -> plt.Figure:
    """Contrast-detail plot: a measure against lesion size, per contrast bin, with Wilson intervals.

    Args:
        by_model: Model name -> its analysis (:func:`common.evaluation.contrast_detail.contrast_detail`).
            One model: one panel, a line per contrast bin. Several: a panel per
            contrast bin (faintest first), a line per model.
        path: Where to save the PNG, or None.
        measure: ``"sensitivity"`` or ``"pointing_game"``.
        threshold: Draw this ceiling as a dashed line (the registry's ``ceiling``), or None.

    Returns:
        The figure.

    Raises:
        DataError: If no model is given.
        ParameterError: For an unknown measure.
    """
    if not by_model:
        raise DataError("Nothing to draw: the contrast-detail figure was given no model.")
    if measure not in MEASURES:
        raise ParameterError(f"measure must be one of {list(MEASURES)}, got {measure!r}.")
    if len(by_model) == 1:
        ((name, result),) = by_model.items()
        fig = _one_model(name, result, measure, threshold)
    else:
        fig = _several_models(by_model, measure, threshold)
    return _finish(fig, path)
