"""Confusion matrices, alone or one per model in a grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from common.errors import DataError
from common.report.figures._shared import _finish, _grid_shape, plt


def _annotated_matrix(
    axis, values: np.ndarray, number_format: str, top: float | None, class_names: Sequence[str]
) -> None:
    """A square heatmap of a class x class matrix with each cell's value written in it.

    Drawn with imshow and one text per cell (seaborn's heatmap redraws the whole
    figure per call to pick text colours, which made a 3 x 3 grid take 20 s).
    """
    top = float(values.max()) if top is None else top
    top = top if top > 0 else 1.0
    axis.imshow(values, cmap="Blues", vmin=0, vmax=top)
    for (row, column), value in np.ndenumerate(values):
        axis.text(
            column,
            row,
            format(value, number_format),
            ha="center",
            va="center",
            color="white" if value > top / 2 else "black",
        )
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=35, ha="right", rotation_mode="anchor")
    axis.set_yticks(ticks, class_names)


def _draw_confusion(container, cm, class_names: Sequence[str], title: str | None) -> None:
    """Counts and row-normalised confusion matrix side by side, into a figure or subfigure."""
    counts = np.asarray(cm)
    if counts.shape != (len(class_names), len(class_names)):
        raise DataError(f"Confusion matrix of shape {counts.shape} does not fit {len(class_names)} class names.")
    row_totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    count_axis, share_axis = container.subplots(1, 2)
    panels = (
        (count_axis, counts, "d", None, "counts"),
        (share_axis, normalised, ".2f", 1.0, "row-normalised (recall)"),
    )
    for axis, values, number_format, top, panel_title in panels:
        _annotated_matrix(axis, values, number_format, top, class_names)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(panel_title)
    if title:
        container.suptitle(title)


def _confusion_panel_inches(n_classes: int) -> float:
    """Side of one heatmap so its annotations stay legible as classes grow."""
    return max(3.2, 0.6 * n_classes + 1.4)


def confusion_matrix(cm, class_names: Sequence[str], path=None, title: str | None = None) -> plt.Figure:
    """Confusion matrix as counts and row-normalised, side by side.

    Args:
        cm: (C, C) counts, rows true classes, columns predicted classes.
        class_names: The C class names in index order.
        path: Where to save the PNG, or None.
        title: Figure title.
    """
    side = _confusion_panel_inches(len(class_names))
    fig = plt.figure(figsize=(2 * side + 0.6, side + 0.6), layout="constrained")
    _draw_confusion(fig, cm, class_names, title)
    return _finish(fig, path)


def confusion_matrix_grid(cms: Mapping[str, tuple], path=None, ncols: int = 3) -> plt.Figure:
    """Confusion matrices of several models in a grid.

    Args:
        cms: Model name -> (cm, class_names).
        path: Where to save the PNG, or None.
        ncols: Models per grid row.
    """
    nrows, ncols = _grid_shape(len(cms), ncols)
    side = max(_confusion_panel_inches(len(names)) for _, names in cms.values())
    fig = plt.figure(figsize=((2 * side + 0.6) * ncols, (side + 0.8) * nrows), layout="constrained")
    cells = fig.subfigures(nrows, ncols, squeeze=False).ravel()
    for cell, (name, (cm, class_names)) in zip(cells, cms.items()):
        _draw_confusion(cell, cm, class_names, name)
    return _finish(fig, path)
