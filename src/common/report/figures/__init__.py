"""The study's figures: one function per kind of figure.

Every function takes numbers that are already computed (histories, confusion
matrices, metric dicts from :mod:`common.evaluation.classification`, images and
CAMs), draws them, saves a PNG when ``path`` is given and returns the figure.
Figures are made through pyplot so a notebook shows them inline. In a notebook
with the inline backend a saved figure is shown from its PNG and closed: the
inline backend would draw it a second time (a 3 x 3 grid of panels takes 3-6 s
per draw here), and the reader sees exactly the file the book and the paper
comparison use.

Conventions: greyscale images use the ``gray`` colormap; CAMs use ``jet`` (the
papers' convention) on a fixed [0, 1] scale; lesion masks are drawn as outlines.

The public API, by module (all importable from here, e.g. ``figures.cam_grid``):

- :mod:`~common.report.figures.curves`: :func:`training_curves`,
  :func:`training_curves_grid`, :func:`roc_curves`, :func:`roc_curves_models`,
  :func:`randomisation_curve`.
- :mod:`~common.report.figures.matrices`: :func:`confusion_matrix`,
  :func:`confusion_matrix_grid`.
- :mod:`~common.report.figures.bars`: :func:`metric_bars`,
  :func:`bar_with_reference`, :func:`bench_ratios`.
- :mod:`~common.report.figures.images`: :func:`image_grid`, :func:`cam_grid`.
- :mod:`~common.report.figures.volumes`: :func:`orthogonal_views`,
  :func:`volume_views`, :func:`slice_montage`.
- :mod:`~common.report.figures.forest`: :func:`paper_vs_run_forest` (the
  overview's papers-against-runs plot).
- :mod:`~common.report.figures.calibration`: :func:`reliability_diagram`.
- :mod:`~common.report.figures.contrast_detail`: :func:`contrast_detail_figure`
  (sensitivity against lesion size per contrast bin).
- :mod:`~common.report.figures.seeds`: :func:`seed_spread` (a metric's spread over seeds).

``plt`` (pyplot, imported after the backend choice) and the drawing constants
(``DPI``, ``CAM_CMAP``, ``MASK_COLOUR``, ``CAM_ALPHA``, ``CAM_OVERLAY_FLOOR``)
come from :mod:`~common.report.figures._shared`.

Example:
    >>> from common.report import figures
    >>> fig = figures.training_curves({"accuracy": [0.6, 0.8], "loss": [0.9, 0.5]})
    >>> figures.plt.close(fig)
"""

# The shared module first: it chooses the backend before pyplot is imported.
from common.report.figures._shared import (
    CAM_ALPHA,
    CAM_CMAP,
    CAM_OVERLAY_FLOOR,
    DPI,
    MASK_COLOUR,
    plt,
)
from common.report.figures.bars import bar_with_reference, bench_ratios, metric_bars
from common.report.figures.calibration import reliability_diagram
from common.report.figures.contrast_detail import contrast_detail_figure
from common.report.figures.curves import (
    randomisation_curve,
    roc_curves,
    roc_curves_models,
    training_curves,
    training_curves_grid,
)
from common.report.figures.forest import paper_vs_run_forest
from common.report.figures.images import cam_grid, image_grid
from common.report.figures.matrices import confusion_matrix, confusion_matrix_grid
from common.report.figures.seeds import seed_spread
from common.report.figures.volumes import orthogonal_views, slice_montage, volume_views

__all__ = [
    "CAM_ALPHA",
    "CAM_CMAP",
    "CAM_OVERLAY_FLOOR",
    "DPI",
    "MASK_COLOUR",
    "bar_with_reference",
    "bench_ratios",
    "cam_grid",
    "confusion_matrix",
    "confusion_matrix_grid",
    "contrast_detail_figure",
    "image_grid",
    "metric_bars",
    "orthogonal_views",
    "paper_vs_run_forest",
    "plt",
    "randomisation_curve",
    "reliability_diagram",
    "roc_curves",
    "roc_curves_models",
    "seed_spread",
    "slice_montage",
    "training_curves",
    "training_curves_grid",
    "volume_views",
]
