"""What every figure module shares: the backend choice, the conventions, saving, grids and panels.

The backend is chosen here, before pyplot is first imported (every figure module
imports pyplot from this module). Panels draw images, CAMs and mask outlines
the same way in every figure.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.cm
import matplotlib.colors
import numpy as np

from common.errors import DataError


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
    closed, so it is drawn once (see :mod:`common.report.figures`).
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


# ----------------------------------------------------------------------------- panels: images, CAMs, masks


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
