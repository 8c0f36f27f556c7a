"""The study's figures: one function per kind of figure.

Every function takes numbers that are already computed (histories, confusion
matrices, metric dicts from :mod:`common.evaluation.metrics`, images and CAMs), draws them,
saves a PNG when ``path`` is given and returns the figure. Figures are made through
pyplot so a notebook shows them inline. In a notebook with the inline backend a
saved figure is shown from its PNG and closed: the inline backend would draw it
a second time (a 3 x 3 grid of panels takes 3-6 s per draw here), and the
reader sees exactly the file the book and the paper comparison use.

Conventions: greyscale images use the ``gray`` colormap; CAMs use ``jet`` (the
papers' convention) on a fixed [0, 1] scale; lesion masks are drawn as outlines.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.cm
import matplotlib.colors
import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation.metrics import class_probabilities, positive_index, roc_points


def _use_agg_when_no_backend_is_set() -> None:
    """Select the file-only Agg backend unless a user, notebook or matplotlibrc chose one."""
    chosen = os.environ.get("MPLBACKEND") or matplotlib.rcParams._get_backend_or_none()
    if chosen is None and "ipykernel" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


_use_agg_when_no_backend_is_set()

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

DPI = 110
CAM_CMAP = "jet"
MASK_COLOUR = "magenta"  # stands out on grey images and on jet overlays alike
CAM_ALPHA = 0.45
# Overlays leave CAM values below this transparent, so the anatomy stays visible.
CAM_OVERLAY_FLOOR = 0.1


def _inline_backend() -> bool:
    """Whether figures go to a notebook through the inline backend."""
    return "inline" in matplotlib.get_backend()


def _finish(fig: plt.Figure, path) -> plt.Figure:
    """Save ``fig`` as PNG when a path is given (creating folders) and return it.

    With the inline backend a saved figure is displayed from its PNG and
    closed, so it is drawn once (see the module's docstring).
    """
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        if _inline_backend():
            from IPython.display import Image, display

            display(Image(filename=str(path)))
            plt.close(fig)
    return fig


def _grid_shape(n_panels: int, ncols: int) -> tuple[int, int]:
    """Rows and columns of a grid holding ``n_panels`` with at most ``ncols`` columns."""
    if n_panels < 1:
        raise DataError("Nothing to draw: the figure was given no panels.")
    ncols = max(1, min(ncols, n_panels))
    return math.ceil(n_panels / ncols), ncols


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


# ----------------------------------------------------------------------------- confusion matrices


def _annotated_matrix(axis, values: np.ndarray, number_format: str, top: float | None,
                      class_names: Sequence[str]) -> None:
    """A square heatmap of a class x class matrix with each cell's value written in it.

    Drawn with imshow and one text per cell (seaborn's heatmap redraws the whole
    figure per call to pick text colours, which made a 3 x 3 grid take 20 s).
    """
    top = float(values.max()) if top is None else top
    top = top if top > 0 else 1.0
    axis.imshow(values, cmap="Blues", vmin=0, vmax=top)
    for (row, column), value in np.ndenumerate(values):
        axis.text(column, row, format(value, number_format), ha="center", va="center",
                  color="white" if value > top / 2 else "black")
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
        axis.plot(false_positive_rate, true_positive_rate, color=colours(index % 10), lw=1.6,
                  label=f"{name} (AUC = {auc:.3f})")
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


def roc_curves(y_true, y_prob, class_names: Sequence[str], positive: str | None = None, path=None,
               title: str | None = None) -> plt.Figure:
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


# ----------------------------------------------------------------------------- bar charts


def _entry_value_and_error(entry) -> tuple[float, tuple[float, float]]:
    """Bar height and (below, above) error of a number or a {"value", "ci95"} entry.

    Entries without an interval get NaN errors, which draw no error bar.
    """
    if isinstance(entry, Mapping) and "ci95" in entry:
        value = float(entry["value"])
        low, high = entry["ci95"]
        return value, (max(value - float(low), 0.0), max(float(high) - value, 0.0))
    value = np.nan if entry is None else float(entry["value"] if isinstance(entry, Mapping) else entry)
    return value, (np.nan, np.nan)


def _grouped_bars(axis, categories: Sequence[str], series: Mapping[str, Mapping]) -> None:
    """Bars per category, one bar per series, with CI error bars where entries carry a ci95."""
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(categories))
    colours = plt.get_cmap("tab10")
    for index, (label, entries) in enumerate(series.items()):
        heights, errors = zip(*(_entry_value_and_error(entries.get(category)) for category in categories))
        offsets = positions - 0.4 + width * (index + 0.5)
        axis.bar(offsets, heights, width, yerr=np.array(errors).T, capsize=2, label=label,
                 color=colours(index % 10), error_kw={"elinewidth": 0.8})
    axis.set_xticks(positions, categories)
    axis.grid(axis="y", alpha=0.3)
    axis.set_axisbelow(True)


def metric_bars(models: Mapping[str, Mapping],
                metrics: Sequence[str] = ("accuracy", "precision", "recall", "specificity", "f1", "auc"),
                path=None, title: str | None = None) -> plt.Figure:
    """Grouped bars of metrics per model with confidence-interval error bars.

    Args:
        models: Model name -> metrics dict (entries {"value", "ci95"}).
        metrics: Metrics on the x axis, in order.
        path: Where to save the PNG, or None.
        title: Axes title.
    """
    fig, axis = plt.subplots(figsize=(max(7.0, 0.35 * len(metrics) * len(models) + 2), 4.2), layout="constrained")
    _grouped_bars(axis, list(metrics), models)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("value (95% CI)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    if title:
        axis.set_title(title)
    return _finish(fig, path)


def bar_with_reference(values: Mapping, reference: Mapping, ylabel: str, path=None, title: str | None = None,
                       labels: tuple[str, str] = ("this run", "paper")) -> plt.Figure:
    """Bars of this run's values beside a reference (e.g. a paper's claims) per category.

    Args:
        values: Category -> number or {"value", "ci95"} entry (CI drawn as error bar).
        reference: Category -> number on the same scale as ``values``.
        ylabel: Y-axis label.
        path: Where to save the PNG, or None.
        title: Axes title.
        labels: Legend labels of the two bar series.
    """
    categories = list(values) + [category for category in reference if category not in values]
    fig, axis = plt.subplots(figsize=(max(6.0, 0.9 * len(categories) + 2), 4.0), layout="constrained")
    _grouped_bars(axis, categories, {labels[0]: values, labels[1]: reference})
    axis.set_ylabel(ylabel)
    axis.tick_params(axis="x", labelrotation=30)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        axis.set_title(title)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- images and CAMs


def _show_image(axis, image, **imshow_options) -> None:
    """Draw a greyscale (H, W) / (H, W, 1) or RGB (H, W, 3) image in [0, 1] or [0, 255]."""
    picture = np.asarray(image)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    if picture.ndim == 2:
        axis.imshow(picture, cmap="gray", **imshow_options)
    elif picture.ndim == 3 and picture.shape[-1] in (3, 4):
        if picture.dtype != np.uint8:
            picture = picture.astype(float)
            picture = np.clip(picture / 255.0 if picture.max() > 1 else picture, 0, 1)
        axis.imshow(picture, **imshow_options)
    else:
        raise DataError(f"Cannot show an image of shape {picture.shape}: expected (H, W) or (H, W, 3).")
    axis.set_axis_off()


def _outline(axis, mask, colour: str = MASK_COLOUR) -> None:
    """Outline the non-zero region of a 2-D mask (nothing if the mask is empty)."""
    region = np.asarray(mask) > 0
    if region.ndim == 3:
        region = region[..., 0]
    if region.any():
        axis.contour(region.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)


def _show_cam(axis, cam, overlay: bool = False, **imshow_options) -> None:
    """Draw a CAM on the fixed [0, 1] scale, alone or as a translucent overlay."""
    values = np.asarray(cam, dtype=float)
    if overlay:
        values = np.ma.masked_less(values, CAM_OVERLAY_FLOOR)
        imshow_options["alpha"] = CAM_ALPHA
    axis.imshow(values, cmap=CAM_CMAP, vmin=0.0, vmax=1.0, **imshow_options)


def _cam_colourbar(container, axes, **colourbar_options) -> None:
    """Opaque colourbar of the CAM scale beside ``axes`` (overlays themselves are translucent)."""
    scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0.0, 1.0), cmap=CAM_CMAP)
    container.colorbar(scale, ax=axes, label="CAM", **colourbar_options)


def image_grid(images: Sequence, titles: Sequence[str], masks: Sequence | None = None, ncols: int = 4,
               path=None, mask_colour: str = MASK_COLOUR, title: str | None = None) -> plt.Figure:
    """Grid of sample images with titles, optionally outlining a mask on each.

    Args:
        images: Images, each (H, W), (H, W, 1) or (H, W, 3).
        titles: One title per image (e.g. class and file name).
        masks: Optional masks aligned with ``images`` (None entries allowed).
        ncols: Images per row.
        path: Where to save the PNG, or None.
        mask_colour: Colour of the mask outline.
        title: Figure title.
    """
    if len(titles) != len(images) or (masks is not None and len(masks) != len(images)):
        raise DataError("image_grid needs one title (and one mask, if masks are given) per image.")
    nrows, ncols = _grid_shape(len(images), ncols)
    panel_inches = 2.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_inches * ncols, 2.8 * nrows), squeeze=False,
                             layout="constrained")
    for index, axis in enumerate(axes.ravel()):
        if index >= len(images):
            axis.set_axis_off()
            continue
        _show_image(axis, images[index])
        if masks is not None and masks[index] is not None:
            _outline(axis, masks[index], mask_colour)
        # A title wider than its panel runs into the next one ("MobileNetV2 at block_13_expand_relu
        # (p = 0.71)"): wrap at about 14 characters per inch, the "small" font's width.
        axis.set_title(textwrap.fill(titles[index], width=int(14 * panel_inches)), fontsize="small")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def cam_grid(rows: Sequence[Mapping], path=None, cam_label: str = "CAM", mask_colour: str = MASK_COLOUR
             ) -> plt.Figure:
    """One row per example: image, CAM (with colourbar) and overlay.

    Args:
        rows: Dicts with ``image``, ``cam`` ((H, W) in [0, 1]), ``overlay`` (RGB),
            ``title`` (e.g. "true malignant / predicted malignant (p = 0.97)") and
            optionally ``mask`` (outlined on the image and the overlay).
        path: Where to save the PNG, or None.
        cam_label: Heading of the CAM column (e.g. "Grad-CAM++").
        mask_colour: Colour of the mask outline.
    """
    if not rows:
        raise DataError("cam_grid was given no rows.")
    fig = plt.figure(figsize=(9.5, 3.2 * len(rows)), layout="constrained")
    cells = fig.subfigures(len(rows), 1, squeeze=False).ravel()
    for cell, row in zip(cells, rows):
        image_axis, cam_axis, overlay_axis = cell.subplots(1, 3)
        _show_image(image_axis, row["image"])
        _show_cam(cam_axis, row["cam"])
        cam_axis.set_axis_off()
        _show_image(overlay_axis, row["overlay"])
        if row.get("mask") is not None:
            _outline(image_axis, row["mask"], mask_colour)
            _outline(overlay_axis, row["mask"], mask_colour)
        for axis, heading in ((image_axis, "image"), (cam_axis, cam_label), (overlay_axis, "overlay")):
            axis.set_title(heading, fontsize="small")
        _cam_colourbar(cell, cam_axis, shrink=0.8)
        cell.suptitle(row.get("title", ""), fontsize="medium")
    return _finish(fig, path)


# ----------------------------------------------------------------------------- volumes


def orthogonal_views(volume, projection: str = "slice") -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal views of an (H, W, D) volume.

    Args:
        volume: (H, W, D) array (image, CAM or mask).
        projection: "slice" for the middle slices, "max" for maximum-intensity projections.

    Returns:
        {"axial": (H, W), "coronal": (D, W), "sagittal": (D, H)}, depth running down.
    """
    array = np.asarray(volume, dtype=float)
    if array.ndim != 3:
        raise DataError(f"Expected an (H, W, D) volume; got shape {array.shape}.")
    if projection == "slice":
        height, width, depth = (size // 2 for size in array.shape)
        return {"axial": array[:, :, depth], "coronal": array[height, :, :].T, "sagittal": array[:, width, :].T}
    if projection == "max":
        return {"axial": array.max(axis=2), "coronal": array.max(axis=0).T, "sagittal": array.max(axis=1).T}
    raise DataError(f"projection must be 'slice' or 'max'; got {projection!r}.")


def volume_views(volume, cam=None, mask=None, projection: str = "slice", path=None, title: str | None = None,
                 mask_colour: str = MASK_COLOUR) -> plt.Figure:
    """Three orthogonal views of a volume, optionally with a CAM overlay and a mask outline.

    Args:
        volume: (H, W, D) image volume.
        cam: Optional (H, W, D) CAM in [0, 1], projected the same way.
        mask: Optional (H, W, D) lesion mask, outlined.
        projection: "slice" (middle slices) or "max" (maximum-intensity projections).
        path: Where to save the PNG, or None.
        title: Figure title.
        mask_colour: Colour of the mask outline.
    """
    image_views = orthogonal_views(volume, projection)
    cam_views = orthogonal_views(cam, projection) if cam is not None else None
    mask_views = orthogonal_views(mask, projection) if mask is not None else None
    low, high = float(np.min(volume)), float(np.max(volume))
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
    for axis, view in zip(axes, ("axial", "coronal", "sagittal")):
        _show_image(axis, image_views[view], vmin=low, vmax=high)
        if cam_views is not None:
            _show_cam(axis, cam_views[view], overlay=True)
        if mask_views is not None:
            _outline(axis, mask_views[view], mask_colour)
        axis.set_title(view)
    if cam_views is not None:
        _cam_colourbar(fig, axes, shrink=0.8)
    fig.suptitle(title or ("middle slices" if projection == "slice" else "maximum-intensity projections"))
    return _finish(fig, path)


def slice_montage(volume, cam=None, mask=None, n: int = 8, ncols: int = 4, path=None, title: str | None = None,
                  mask_colour: str = MASK_COLOUR) -> plt.Figure:
    """Evenly spaced axial slices, optionally with a CAM overlay and a mask outline.

    Args:
        volume: (H, W, D) image volume.
        cam: Optional (H, W, D) CAM in [0, 1].
        mask: Optional (H, W, D) lesion mask, outlined.
        n: Number of slices (all slices if the volume has fewer).
        ncols: Slices per row.
        path: Where to save the PNG, or None.
        title: Figure title.
        mask_colour: Colour of the mask outline.
    """
    array = np.asarray(volume, dtype=float)
    if array.ndim != 3:
        raise DataError(f"Expected an (H, W, D) volume; got shape {array.shape}.")
    depth = array.shape[2]
    # Evenly spaced, skipping the outermost slices, which rarely hold anything.
    slices = np.unique(np.linspace(0, depth - 1, min(n, depth) + 2)[1:-1].round().astype(int))
    nrows, ncols = _grid_shape(len(slices), ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.7 * nrows), squeeze=False, layout="constrained")
    low, high = float(array.min()), float(array.max())
    for index, axis in enumerate(axes.ravel()):
        if index >= len(slices):
            axis.set_axis_off()
            continue
        z = slices[index]
        _show_image(axis, array[:, :, z], vmin=low, vmax=high)
        if cam is not None:
            _show_cam(axis, np.asarray(cam)[:, :, z], overlay=True)
        if mask is not None:
            _outline(axis, np.asarray(mask)[:, :, z], mask_colour)
        axis.set_title(f"slice {z}", fontsize="small")
    if cam is not None:
        _cam_colourbar(fig, axes, shrink=0.6)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- explanation sanity check


def randomisation_curve(steps, path=None, title: str | None = None) -> plt.Figure:
    """Spearman correlation of trained vs randomised CAMs per cascade step (Adebayo et al., 2018).

    Args:
        steps: Rows (DataFrame or list of dicts) with ``step``, ``layer`` and ``spearman``,
            as returned by :func:`common.explain.explain_metrics.randomisation_check`; a ``method``
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
    axis.set_xticks(labels["step"], [f"{s}\n{layer}" for s, layer in zip(labels["step"], labels["layer"])],
                    fontsize="x-small", rotation=45, ha="right")
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_ylim(-1.05, 1.05)
    axis.set_xlabel("layers randomised, from the output down (cumulative)")
    axis.set_ylabel("Spearman rank correlation\nwith the trained model's CAM")
    axis.legend(fontsize="small")
    axis.set_title(title or "Model-randomisation sanity check")
    return _finish(fig, path)


# ----------------------------------------------------------------------------- benchmark


def bench_ratios(record: Mapping, path=None, title: str | None = None) -> plt.Figure:
    """Each performance ratio of a ``camstudy bench`` record as a bar against its target.

    One panel per ratio, each on its own scale (the targets differ by an order
    of magnitude); the target is a dashed line, and a bar is green when the
    ratio meets its target, red when it does not; the x label gives both numbers.

    Args:
        record: A ``bench.json`` record (see :mod:`common.bench`); every entry
            holding ``value``, ``target`` and ``meets_target`` is drawn, in order.
        path: Where to save the PNG, or None.
        title: Figure title.
    """
    ratios = {key: entry for key, entry in record.items()
              if isinstance(entry, Mapping) and {"value", "target", "meets_target"} <= entry.keys()}
    if not ratios:
        raise DataError("Nothing to draw: the benchmark record holds no ratio with a value and a target.")
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.0 * len(ratios) + 0.6, 3.4), layout="constrained",
                             squeeze=False)
    for axis, (key, entry) in zip(axes[0], ratios.items()):
        value, target = float(entry["value"]), float(entry["target"])
        colour = "tab:green" if entry["meets_target"] else "tab:red"
        axis.bar([0], [value], width=0.5, color=colour)
        axis.axhline(target, color="black", linestyle="--", linewidth=1.2)
        top = np.nanmax([value, target])
        axis.set_xlabel(f"measured {value:.2f}, target ≥ {target:g}")
        axis.set_ylim(0, 1.25 * top if np.isfinite(top) and top > 0 else 1)
        axis.text(0.3, target, "target", ha="left", va="bottom", fontsize="small")
        axis.set_xlim(-0.45, 0.95)
        axis.set_xticks([])
        axis.set_title(key.replace("_", " "), fontsize="medium")
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    axes[0][0].set_ylabel("ratio (higher is better)")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)
