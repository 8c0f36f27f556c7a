"""The comparison's heatmap figures: the shown images, then rows of CAM overlays (a model, a layer, a group)."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from common.errors import DataError
from common.experiments.nine_models.runs import ModelRun


def overlay_panels(
    images: np.ndarray,
    cams_by_row: Mapping[str, np.ndarray],
    masks: np.ndarray | None = None,
    scores_by_row: Mapping[str, np.ndarray] | None = None,
    image_titles: Sequence[str] | None = None,
    one_row_per_image: bool = False,
) -> dict[str, list]:
    """Panels for :func:`common.report.figures.image_grid`: the images, then their CAM overlays.

    By default the first row shows the images (lesion masks outlined) and
    each further row one entry of ``cams_by_row`` (a model, a layer, a layer
    group) over the same images, so a column follows one image through every
    row (draw with ``ncols=len(images)``). With ``one_row_per_image`` the grid
    is transposed: one row per image, the image first, then one overlay per
    entry (draw with ``ncols=1 + len(cams_by_row)``).

    Args:
        images: Display images (N, H, W) in [0, 1].
        cams_by_row: Label -> CAMs (N, h, w) in [0, 1] (resized to the images).
        masks: Optional lesion masks (N, H, W), outlined in every panel.
        scores_by_row: Optional label -> (N,) numbers shown in the titles
            (e.g. the probability of the explained class).
        image_titles: Titles of the plain images (default "image i").
        one_row_per_image: Transpose the grid, see above.

    Returns:
        ``{"images": [...], "titles": [...], "masks": [...] or None, "ncols": int}``.

    Raises:
        DataError: A row without one CAM per image.
    """
    from common.explain import overlays

    n_images = len(images)
    image_titles = list(image_titles) if image_titles is not None else [f"image {i + 1}" for i in range(n_images)]
    # grid[label][i]: (panel, title) of image i in the column or row of label; None labels the plain images.
    grid: dict[str | None, list[tuple[np.ndarray, str]]] = {None: list(zip(images, image_titles))}
    for label, maps in cams_by_row.items():
        if len(maps) != n_images:
            raise DataError(f"Row {label!r} has {len(maps)} CAMs for {n_images} images.")
        scores = scores_by_row.get(label) if scores_by_row is not None else None
        titles = [
            label if scores is None else f"{label} (p = {score:.2f})"
            for score in (scores if scores is not None else [None] * n_images)
        ]
        grid[label] = [(overlays.overlay(image, cam), title) for image, cam, title in zip(images, maps, titles)]
    if one_row_per_image:
        order = [(label, i) for i in range(n_images) for label in grid]
        ncols = len(grid)
    else:
        order = [(label, i) for label in grid for i in range(n_images)]
        ncols = n_images
    return {
        "images": [grid[label][i][0] for label, i in order],
        "titles": [grid[label][i][1] for label, i in order],
        "masks": None if masks is None else [masks[i] for _, i in order],
        "ncols": ncols,
    }


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class ShownImages:
    """The test images every model's heatmaps are shown on, ready to draw.

    Attributes:
        positions: Their positions in the test table.
        images: Display images (N, H, W) in [0, 1].
        masks: Their lesion masks (N, H, W), or None (a data set without masks).
        titles: ``"<label>: <file name>"`` per image.
    """

    positions: np.ndarray
    images: np.ndarray
    masks: np.ndarray | None
    titles: list[str]

    @classmethod
    def load(cls, test: pd.DataFrame, positions: np.ndarray, size: int, with_masks: bool) -> ShownImages:
        """Read the test images at ``positions`` (one channel) and their masks at ``size`` pixels.

        Args:
            test: Test sample table.
            positions: Positions of the shown images in ``test``.
            size: Display side in pixels.
            with_masks: Read the lesion masks too (the data set has them).
        """
        from common.data import pipeline
        from common.experiments.loading import read_masks

        rows = test.iloc[positions]
        images = pipeline.load_arrays(rows, size, 1)[..., 0]
        masks = read_masks(rows, size) if with_masks else None
        titles = [f"{row.label}: {pathlib.Path(row.path).name}" for row in rows.itertuples()]
        return cls(np.asarray(positions), images, masks, titles)

    def probabilities(
        self, runs: Mapping[str, ModelRun], class_index: int, models: Mapping[str, str] | None = None
    ) -> dict[str, np.ndarray]:
        """Each model's probability of ``class_index`` on the shown images, keyed by row label.

        Args:
            runs: The comparison's runs.
            class_index: The explained class.
            models: Row label -> model; None: every run, labelled by its name.
        """
        models = {name: name for name in runs} if models is None else models
        return {label: runs[name].probabilities[self.positions, class_index] for label, name in models.items()}

    def draw(
        self,
        cams_by_row: Mapping[str, np.ndarray],
        path: str | pathlib.Path,
        title: str,
        scores_by_row: Mapping[str, np.ndarray] | None = None,
        one_row_per_image: bool = False,
    ):
        """Draw the images and their overlays (:func:`overlay_panels`) with :func:`common.report.figures.image_grid`.

        Args:
            cams_by_row: Row label -> CAMs (N, h, w) on the shown images.
            path: Where the PNG goes.
            title: Figure title.
            scores_by_row: Optional label -> (N,) probabilities shown in the titles.
            one_row_per_image: One row per image (its plain panel titled ``"image i"``),
                else one row per label under the file-named images.

        Returns:
            The matplotlib figure.
        """
        from common.report import figures

        panels = overlay_panels(
            self.images,
            cams_by_row,
            self.masks,
            scores_by_row,
            None if one_row_per_image else self.titles,
            one_row_per_image,
        )
        return figures.image_grid(
            panels["images"], panels["titles"], panels["masks"], ncols=panels["ncols"], path=path, title=title
        )
