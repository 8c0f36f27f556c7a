"""3-D volumes: orthogonal views (middle slices or projections) and montages of axial slices."""

from __future__ import annotations

import numpy as np

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


def volume_views(
    volume,
    cam=None,
    mask=None,
    projection: str = "slice",
    path=None,
    title: str | None = None,
    mask_colour: str = MASK_COLOUR,
) -> plt.Figure:
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


def slice_montage(
    volume,
    cam=None,
    mask=None,
    n: int = 8,
    ncols: int = 4,
    path=None,
    title: str | None = None,
    mask_colour: str = MASK_COLOUR,
) -> plt.Figure:
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
