"""The multi-organ paper's Figure 5.2 and its comparison: the image contour map beside Grad-CAM, by numbers.

The paper sets a contour map drawn from the scan (the largest abnormal region,
in green) beside the Grad-CAM heatmap, and compares the two by eye. Here the
contour comes from the image alone (:func:`common.explain.contours.abnormal_region`),
and on tumour test images taken in turn from each tumour class
(:func:`compared_images`), whose lesion masks the phantoms know, the
comparison is three overlaps per image: the contour region with the thresholded
heatmap (where the paper's two views agree), and each of them with the lesion
(which of them finds the tumour). :class:`ContourComparison` holds them with
their means and intervals; :func:`contour_panels` draws the figure, with the
heatmap's own outline as a second, labelled view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation import tables
from common.evaluation.intervals import mean_estimate, proportion_estimate

if TYPE_CHECKING:
    from common.config.params import RunParams
    from common.evaluation.estimate import Estimate
    from common.experiments.explaining import TestImages
    from common.explain.contours import ContourSettings, ImageContour

# The three overlaps of every image, in the order the tables show them.
MEASURES = ("contour_vs_cam", "contour_vs_lesion", "cam_vs_lesion")
MEASURE_LABELS = {
    "contour_vs_cam": "IoU image contour / Grad-CAM region",
    "contour_vs_lesion": "IoU image contour / lesion",
    "cam_vs_lesion": "IoU Grad-CAM region / lesion",
}
CAM_OUTLINE_COLOUR = (255, 255, 0)  # yellow: neither the contour map's green nor the lesion's magenta


def organ_of(class_name: str) -> str | None:
    """The organ a class name names (``"lung_tumor"`` -> ``"lung"``), or None for a name without one."""
    from common.experiments.organs import parse_class_name

    try:
        return parse_class_name(class_name)[0]
    except DataError:
        return None


def image_contours(
    params: RunParams, test: TestImages, positions: np.ndarray, settings: ContourSettings | None = None
) -> list[ImageContour]:
    """The image contour of each test image at ``positions``, for the organ of its predicted class.

    The predicted organ, as in the paper's application: a user's scan comes with no organ label.

    Args:
        params: Run parameters (``classes``).
        test: The test split.
        positions: The images.
        settings: The contour rule's constants; None: the registry's.
    """
    from common.explain import contours

    settings = settings or contours.ContourSettings.from_registry()
    predicted = test.probabilities.argmax(axis=1)
    return [
        contours.abnormal_region(test.display[p], organ_of(params.classes[predicted[p]]), settings) for p in positions
    ]


def compared_images(params: RunParams, test: TestImages, lesion_classes=None) -> tuple[np.ndarray, np.ndarray]:
    """The tumour test images compared, and their lesion masks: those the explanation scores take.

    :func:`common.experiments.explaining.lesion_subset`'s images: up to ``params.n_explain``
    (correctly classified unless ``explain_only_correct`` is false) with a lesion in their mask,
    taken in turn from each lesion class, so that every organ is compared even where
    ``n_explain`` is smaller than one class's share of the split.

    Returns:
        ``(positions, masks)``: row positions in the test split, ascending, and their masks.
    """
    from common.experiments.explaining import lesion_subset

    positions, masks = lesion_subset(params, test.samples, test.probabilities, test.display.shape[1], lesion_classes)
    order = np.argsort(positions)
    return positions[order], masks[order]


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class ContourComparison:
    """The image contour, the thresholded CAM and the lesion of each compared tumour image, by IoU.

    Attributes:
        files: The images' file names.
        labels: Their true classes.
        organs: The organ of each image's predicted class (the one the contour rule was given).
        found: Whether the rule found an abnormal region in each image.
        overlaps: Measure (:data:`MEASURES`) -> IoU per image; an empty contour or CAM region
            overlaps nothing and scores 0.
        method: The CAM method compared.
        fraction: The CAM threshold, a fraction of each map's maximum (the run's ``cam_fraction``).
        settings: The contour rule's constants.
        seed: Seed of the bootstrap intervals.
        n_resamples: Their resamples.
    """

    files: tuple[str, ...]
    labels: tuple[str, ...]
    organs: tuple[str, ...]
    found: np.ndarray
    overlaps: dict[str, np.ndarray]
    method: str
    fraction: float
    settings: ContourSettings
    seed: int
    n_resamples: int

    @classmethod
    def compute(
        cls,
        params: RunParams,
        model,
        test: TestImages,
        layer: str,
        lesion_classes=None,
        settings: ContourSettings | None = None,
    ) -> ContourComparison | None:
        """Grad-CAM of the predicted class on :func:`compared_images`' images, compared by :meth:`of`.

        Args:
            params: Run parameters (``n_explain``, ``explain_only_correct``, ``cam_fraction``...).
            model: The trained model.
            test: The test split (with lesion masks).
            layer: The Grad-CAM layer.
            lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).
            settings: The contour rule's constants; None: the registry's.

        Returns:
            The comparison; None when no test image qualifies.
        """
        from common.explain import cams

        positions, masks = compared_images(params, test, lesion_classes)
        if not len(positions):
            return None
        predicted = test.probabilities.argmax(axis=1)[positions]
        maps = cams.compute_cam(model, test.inputs[positions], predicted, "gradcam", layer=layer)
        return cls.of(params, test, positions, maps, masks, "gradcam", settings)

    @classmethod
    def of(
        cls,
        params: RunParams,
        test: TestImages,
        positions: np.ndarray,
        maps: np.ndarray,
        masks: np.ndarray,
        method: str = "gradcam",
        settings: ContourSettings | None = None,
    ) -> ContourComparison:
        """Compare the image contours of the images at ``positions`` with their CAMs and lesion masks.

        Args:
            params: Run parameters (``classes``, ``cam_fraction``, ``seed``, ``n_resamples``).
            test: The test split ``positions`` point into.
            positions: The images.
            maps: Their CAMs (N, H, W) at the image size, by ``method``.
            masks: Their lesion masks (N, H, W).
            method: The CAM method the maps are of.
            settings: The contour rule's constants; None: the registry's.
        """
        from common.explain import contours
        from common.explain.scores import cam_regions

        settings = settings or contours.ContourSettings.from_registry()
        positions = np.asarray(positions, dtype=int)
        maps = np.asarray(maps)
        masks = np.asarray(masks, bool)
        if maps.shape != masks.shape or maps.shape != (len(positions), *test.display.shape[1:]):
            raise DataError(
                f"CAMs {maps.shape} and masks {masks.shape} must be one per image at the image size "
                f"{test.display.shape[1:]}"
            )
        found = image_contours(params, test, positions, settings)
        cam_areas = cam_regions(maps, params.cam_fraction) if len(maps) else np.zeros(maps.shape, bool)
        pairs = {
            "contour_vs_cam": lambda i: (found[i].region, cam_areas[i]),
            "contour_vs_lesion": lambda i: (found[i].region, masks[i]),
            "cam_vs_lesion": lambda i: (cam_areas[i], masks[i]),
        }
        predicted = test.probabilities.argmax(axis=1)
        return cls(
            files=tuple(Path(str(test.samples["path"].iloc[p])).name for p in positions),
            labels=tuple(str(test.samples["label"].iloc[p]) for p in positions),
            organs=tuple(str(organ_of(params.classes[predicted[p]])) for p in positions),
            found=np.array([contour.found for contour in found], bool),
            overlaps={
                name: np.array([contours.region_iou(*pair(i)) for i in range(len(positions))], float)
                for name, pair in pairs.items()
            },
            method=method,
            fraction=float(params.cam_fraction),
            settings=settings,
            seed=int(params.seed),
            n_resamples=int(params.n_resamples),
        )

    @property
    def n(self) -> int:
        """The number of images compared."""
        return len(self.files)

    def estimates(self) -> dict[str, dict[str, Estimate]]:
        """Group (``"all"``, then each predicted organ) -> measure -> mean IoU with its bootstrap interval and n."""
        organs = np.array(self.organs)
        groups = {"all": np.ones(self.n, bool)} | {organ: organs == organ for organ in dict.fromkeys(self.organs)}
        return {
            group: {
                name: mean_estimate(values[keep], self.seed, self.n_resamples).with_count(int(keep.sum()))
                for name, values in self.overlaps.items()
            }
            for group, keep in groups.items()
        }

    def found_share(self) -> Estimate:
        """The share of images in which the rule found an abnormal region, with its Wilson interval."""
        return proportion_estimate(self.found, seed=self.seed, n_resamples=self.n_resamples)

    def difference(self) -> Estimate:
        """Mean over images of (contour / lesion IoU minus Grad-CAM region / lesion IoU), paired, with its interval."""
        paired = self.overlaps["contour_vs_lesion"] - self.overlaps["cam_vs_lesion"]
        return mean_estimate(paired, self.seed, self.n_resamples).with_count(self.n)

    def sentence(self) -> str:
        """Which of the two views overlaps the lesions more, read off the paired difference's interval."""
        if self.n < 2:
            return f"{self.n} image compared: too few for an interval, no comparison of the two views."
        difference = self.difference()
        shown = tables.format_estimate(difference)
        if difference.low > 0:
            verdict = "the image contour overlaps the tumours more than the Grad-CAM region does"
        elif difference.high < 0:
            verdict = "the Grad-CAM region overlaps the tumours more than the image contour does"
        else:
            verdict = "the interval cannot tell which of the two views overlaps the tumours more"
        return (
            f"On {self.n} tumour images, {verdict}: the mean paired difference of IoU with the tumour "
            f"(contour minus {self.method} region) is {shown}. The contour rule's constants were chosen for this "
            "overlap on other phantoms of the same generator (the registry's `image_contours`), while the "
            f"{self.method} region's threshold (`cam_fraction`) was not tuned for it: a head start for the contour."
        )

    def table(self) -> pd.DataFrame:
        """Group (all, then each predicted organ) x measure, each ``"mean (low–high)"``, with the number of images."""
        rows = {
            group: {"images": estimates[MEASURES[0]].n}
            | {MEASURE_LABELS[name]: tables.format_estimate(estimates[name]) for name in MEASURES}
            for group, estimates in self.estimates().items()
        }
        return pd.DataFrame(rows).T.rename_axis("images of")

    def record(self) -> dict[str, Any]:
        """The ``contour_comparison`` entry of ``metrics.json``: the rule, every image, and the summaries.

        ``summary`` holds ``"all"`` and each organ of the images' predicted classes (the organ the rule
        was given), each measure with its value, interval and n; ``contour_minus_cam_vs_lesion`` the
        paired difference of :meth:`difference`; ``images`` one entry per image.
        """
        return {
            "method": self.method,
            "cam_fraction": self.fraction,
            "rule": self.settings.record(),
            "n_images": self.n,
            "contour_minus_cam_vs_lesion": self.difference().to_record(),
            "contour_found": self.found_share().to_record(),
            "summary": {
                group: {name: estimate.to_record() for name, estimate in estimates.items()}
                for group, estimates in self.estimates().items()
            },
            "images": [
                {"file": file, "label": label, "predicted_organ": organ, "contour_found": bool(found)}
                | {name: float(self.overlaps[name][i]) for name in MEASURES}
                for i, (file, label, organ, found) in enumerate(
                    zip(self.files, self.labels, self.organs, self.found, strict=True)
                )
            ],
        }


def lesion_masks(test: TestImages, positions: np.ndarray) -> list[np.ndarray | None]:
    """The lesion mask of each image at ``positions`` (at the display size); None where it has no mask file."""
    from common.experiments.loading import read_masks

    positions = np.asarray(positions, dtype=int)
    has_file = test.samples["mask_path"].iloc[positions].notna().to_numpy() if test.has_masks else []
    masks: list[np.ndarray | None] = [None] * len(positions)
    if np.any(has_file):
        read = read_masks(test.samples.iloc[positions[has_file]], test.display.shape[1])
        for row, mask in zip(np.flatnonzero(has_file), read, strict=True):
            masks[row] = mask
    return masks


def contour_panels(
    params: RunParams,
    test: TestImages,
    positions: np.ndarray,
    maps: np.ndarray,
    settings: ContourSettings | None = None,
) -> tuple[list[np.ndarray], list[str], list[np.ndarray | None]]:
    """Image, Grad-CAM overlay, the image contour map, and the Grad-CAM outline of each image.

    Args:
        params: Run parameters (``classes``, ``cam_fraction``).
        test: The test split.
        positions: The images shown.
        maps: Their CAMs, in ``positions`` order.
        settings: The contour rule's constants; None: the registry's.

    Returns:
        ``(panels, titles, outlines)``, four of each per image, for :func:`common.report.figures.image_grid`:
        the image (with its lesion outlined, where the split has masks); the CAM over it; the contour
        from the image (the paper's contour map, green, with its box); the region where the CAM reaches
        ``cam_fraction`` of its maximum, outlined in yellow.
    """
    from common.explain import contours, overlays

    predicted = test.probabilities.argmax(axis=1)
    found = image_contours(params, test, positions, settings)
    masks = lesion_masks(test, positions)
    panels, titles, outlines = [], [], []
    for position, cam, contour, mask in zip(positions, maps, found, masks, strict=True):
        image = test.display[position]
        outlines += [mask if mask is not None and mask.any() else None, None, None, None]
        panels += [
            image,
            overlays.overlay(image, cam),
            contours.draw_image_contour(image, contour),
            overlays.draw_contours(image, cam, params.cam_fraction, CAM_OUTLINE_COLOUR),
        ]
        titles += [
            f"true {test.samples.label[position]}\npredicted {params.classes[predicted[position]]} "
            f"(p = {test.probabilities[position].max():.2f})",
            "Grad-CAM",
            "image contour (green)" if contour.found else "image contour: none found",
            f"Grad-CAM outline at {params.cam_fraction:.0%} of max (yellow)"
            if np.max(cam, initial=0.0) > 0
            else "Grad-CAM: empty map, no outline",
        ]
    return panels, titles, outlines
