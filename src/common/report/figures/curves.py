"""Line plots: training curves, ROC curves and the model-randomisation sanity check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation.classification import (
    class_probabilities,
    positive_index,
    roc_points,
)
from common.report.figures._shared import _finish, _grid_shape, plt

# ----------------------------------------------------------------------------- training curves


def _history_frame(history) -> pd.DataFrame:
    """A Keras history (dict of lists or DataFrame) as a DataFrame indexed by epoch (from 1)."""
    frame = pd.DataFrame(history)
    if "epoch" in frame.columns:
        return frame.set_index("epoch")
    frame.index = np.arange(1, len(frame) + 1)
    return frame


def _accuracy_column(frame: pd.DataFrame) -> str:
    """Name of the training-accuracy column (``accuracy``, ``acc``, ``categorical_accuracy``...)."""
    for column in frame.columns:
        if not str(column).startswith("val_") and "acc" in str(column):
            return column
    raise DataError(f"The training history has no accuracy column; its columns are {list(frame.columns)}.")


def _draw_training_panels(container, history, title: str | None) -> None:
    """Accuracy and loss panels, train vs validation, into a figure or subfigure."""
    frame = _history_frame(history)
    if "loss" not in frame.columns:
        raise DataError(f"The training history has no 'loss' column; its columns are {list(frame.columns)}.")
    accuracy_axis, loss_axis = container.subplots(1, 2)
    for axis, column, label in ((accuracy_axis, _accuracy_column(frame), "accuracy"), (loss_axis, "loss", "loss")):
        axis.plot(frame.index, frame[column], marker="o", markersize=3, label="train")
        if f"val_{column}" in frame.columns:
            axis.plot(frame.index, frame[f"val_{column}"], marker="o", markersize=3, label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        container.suptitle(title)


def training_curves(history, title: str | None = None, path=None) -> plt.Figure:
    """Accuracy and loss per epoch, training vs validation, in two panels.

    Args:
        history: Keras ``History.history`` dict or a DataFrame of it (optional
            ``epoch`` column); needs a loss column and an accuracy column.
        title: Figure title.
        path: Where to save the PNG, or None.
    """
    fig = plt.figure(figsize=(9, 3.4), layout="constrained")
    _draw_training_panels(fig, history, title)
    return _finish(fig, path)


def training_curves_grid(histories: Mapping[str, object], path=None, ncols: int = 3) -> plt.Figure:
    """Training curves of several models, one accuracy/loss pair per model, in a grid.

    Args:
        histories: Model name -> history (as for :func:`training_curves`).
        path: Where to save the PNG, or None.
        ncols: Models per grid row.
    """
    nrows, ncols = _grid_shape(len(histories), ncols)
    fig = plt.figure(figsize=(6.6 * ncols, 2.9 * nrows), layout="constrained")
    cells = fig.subfigures(nrows, ncols, squeeze=False).ravel()
    for cell, (name, history) in zip(cells, histories.items()):
        _draw_training_panels(cell, history, name)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- ROC curves


def roc_curves_models(curves: Mapping[str, tuple], path=None, title: str | None = None) -> plt.Figure:
    """ROC curves in one plot, the AUC of each in the legend.

    Args:
        curves: Curve name (e.g. model) -> (is_positive, score): 0/1 or boolean
            truth and the score of the positive class.
        path: Where to save the PNG, or None.
        title: Axes title.
    """
    fig, axis = plt.subplots(figsize=(6.2, 5.6), layout="constrained")
    colours = plt.get_cmap("tab10")
    for index, (name, (is_positive, score)) in enumerate(curves.items()):
        false_positive_rate, true_positive_rate, auc = roc_points(is_positive, score)
        axis.plot(
            false_positive_rate,
            true_positive_rate,
            color=colours(index % 10),
            lw=1.6,
            label=f"{name} (AUC = {auc:.3f})",
        )
    axis.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    axis.set_xlim(-0.01, 1.01)
    axis.set_ylim(-0.01, 1.01)
    axis.set_aspect("equal")
    axis.set_xlabel("false-positive rate (1 - specificity)")
    axis.set_ylabel("true-positive rate (sensitivity)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    if title:
        axis.set_title(title)
    return _finish(fig, path)


def roc_curves(
    y_true, y_prob, class_names: Sequence[str], positive: str | None = None, path=None, title: str | None = None
) -> plt.Figure:
    """ROC curve of a classifier: the positive class if binary, else one-vs-rest per class.

    Args:
        y_true: (N,) class indices.
        y_prob: (N, C) probabilities (or 1-D positive probability for two classes).
        class_names: Class names in index order.
        positive: Positive class for binary data (default: the last class).
        path: Where to save the PNG, or None.
        title: Axes title.
    """
    labels = np.asarray(y_true)
    probs = class_probabilities(y_prob, len(class_names))
    shown = [positive_index(class_names, positive)] if len(class_names) == 2 else range(len(class_names))
    curves = {str(class_names[k]): (labels == k, probs[:, k]) for k in shown}
    return roc_curves_models(curves, path=path, title=title)


# ----------------------------------------------------------------------------- explanation sanity check


def randomisation_curve(steps, path=None, title: str | None = None) -> plt.Figure:
    """Spearman correlation of trained vs randomised CAMs per cascade step (Adebayo et al., 2018).

    Args:
        steps: Rows (DataFrame or list of dicts) with ``step``, ``layer`` and ``spearman``,
            as returned by :func:`common.explain.scores.randomisation_check`; a ``method``
            column draws one line per method.
        path: Where to save the PNG, or None.
        title: Axes title.
    """
    frame = pd.DataFrame(steps)
    if frame.empty:
        raise DataError("Nothing to draw: the randomisation check returned no steps.")
    fig, axis = plt.subplots(figsize=(max(6.0, 0.5 * frame["step"].nunique() + 3), 3.8), layout="constrained")
    groups = frame.groupby("method", sort=False) if "method" in frame.columns else [("Grad-CAM", frame)]
    for name, part in groups:
        axis.plot(part["step"], part["spearman"], marker="o", label=str(name))
    labels = frame.drop_duplicates("step").sort_values("step")
    axis.set_xticks(
        labels["step"],
        [f"{s}\n{layer}" for s, layer in zip(labels["step"], labels["layer"])],
        fontsize="x-small",
        rotation=45,
        ha="right",
    )
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_ylim(-1.05, 1.05)
    axis.set_xlabel("layers randomised, from the output down (cumulative)")
    axis.set_ylabel("Spearman rank correlation\nwith the trained model's CAM")
    axis.legend(fontsize="small")
    axis.set_title(title or "Model-randomisation sanity check")
    return _finish(fig, path)
