"""Volume data and k-fold cross-validation of the 3D Grad-CAM experiment (seed 001).

Seed 001 classifies whole CT series (tumour / normal) with a 3D CNN and
evaluates it by cross-validation, reporting mean metrics with 95% confidence
intervals. This module holds what that experiment adds to the 2D steps of
:mod:`common.experiments.workflow`:

* a sample table of DICOM series (one row per volume) from class folders,
  ``root/<class>/<case>/.../*.dcm``, with optional lesion masks
  ``mask_root/<class>/<case>.npz`` (the layout of the ``chest_volumes``
  phantoms, see :mod:`common.data.phantoms`);
* loading every series at the model's input shape with :func:`common.data.dicom.load_series`
  (sorted slices, window, min-max normalisation, Sobel), and its mask resampled
  onto the same voxel grid;
* a ``tf.data`` pipeline of volumes with the paper's rotation augmentation;
* the k-fold loop: folds stratified by class and grouped by case
  (:func:`common.data.splits.k_folds`); from each training fold a validation part is
  carved for early stopping, so a test fold is never looked at before it is
  scored; every fold's model, history, test probabilities and metrics are kept;
* explanations of the test volumes of every fold by that fold's model, scored
  against the lesion masks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.config.params import Gradcam3dParams
from common.data import dicom, splits
from common.errors import DataError, ParameterError
from common.evaluation.metrics import SUMMARY_METRICS

MASK_SUFFIX = ".npz"
MASK_KEY = "mask"
# A resampled mask voxel is lesion when at least half of it was (linear resampling).
MASK_THRESHOLD = 0.5


# ---------------------------------------------------------------- the sample table


def load_volume_samples(root: str | Path, label_map: dict[str, str] | None = None,
                        mask_root: str | Path | None = None) -> pd.DataFrame:
    """One row per DICOM series under ``root/<class folder>/``.

    Every folder that directly holds DICOM files (:func:`common.data.dicom.find_series`)
    is one volume. Its case is the first folder below the class folder (a
    patient in a TCIA download, a case in the phantoms); all series of one case
    share a group, so no case is split across folds.

    Args:
        root: Folder with one sub-folder per class.
        label_map: Class folder -> label; None uses the folder names. Labels are
            ordered by first appearance in the map's values.
        mask_root: Folder with ``<class folder>/<case>.npz`` lesion masks (key
            ``"mask"``, (H, W, D) in slice order); None when unknown.

    Returns:
        Columns: path (series folder), label, label_index, class_folder, case,
        group, mask_path (None without ``mask_root``).

    Raises:
        DataError: ``root`` has no DICOM series, a series lies outside a class
            folder, a class folder is not in ``label_map``, fewer than two
            labels, or a mask file is missing.
    """
    root = Path(root)
    rows = []
    for folder in dicom.find_series(root):
        parts = folder.relative_to(root).parts
        if len(parts) < 2:
            raise DataError(
                f"{folder}: DICOM files directly in {'the root' if not parts else 'a class folder'}; "
                f"put each series in its own folder under {root}/<class>/<case>/"
            )
        class_folder, case = parts[0], parts[1]
        rows.append({"path": str(folder), "class_folder": class_folder, "case": case})
    samples = pd.DataFrame(rows)
    folders = list(dict.fromkeys(samples["class_folder"]))
    label_map = label_map or {name: name for name in folders}
    unknown = [name for name in folders if name not in label_map]
    if unknown:
        raise DataError(f"{root}: class folders {unknown} are not in the label map {sorted(label_map)}; "
                        "add them to the map or move them out of the data folder")
    samples["label"] = samples["class_folder"].map(label_map)
    labels = [label for label in dict.fromkeys(label_map.values()) if label in set(samples["label"])]
    if len(labels) < 2:
        raise DataError(f"{root}: series of only {labels} found; a classifier needs at least two classes")
    samples["label_index"] = samples["label"].map(labels.index).astype(int)
    samples["group"] = samples["class_folder"] + "/" + samples["case"]
    samples["mask_path"] = None
    if mask_root is not None:
        paths = [Path(mask_root) / row.class_folder / f"{row.case}{MASK_SUFFIX}" for row in samples.itertuples()]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise DataError(f"{len(missing)} lesion masks missing, e.g. {missing[0]}; "
                            "give every series a mask or pass mask_root=None")
        samples["mask_path"] = [str(path) for path in paths]
    columns = ["path", "label", "label_index", "class_folder", "case", "group", "mask_path"]
    return samples[columns]


def load_samples(params: Gradcam3dParams):
    """The volume table of a run: the phantoms, or ``params.data_dir``.

    ``label_index`` follows the registry's class order.

    Returns:
        :class:`common.experiments.workflow.LoadedData` (samples, source, root).

    Raises:
        DataError: see :func:`load_volume_samples`, or labels that are not the
            experiment's classes.
    """
    from common.experiments import workflow

    label_map = workflow.label_map_for(params)
    if params.data_dir:
        root = Path(params.data_dir)
        samples = load_volume_samples(root, label_map)
        source = f"{params.manifest} ({root})"
    else:
        folder = workflow.phantom_folder(params)
        root = folder / "series"
        samples = load_volume_samples(root, label_map, mask_root=folder / "masks")
        source = f"phantoms/{params.phantom_kind} ({folder.name})"
    unknown = sorted(set(samples["label"]) - set(params.classes))
    if unknown:
        raise DataError(f"Labels {unknown} are not classes of {params.experiment} ({params.classes}); "
                        "pass a label map that maps every folder to one of them.")
    samples["label_index"] = samples["label"].map(params.classes.index).astype(int)
    return workflow.LoadedData(samples=samples, source=source, root=root)


# ---------------------------------------------------------------- volumes and masks


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError(f"input_shape={input_shape!r}: give (height, width, depth) in voxels")
    return shape


def load_volumes(samples: pd.DataFrame, input_shape: Sequence[int], window: Sequence[float] | None = None,
                 sobel: bool = False) -> np.ndarray:
    """Load every series of ``samples`` at the model's input shape.

    Each series is sorted, windowed, resampled, min-max normalised to [0, 1]
    and optionally Sobel-enhanced by :func:`common.data.dicom.load_series`.

    Args:
        samples: Volume table (``path`` column).
        input_shape: (H, W, D) of the model input.
        window: (center, width) in HU, or None.
        sobel: Add Sobel edges (seed 001's enhancement).

    Returns:
        float32 array (N, H, W, D, 1).
    """
    height, width, depth = _check_input_shape(input_shape)
    volumes = np.zeros((len(samples), height, width, depth, 1), dtype=np.float32)
    for index, path in enumerate(samples["path"]):
        volumes[index, ..., 0], _ = dicom.load_series(path, depth=depth, size=(height, width),
                                                      window=window, sobel=sobel)
    return volumes


def read_mask(path: str | Path) -> np.ndarray:
    """Read one lesion mask file (``.npz`` with key ``"mask"``) as bool (H, W, D).

    Raises:
        DataError: the file is unreadable, lacks the key or is not 3D.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            mask = np.asarray(archive[MASK_KEY])
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a mask file with key {MASK_KEY!r} ({error})") from error
    if mask.ndim != 3:
        raise DataError(f"{path}: mask has shape {mask.shape}; expected (H, W, D)")
    return mask > 0


def load_masks(samples: pd.DataFrame, input_shape: Sequence[int]) -> np.ndarray:
    """Lesion masks of ``samples`` on the input's voxel grid, bool (N, H, W, D).

    A mask is indexed like its series in slice order, so it is resampled the
    way :func:`common.data.dicom.resample` resamples the volume (linear, corner
    aligned, evenly spaced slices) and thresholded at :data:`MASK_THRESHOLD`.
    """
    shape = _check_input_shape(input_shape)
    masks = np.zeros((len(samples), *shape), dtype=bool)
    for index, path in enumerate(samples["mask_path"]):
        source = read_mask(path).astype(np.float32)
        masks[index] = dicom.resample(source, shape[:2], shape[2]) >= MASK_THRESHOLD
    return masks


def volume_dataset(volumes: np.ndarray, labels: np.ndarray, batch_size: int, rotation_degrees: float = 0.0,
                   training: bool = False, seed: int = 0):
    """A ``tf.data`` pipeline of (volume, label) batches.

    Training batches are reshuffled every epoch and, with ``rotation_degrees``,
    rotated in-plane (seed 001's rotation augmentation) by one random angle per
    volume, the same for all its slices; gaps are filled with 0, the air of a
    normalised CT.

    Args:
        volumes: (N, H, W, D, 1) float32.
        labels: (N,) integer class indices.
        batch_size: Volumes per batch.
        rotation_degrees: Largest rotation, in degrees either way; 0 = none.
        training: Shuffle and augment.
        seed: Shuffle and augmentation seed.
    """
    import tensorflow as tf

    from common.data import augment

    dataset = tf.data.Dataset.from_tensor_slices((volumes.astype(np.float32), np.asarray(labels, np.int32)))
    if training:
        dataset = dataset.shuffle(len(volumes), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and rotation_degrees:
        rotate = augment.augmenter({"rotation": rotation_degrees / 360.0})

        def rotate_volumes(batch, batch_seed):
            # Slices become channels, so one 2D rotation turns the whole volume about its axis.
            volumes_batch, batch_labels = batch
            slices_as_channels = tf.squeeze(volumes_batch, axis=-1)
            return tf.expand_dims(rotate(slices_as_channels, batch_seed), -1), batch_labels

        dataset = augment.with_batch_seeds(dataset, seed).map(
            rotate_volumes, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- k-fold cross-validation


def carve_validation(samples: pd.DataFrame, train_positions: np.ndarray, val_fraction: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a training fold into fitting and validation volumes.

    Stratified by class and grouped by case (:func:`common.data.splits.split_samples`),
    every class keeps at least one fitting and one validation volume.

    Returns:
        ``(fit_positions, val_positions)``, positions into ``samples``.
    """
    if not 0 < val_fraction < 1:
        raise ParameterError(f"val_fraction={val_fraction!r}: give a share of the training fold in (0, 1)")
    train_positions = np.asarray(train_positions)
    inner = samples.iloc[train_positions].reset_index(drop=True)
    assigned = splits.split_samples(inner, fractions=(1 - val_fraction, val_fraction, 0.0), seed=seed)
    part = assigned["split"].reindex(range(len(inner))).to_numpy()
    return train_positions[part == "train"], train_positions[part == "val"]


@dataclass
class FoldResult:
    """One fold of the cross-validation.

    Attributes:
        fold: Fold number, from 1.
        fit_positions, val_positions, test_positions: Positions into the sample table.
        history: One row per epoch (see :func:`common.training.fit.fit`).
        probabilities: Test-fold class probabilities (n_test, C).
        metrics: :func:`common.evaluation.metrics.classification_metrics` of the test fold.
        model: The fold's trained model (best validation epoch).
        seconds: Wall time of the fold's training and evaluation.
    """

    fold: int
    fit_positions: np.ndarray
    val_positions: np.ndarray
    test_positions: np.ndarray
    history: pd.DataFrame
    probabilities: np.ndarray
    metrics: dict
    model: Any
    seconds: float

    def sizes(self) -> dict[str, int]:
        """Fold number and how many volumes fitted, validated and tested."""
        return {"fold": self.fold, "n_fit": len(self.fit_positions), "n_val": len(self.val_positions),
                "n_test": len(self.test_positions)}


@dataclass
class CrossValidation:
    """Every fold of a cross-validation, and what they add up to."""

    folds: list[FoldResult]
    n_samples: int
    class_names: list[str]
    summary: dict = field(default_factory=dict)

    def fold_of(self) -> np.ndarray:
        """The test fold (from 1) of every sample."""
        owner = np.zeros(self.n_samples, dtype=int)
        for result in self.folds:
            owner[result.test_positions] = result.fold
        return owner

    def out_of_fold_probabilities(self) -> np.ndarray:
        """Every sample's probabilities from the model that did not train on it, (N, C)."""
        probabilities = np.zeros((self.n_samples, len(self.class_names)), dtype=np.float32)
        for result in self.folds:
            probabilities[result.test_positions] = result.probabilities
        return probabilities

    def save_served_model(self, out_dir: str | Path, fold: int = 1):
        """Save one fold's model as ``out_dir/model.keras``, the model ``camstudy predict`` serves.

        Cross-validation has no single final model; the served one is a fold's
        (the first by default), named in the model card, so a prediction can be
        traced to the fold and its test metrics.

        Returns:
            The saved model.
        """
        model = self.folds[fold - 1].model
        model.save(Path(out_dir) / "model.keras")
        return model

    def confusion_matrix(self) -> list[list[int]]:
        """Confusion matrix summed over the test folds (each sample counted once)."""
        return np.sum([np.asarray(r.metrics["confusion_matrix"]) for r in self.folds], axis=0).tolist()

    def fold_table(self, names: Sequence[str]) -> pd.DataFrame:
        """One row per fold: sizes, epochs, seconds and the metric values."""
        rows = []
        for r in self.folds:
            rows.append({**r.sizes(), "epochs": len(r.history), "seconds": round(r.seconds, 1),
                         **{name: r.metrics[name]["value"] for name in names}})
        return pd.DataFrame(rows).set_index("fold")

    def histories(self) -> dict[str, pd.DataFrame]:
        """Training history of every fold, keyed ``"fold <n>"``."""
        return {f"fold {r.fold}": r.history for r in self.folds}

    def record(self) -> tuple[dict, list[dict]]:
        """The ``models`` entry (summary + summed confusion matrix) and the per-fold metrics for ``metrics.json``."""
        entry = {**self.summary, "confusion_matrix": self.confusion_matrix()}
        folds = [{**r.sizes(), "epochs": len(r.history), "seconds": round(r.seconds, 2), "metrics": r.metrics}
                 for r in self.folds]
        return entry, folds


def build_model(params: Gradcam3dParams):
    """The paper's 3D CNN (:func:`common.models.build_cnn3d`) for the run's input shape and settings."""
    from common import models

    return models.build_cnn3d((*params.input_shape, 1), len(params.classes), width=params.width,
                              hidden_units=params.hidden_units, dropout=params.dropout,
                              bn_momentum=params.bn_momentum)


def cross_validate(params: Gradcam3dParams, samples: pd.DataFrame, volumes: np.ndarray,
                   new_model: Callable[[], Any] | None = None, out_dir: str | Path | None = None,
                   metric_names: Sequence[str] = SUMMARY_METRICS, verbose: int = 0,
                   runtime=None) -> CrossValidation:
    """Train and test a fresh model on every fold of a stratified k-fold split.

    For each of ``params.k_folds`` folds: carve ``params.val_fraction`` of
    the training volumes off for early stopping (:func:`carve_validation`),
    build a fresh model, compile it with Adam at
    ``params.learning_rate``, fit it for at most ``params.epochs``
    (patience ``params.patience``, rotation augmentation
    ``params.augment_rotation`` degrees), and score it on the test fold,
    which nothing before has seen. Each fold is seeded with ``seed + fold``.

    Args:
        params: Run parameters (seed, k_folds, val_fraction, epochs, patience,
            batch_size, learning_rate, augment_rotation, classes, positive,
            n_resamples).
        samples: Volume table, in the order of ``volumes``.
        volumes: (N, H, W, D, 1) model inputs.
        new_model: Returns a new, uncompiled model; None builds :func:`build_model` of ``params``.
        out_dir: If given, each fold's ``history.csv`` and ``model.keras`` go to
            ``out_dir/fold_<n>/``.
        metric_names: Metrics summarised over folds (mean and t-interval).
        verbose: Keras verbosity of ``fit``.
        runtime: A :class:`common.experiments.workflow.Runtime`: each fold's model is built
            and compiled in its strategy, with its speed-ups; None: one device.

    Returns:
        :class:`CrossValidation` with every fold and ``summary`` (from
        :func:`common.evaluation.metrics.summarise_folds`).
    """
    from common.evaluation import metrics
    from common.training import fit, runtime
    from common.experiments import workflow

    if len(samples) != len(volumes):
        raise DataError(f"{len(samples)} samples but {len(volumes)} volumes; load the volumes from the same table")
    labels = samples["label_index"].to_numpy()
    folds = splits.k_folds(samples, params.k_folds, seed=params.seed)
    runtime = runtime or workflow.Runtime.local()
    results = []
    for fold, (train_positions, test_positions) in enumerate(folds, start=1):
        started = time.perf_counter()
        fold_seed = params.seed + fold
        runtime.set_seed(fold_seed)
        fit_positions, val_positions = carve_validation(samples, train_positions, params.val_fraction, fold_seed)
        data = {
            "fit": volume_dataset(volumes[fit_positions], labels[fit_positions], params.batch_size,
                                  params.augment_rotation, training=True, seed=fold_seed),
            "val": volume_dataset(volumes[val_positions], labels[val_positions], params.batch_size),
        }
        with runtime.scope():
            model = new_model() if new_model is not None else build_model(params)
        runtime.compile(model, params.learning_rate)
        history = fit.fit(model, data["fit"], data["val"], params.epochs, patience=params.patience,
                            out_dir=None if out_dir is None else Path(out_dir) / f"fold_{fold}", verbose=verbose)
        probabilities = fit.predict_proba(model, volumes[test_positions], batch_size=params.batch_size)
        scores = metrics.classification_metrics(
            labels[test_positions], probabilities, params.classes, positive=params.positive,
            seed=params.seed, n_resamples=params.n_resamples,
        )
        results.append(FoldResult(fold, fit_positions, val_positions, np.asarray(test_positions), history,
                                  probabilities, scores, model, time.perf_counter() - started))
    cv = CrossValidation(results, len(samples), list(params.classes))
    cv.summary = metrics.summarise_folds([r.metrics for r in results], names=metric_names)
    return cv


def data_record(loaded, cv: CrossValidation, input_shape: Sequence[int]) -> dict[str, Any]:
    """The ``data`` section of ``metrics.json``: source, volumes per class and per test fold.

    Args:
        loaded: :class:`common.experiments.workflow.LoadedData` of the volume table.
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
    }


# ---------------------------------------------------------------- explanations


def explain_folds(params: Gradcam3dParams, cv: CrossValidation, volumes: np.ndarray, samples: pd.DataFrame,
                  masks: np.ndarray, layer: str | None = None) -> dict:
    """CAMs of correctly classified lesion volumes, each by the model of its test fold.

    Up to ``params.n_explain`` volumes of the positive class, predicted
    right out of fold, are explained with every method of
    ``params.cam_methods`` and scored against their masks (pointing game,
    energy share, IoU at ``params.cam_fraction``, with 95% CIs).

    Returns:
        ``{"positions", "cams": {method: (n, H, W, D)}, "masks", "scores": {method: {...}},
        "seconds": {method: s}, "layer"}``.
    """
    from common.explain import cams as cam_module, explain_metrics
    from common.experiments import workflow

    probabilities = cv.out_of_fold_probabilities()
    lesion_classes = [params.positive] if params.positive else None
    positions = workflow.explained_subset(samples, probabilities, params.n_explain, lesion_classes,
                                          only_correct=params.explain_only_correct)
    owner = cv.fold_of()[positions]
    chosen_layer = layer or cam_module.last_conv_layer(cv.folds[0].model)
    out = {"positions": positions, "cams": {}, "masks": masks[positions], "scores": {}, "seconds": {},
           "layer": chosen_layer}
    if len(positions) == 0:
        return out
    targets = samples["label_index"].to_numpy()[positions]
    for method in params.cam_methods:
        started = time.perf_counter()
        maps = np.zeros(masks[positions].shape, dtype=np.float32)
        for result in cv.folds:
            mine = np.flatnonzero(owner == result.fold)
            if mine.size:
                maps[mine] = cam_module.compute_cam(result.model, volumes[positions[mine]], targets[mine],
                                                    method=method, layer=chosen_layer)
        out["seconds"][method] = round(time.perf_counter() - started, 2)
        out["cams"][method] = maps
        out["scores"][method] = explain_metrics.score_explanations(
            maps, masks[positions], seed=params.seed, n_resamples=params.n_resamples,
            fraction=params.cam_fraction,
        )
    return out


def fold_cam(cv: CrossValidation, volumes: np.ndarray, position: int, class_index: int,
             method: str = "gradcam", layer: str | None = None) -> np.ndarray:
    """CAM (H, W, D) of one volume by the model of its test fold, for ``class_index``."""
    from common.explain import cams as cam_module

    model = cv.folds[cv.fold_of()[position] - 1].model
    return cam_module.compute_cam(model, volumes[position:position + 1], class_index, method=method, layer=layer)[0]


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
