"""Grids of 2-D images: samples with mask outlines, and image / CAM / overlay rows."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

from common.errors import DataError
from common.report.figures._shared import (
    MASK_COLOUR,
    _cam_colourbar,
    _finish,
    _grid_shape,
    _outline,
    _show_cam,
    _show_image,
    plt,
)


def image_grid(
    images: Sequence,
    titles: Sequence[str],
    masks: Sequence | None = None,
    ncols: int = 4,
    path=None,
    mask_colour: str = MASK_COLOUR,
    title: str | None = None,
) -> plt.Figure:
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
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_inches * ncols, 2.8 * nrows), squeeze=False, layout="constrained"
    )
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


def cam_grid(rows: Sequence[Mapping], path=None, cam_label: str = "CAM", mask_colour: str = MASK_COLOUR) -> plt.Figure:
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
