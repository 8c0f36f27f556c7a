"""The 3D Grad-CAM experiment (seed 001): its volume table, data record and out-of-fold explanations.

Seed 001 classifies whole CT series (tumour / normal) with a 3D CNN, evaluates
it by cross-validation (:mod:`common.experiments.cross_validation`) and shows
3D Grad-CAM heatmaps. This module holds the experiment's own steps around that
loop:

* the run's volume table: the ``chest_volumes`` phantoms or ``params.data_dir``
  (read by :mod:`common.data.volume_sets`), and its ``data`` record for ``metrics.json``;
* explanations of the test volumes of every fold by that fold's model, through
  the one explanation driver (:mod:`common.explain.driver`), scored against the
  lesion masks at each CAM layer (:class:`LayerExplanations`);
* what a run shows: raw slices of a series, the model's layers, and example
  volumes with their CAMs and captions (:class:`ShownVolume`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.config.params import Gradcam3dParams
from common.data import annotations, volume_sets
from common.experiments.cross_validation import CrossValidation
from common.experiments.explaining import explained_subset, run_benchmark
from common.experiments.loading import (
    PHANTOM_OUTLINES,
    LoadedData,
    label_map_for,
    phantom_folder,
    real_source,
    verify_copy,
    with_box_masks,
    with_label_index,
)

if TYPE_CHECKING:
    import keras

    from common.explain.benchmark import Benchmark
    from common.explain.driver import Explanation

MODEL_NAME = "CNN3D"
"""The model's name in ``metrics.json`` (``models``, ``explanations``, ``paper_vs_run``)."""


# ---------------------------------------------------------------- the run's data


def load_samples(params: Gradcam3dParams) -> LoadedData:
    """The volume table of a run: the phantoms, or ``params.data_dir``.

    ``label_index`` follows the registry's class order. With ``params.annotations``,
    every series gets a box mask (:func:`common.experiments.loading.with_box_masks`);
    a bad annotation file stops the run (the experiment has no ``on_bad_file``).

    Returns:
        :class:`common.experiments.loading.LoadedData` (samples, source, root, mask source).

    Raises:
        DataError: see :func:`common.data.volume_sets.load_volume_samples`, a bad annotation file
            (:mod:`common.data.annotations`), or labels that are not the experiment's classes.
    """
    label_map = label_map_for(params)
    if params.data_dir:
        root = Path(params.data_dir)
        samples = volume_sets.load_volume_samples(root, label_map)
        source = real_source(params.manifest, root)
        real = {"verification": verify_copy(params), "groups_note": "one group per case folder (a patient in TCIA)"}
    else:
        folder = phantom_folder(params)
        root = folder / "series"
        samples = volume_sets.load_volume_samples(root, label_map, mask_root=folder / "masks")
        source = f"phantoms/{params.phantom_kind} ({folder.name})"
        real = {}
    mask_source = None if params.data_dir else PHANTOM_OUTLINES
    loaded = LoadedData(with_label_index(params, samples), source=source, root=root, mask_source=mask_source, **real)
    return with_box_masks(params, loaded, annotations.series_masks, on_bad_file="error")


def data_record(loaded: LoadedData, cv: CrossValidation, input_shape: Sequence[int]) -> dict[str, Any]:
    """The ``data`` section of ``metrics.json``: source, volumes per class and per test fold.

    Args:
        loaded: :class:`common.experiments.loading.LoadedData` of the volume table.
        cv: The cross-validation run on it.
        input_shape: (H, W, D) the volumes were loaded at.
    """
    from common.data import folders

    counts = folders.class_counts(loaded.samples.assign(test_fold=cv.fold_of()), by="test_fold")
    return {
        "source": loaded.source,
        "unit": "volume (one DICOM series)",
        "n_volumes": int(len(loaded.samples)),
        "input_shape": [int(v) for v in input_shape],
        "class_counts": {str(col): {str(k): int(v) for k, v in counts[col].items()} for col in counts.columns},
        "folds": [r.sizes() for r in cv.folds],
        "skipped_files": loaded.skipped,
        "masks": loaded.mask_record(),
        "verification": loaded.verification,
    }


def raw_slices(info: Mapping[str, Any], n: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """``n`` evenly spaced slices of a series as stored (HU), in slice order, with their titles.

    Args:
        info: The series' description from :func:`common.data.dicom.load_series`
            (``n_slices``, ``files`` in slice order, ``slice_positions``).
        n: Slices to take, first and last included.

    Returns:
        ``(images, titles)``; a title gives the slice's position in mm when the series has positions.
    """
    from common.data import dicom

    indices = np.linspace(0, info["n_slices"] - 1, n).round().astype(int)
    images = [dicom.load_slice(info["files"][i]) for i in indices]
    titles = [
        f"slice {i + 1}, z = {info['slice_positions'][i]:.0f} mm" if info["slice_positions"] else f"slice {i + 1}"
        for i in indices
    ]
    return images, titles


def layer_outputs(model: keras.Model) -> pd.DataFrame:
    """Every layer of ``model`` and its output shape (without the batch axis)."""
    return pd.DataFrame(
        [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers], columns=["layer", "output"]
    )


# ---------------------------------------------------------------- explanations


def explain_folds(
    params: Gradcam3dParams,
    cv: CrossValidation,
    volumes: np.ndarray,
    samples: pd.DataFrame,
    masks: np.ndarray,
    layer: str | None = None,
) -> Explanation:
    """CAMs of correctly classified lesion volumes, each by the model of its test fold.

    Up to ``params.n_explain`` volumes of the positive class, predicted
    right out of fold, whose mask on the input grid is not empty (a series
    without boxes, or boxes too small to survive resampling, has nothing to
    point at), are explained with every method of ``params.cam_methods`` and
    scored against their masks (pointing game, energy share, IoU at
    ``params.cam_fraction``, with 95% CIs).

    Args:
        params: Run parameters (``positive``, ``n_explain``, ``explain_only_correct``,
            ``cam_methods``, ``seed``, ``n_resamples``, ``cam_fraction``).
        cv: The cross-validation whose fold models explain.
        volumes: (N, H, W, D, 1) model inputs, in ``samples`` order.
        samples: Volume table.
        masks: Lesion masks (N, H, W, D) on the input grid.
        layer: CAM layer; None: the last convolutional layer.

    Returns:
        :class:`common.explain.driver.Explanation` (CAMs (n, H, W, D) per method).
    """
    from common.explain import driver

    lesion_classes = [params.positive] if params.positive else None
    candidates = explained_subset(
        samples,
        cv.out_of_fold_probabilities(),
        len(samples),
        lesion_classes,
        only_correct=params.explain_only_correct,
    )
    positions = candidates[masks[candidates].any(axis=(1, 2, 3))][: params.n_explain]
    subset = driver.ImageSubset.take(volumes, samples["label_index"].to_numpy(), positions, masks[positions])
    return driver.explain(
        cv.fold_models(positions), subset, params.cam_methods, driver.ExplainSettings.from_params(params), layer
    )


def benchmark_volumes(
    params: Gradcam3dParams,
    cv: CrossValidation,
    volumes: np.ndarray,
    samples: pd.DataFrame,
    explained: LayerExplanations,
    layer: str | None = None,
) -> Benchmark | None:
    """The CAM benchmark (:mod:`common.explain.benchmark`) on the first ``benchmark_images`` scored volumes.

    Each volume is explained by the model of its test fold, at ``layer`` (default: the paper's CAM layer).

    Returns:
        The benchmark; None without scored volumes or with ``benchmark_methods`` null.
    """
    from common.explain import driver

    layer = layer or explained.cam_layer
    if not params.benchmark_methods or not explained.scored or layer not in explained.by_layer:
        return None
    scored = explained.by_layer[layer]
    positions = scored.positions[: params.benchmark_images]
    subset = driver.ImageSubset.take(
        volumes, samples["label_index"].to_numpy(), positions, scored.masks[: params.benchmark_images]
    )
    return run_benchmark(params, cv.fold_models(positions), subset, layer)


def method_slices(
    volumes: np.ndarray, found: Benchmark, k: int = 2
) -> tuple[list[np.ndarray], list[str], list[np.ndarray | None]]:
    """The first ``k`` benchmarked volumes under every method, each at the axial slice with the most lesion.

    Returns:
        ``(panels, titles, masks)``, ``1 + len(methods)`` of each per volume (the slice, then one overlay per
        method; the lesion outline on every panel), for :func:`common.report.figures.image_grid`.
    """
    from common.explain import overlays

    panels, titles, masks = [], [], []
    for row, position in enumerate(found.positions[:k]):
        lesion = found.masks[row] if found.masks is not None and found.masks[row].any() else None
        weights = lesion if lesion is not None else found.cams[found.methods[0]][row]
        depth = int(np.asarray(weights).sum(axis=(0, 1)).argmax())
        image = volumes[position, :, :, depth, 0]
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
        panels.append(image)
        titles.append(f"volume {position}, slice {depth} ({found.layer})")
        for method in found.methods:
            panels.append(overlays.overlay(image, found.cams[method][row][:, :, depth]))
            titles.append(method)
        masks += [None if lesion is None else lesion[:, :, depth]] * (1 + len(found.methods))
    return panels, titles, masks


def fold_cam(
    cv: CrossValidation,
    volumes: np.ndarray,
    position: int,
    class_index: int,
    method: str = "gradcam",
    layer: str | None = None,
) -> np.ndarray:
    """CAM (H, W, D) of one volume by the model of its test fold, for ``class_index``."""
    from common.explain import driver

    return driver.owned_cams(
        cv.fold_models([position]), volumes[position : position + 1], [class_index], method, layer
    )[0]


@dataclass(frozen=True)
class LayerExplanations:
    """The out-of-fold explanations of a run at each CAM layer: the paper's, then finer ones.

    Attributes:
        by_layer: Layer -> its :class:`common.explain.driver.Explanation`; empty without lesion masks.
        cam_layer: The paper's CAM layer (the last convolutional layer), the first key of ``by_layer``.
    """

    by_layer: Mapping[str, Explanation]
    cam_layer: str

    @property
    def scored(self) -> bool:
        """True when the paper's layer has scores (masks known and a volume to explain)."""
        return bool(self.by_layer) and bool(self.by_layer[self.cam_layer].scores)

    def records(self, model_name: str = MODEL_NAME) -> dict[str, Mapping[str, dict]]:
        """The ``explanations`` entry of ``metrics.json``: scores by model, ``"<model> at <layer>"`` for finer layers.

        Empty when :attr:`scored` is false. The score dicts are the explanations' own,
        so what a caller adds to them (the randomisation check) is recorded too.
        """
        if not self.scored:
            return {}
        return {
            model_name if layer == self.cam_layer else f"{model_name} at {layer}": explanation.scores
            for layer, explanation in self.by_layer.items()
        }

    def table(self, model: keras.Model) -> pd.DataFrame:
        """Localisation scores, one row per layer (with its feature-map size) and method."""
        from common.evaluation import tables
        from common.explain.driver import LOCALISATION_METRICS

        rows = {
            f"{layer} {tuple(model.get_layer(layer).output.shape[1:4])}, {method}": scores
            for layer, explanation in self.by_layer.items()
            for method, scores in explanation.scores.items()
        }
        return tables.metrics_table(rows, names=LOCALISATION_METRICS)

    def summary(self) -> str:
        """How many volumes were explained, the energy share of chance, and the seconds per layer and method."""
        first = self.by_layer[self.cam_layer]
        seconds = {layer: explanation.seconds for layer, explanation in self.by_layer.items()}
        return (
            f"{len(first.positions)} tumour volumes; energy share of a uniform heatmap "
            f"(chance): {first.masks.mean():.4f}; seconds: {seconds}"
        )


def explain_layers(
    params: Gradcam3dParams,
    cv: CrossValidation,
    volumes: np.ndarray,
    samples: pd.DataFrame,
    masks: np.ndarray | None,
    cam_layer: str,
) -> LayerExplanations:
    """:func:`explain_folds` at the paper's CAM layer and at ``params.compare_cam_layer`` (if set).

    Args:
        params: Run parameters (see :func:`explain_folds`; ``compare_cam_layer``).
        cv: The cross-validation whose fold models explain.
        volumes: (N, H, W, D, 1) model inputs, in ``samples`` order.
        samples: Volume table.
        masks: Lesion masks (N, H, W, D), or None (real series without masks: nothing is explained).
        cam_layer: The paper's CAM layer.
    """
    layers = [cam_layer] + ([params.compare_cam_layer] if params.compare_cam_layer else [])
    by_layer = (
        {layer: explain_folds(params, cv, volumes, samples, masks, layer=layer) for layer in layers}
        if masks is not None
        else {}
    )
    return LayerExplanations(by_layer, cam_layer)


# ---------------------------------------------------------------- volumes shown


def example_volume(cv: CrossValidation, samples: pd.DataFrame, label: str) -> int | None:
    """Position of the first volume of ``label`` predicted right out of fold.

    Falls back to the first volume of ``label`` when none is predicted right, so
    a run always has an example to show; None when the label has no volume.
    """
    predicted = cv.out_of_fold_probabilities().argmax(axis=1)
    of_label = samples["label"].to_numpy() == label
    for candidates in (of_label & (predicted == samples["label_index"].to_numpy()), of_label):
        hits = np.flatnonzero(candidates)
        if hits.size:
            return int(hits[0])
    return None


@dataclass(frozen=True, eq=False)  # an array inside: compared by identity
class ShownVolume:
    """A volume a run shows, with its out-of-fold prediction and CAM.

    Attributes:
        position: Its position in the volume table.
        target: The class its CAM explains (its own label).
        cam: CAM (H, W, D) by the model of its test fold.
        caption: Case, test fold, predicted class and probability.
    """

    position: int
    target: int
    cam: np.ndarray
    caption: str


def shown_volumes(
    params: Gradcam3dParams,
    cv: CrossValidation,
    samples: pd.DataFrame,
    volumes: np.ndarray,
    layer: str | None,
    method: str = "gradcam",
) -> dict[str, ShownVolume]:
    """A tumour and a normal volume (:func:`example_volume`), each explained for its own class.

    Args:
        params: Run parameters (``classes``, ``positive``).
        cv: The cross-validation whose fold models explain.
        samples: Volume table.
        volumes: (N, H, W, D, 1) model inputs, in ``samples`` order.
        layer: CAM layer.
        method: CAM method.

    Returns:
        ``{"tumour": ..., "normal": ...}``.
    """
    probabilities = cv.out_of_fold_probabilities()
    labels = samples["label_index"].to_numpy()
    negative = next(c for c in params.classes if c != params.positive)
    shown = {}
    for name, label in (("tumour", params.positive), ("normal", negative)):
        i = example_volume(cv, samples, label)
        caption = (
            f"{samples.case.iloc[i]}, fold {cv.fold_of()[i]}: predicted "
            f"{params.classes[probabilities[i].argmax()]} (p = {probabilities[i].max():.2f})"
        )
        shown[name] = ShownVolume(i, int(labels[i]), fold_cam(cv, volumes, i, labels[i], method, layer), caption)
    return shown
