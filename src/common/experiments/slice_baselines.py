"""Seed 001's 2D baselines: ImageNet backbones that classify a volume from its axial slices.

Seed 001 compares its 3D CNN with EfficientNet and ResNet50 (its Fig. 6a/6b) and
claims in its abstract that the 3D CNN "outperformed" them, without saying how a
2D network saw a volume. Here each baseline is a slice classifier pooled to a
volume:

* every volume gives ``slices_per_volume`` evenly spaced axial slices (all with
  None), each a 2D image repeated to three channels at the volume's in-plane side
  (raised to the backbone's smallest input) and preprocessed as the backbone's
  ImageNet weights expect (:func:`slice_inputs`);
* a slice's label (:func:`slice_labels`) is ``"volume"``: its volume's class, as the
  paper counts images per class; or ``"lesion"``: tumour where the volume's lesion
  mask touches the slice, normal elsewhere, for volumes that have a mask (the
  phantoms' nodules, a real series' boxes); a tumour volume without one keeps the
  volume label;
* a backbone built flat from ``base.output`` with a global-average-pooling head
  (:func:`build_slice_model`) trains on the slices of a fold's fitting volumes,
  balanced by class, with early stopping on the slices of its validation volumes;
* the slice probabilities of tumour are pooled to a volume probability by the mean
  or the maximum (:data:`POOLINGS`), the pooling chosen per fold on that fold's
  validation volumes (:func:`choose_pooling`), never its test fold.

The folds, the validation part carved from each, the metrics and their intervals
are those of the 3D CNN (:mod:`common.experiments.cross_validation`): the result of
each baseline is a :class:`~common.experiments.cross_validation.CrossValidation`
of volume probabilities, so it is summarised, recorded and compared as the 3D CNN is.

One model per backbone serves every fold: built once, it is restored to its
initial weights and optimiser state before each fold rather than rebuilt, so its
traced training step is reused (tracing a fresh ResNet50 cost more than an epoch
of training on the CPU); each fold keeps a copy with its trained weights for the
Grad-CAMs (:func:`slice_cam`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.config.params import Gradcam3dParams
from common.data import splits
from common.errors import DataError, ParameterError
from common.evaluation.classification import SUMMARY_METRICS
from common.experiments.cross_validation import CrossValidation, FoldResult, carve_validation, with_pooled_intervals

if TYPE_CHECKING:
    import keras

    from common.evaluation.paired import PairedComparison
    from common.training.runtime import Runtime


POOLINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda slices: slices.mean(axis=1),
    "max": lambda slices: slices.max(axis=1),
}
"""Slice probabilities (volumes, slices) -> one probability per volume."""

SLICE_LABELS = ("volume", "lesion")
"""How a training slice is labelled (:func:`slice_labels`)."""


# ---------------------------------------------------------------- slices of volumes


def slice_depths(depth: int, per_volume: int | None) -> np.ndarray:
    """Indices of ``per_volume`` evenly spaced slices of a volume ``depth`` slices deep, first and last included.

    Args:
        depth: Slices in the volume.
        per_volume: Slices wanted; None, or as many as ``depth`` or more: every slice.
    """
    if depth < 1:
        raise DataError(f"a volume needs at least one slice; got depth {depth}")
    if per_volume is None or per_volume >= depth:
        return np.arange(depth)
    if per_volume < 1:
        raise ParameterError(f"slices_per_volume={per_volume}: take at least one slice per volume")
    return np.unique(np.linspace(0, depth - 1, per_volume).round().astype(int))


def stack_slices(volumes: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """The axial slices ``depths`` of every volume as 2D images, volume by volume.

    Args:
        volumes: (N, H, W, D, 1) or (N, H, W, D).
        depths: Slice indices along D, the same for every volume.

    Returns:
        (N * len(depths), H, W, 1): rows ``i * k`` to ``i * k + k - 1`` are volume ``i``'s slices in ``depths`` order.
    """
    volumes = np.asarray(volumes)
    if volumes.ndim == 5:
        volumes = volumes[..., 0]
    if volumes.ndim != 4:
        raise DataError(f"volumes must be (N, H, W, D[, 1]); got shape {volumes.shape}")
    taken = np.moveaxis(volumes[:, :, :, np.asarray(depths)], -1, 1)  # (N, k, H, W)
    return taken.reshape(-1, *volumes.shape[1:3], 1)


def slice_labels(labels: np.ndarray, depths: np.ndarray, how: str, masks: np.ndarray | None = None) -> np.ndarray:
    """The class of every stacked slice (:func:`stack_slices` order).

    Args:
        labels: (N,) volume class indices.
        depths: The slice indices taken from every volume.
        how: ``"volume"``: each slice has its volume's class. ``"lesion"``: a slice of a volume
            whose mask is not empty is class 1 where the mask touches it and class 0 elsewhere;
            a volume without a mask (or with an empty one) keeps its class on every slice.
            ``"lesion"`` is for a binary task whose positive class is index 1.
        masks: (N, H, W, D) lesion masks, for ``"lesion"``; None: every volume keeps its class.

    Returns:
        (N * len(depths),) integer class indices.
    """
    if how not in SLICE_LABELS:
        raise ParameterError(f"slice_labels={how!r}: choose one of {', '.join(SLICE_LABELS)}")
    labels = np.asarray(labels, dtype=int)
    per_slice = np.repeat(labels[:, None], len(depths), axis=1)
    if how == "lesion" and masks is not None:
        touched = np.asarray(masks)[:, :, :, np.asarray(depths)].any(axis=(1, 2))  # (N, k)
        has_mask = touched.any(axis=1)
        per_slice[has_mask] = touched[has_mask].astype(int)
    return per_slice.reshape(-1)


def input_size(params: Gradcam3dParams, backbone: str) -> tuple[int, int]:
    """The slice model's input side: ``slice_image_size``, else the volume's in-plane shape, at least the minimum.

    Returns:
        ``(height, width)``; each side at least :func:`common.models.min_input_size` of ``backbone``.
    """
    from common import models

    smallest = models.min_input_size(backbone)
    if params.slice_image_size is not None:
        return max(params.slice_image_size, smallest), max(params.slice_image_size, smallest)
    height, width = params.input_shape[:2]
    return max(int(height), smallest), max(int(width), smallest)


def slice_inputs(slices: np.ndarray, size: Sequence[int], preprocess: str | None) -> np.ndarray:
    """Model inputs of stacked slices: resized, on a 0..255 scale, repeated to three channels, preprocessed.

    Args:
        slices: (M, H, W, 1) slices of normalised volumes, in [0, 1].
        size: ``(height, width)`` of the model input; slices of another shape are resized bilinearly.
        preprocess: The backbone's ``preprocess_input`` module name (``Backbone.preprocess``).

    Returns:
        float32 (M, height, width, 3).
    """
    import tensorflow as tf

    from common.data import pipeline

    images = tf.convert_to_tensor(np.asarray(slices, dtype=np.float32) * 255.0)
    if tuple(images.shape[1:3]) != tuple(size):
        images = tf.image.resize(images, tuple(size), method="bilinear")
    return pipeline.finish_batch(images, 3, preprocess).numpy()


def slice_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, rotation_degrees: float, seed: int):
    """Training batches of (model input, label): shuffled every epoch and rotated in-plane at random.

    The rotation (seed 001's augmentation, as the 3D CNN's volumes get it) turns the
    preprocessed inputs; the gaps it opens are filled with the input's own lowest value
    per channel, the air of the slice.
    """
    import tensorflow as tf

    from common.data import augment

    dataset = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), np.asarray(labels, np.int32)))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if rotation_degrees:
        rotate = augment.augmenter({"rotation": rotation_degrees / 360.0})

        def rotated(batch, batch_seed):
            inputs, batch_labels = batch
            floor = tf.reduce_min(inputs, axis=(1, 2), keepdims=True)
            return rotate(inputs - floor, batch_seed) + floor, batch_labels

        dataset = augment.with_batch_seeds(dataset, seed).map(
            rotated, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- slices to volumes


def pool_slices(slice_probabilities: np.ndarray, n_volumes: int, pooling: str) -> np.ndarray:
    """Slice probabilities of the positive class pooled to one per volume.

    Args:
        slice_probabilities: (n_volumes * k,) in :func:`stack_slices` order.
        n_volumes: How many volumes the slices came from.
        pooling: A key of :data:`POOLINGS`.

    Returns:
        (n_volumes,) probabilities.
    """
    if pooling not in POOLINGS:
        raise ParameterError(f"pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    values = np.asarray(slice_probabilities, dtype=float)
    if n_volumes < 1 or values.size % n_volumes:
        raise DataError(f"{values.size} slice probabilities do not split evenly over {n_volumes} volumes")
    return POOLINGS[pooling](values.reshape(n_volumes, -1))


def volume_probabilities(positive: np.ndarray, positive_index: int) -> np.ndarray:
    """Two-class probabilities (N, 2) from the positive class's probability (N,)."""
    positive = np.clip(np.asarray(positive, dtype=float), 0.0, 1.0)
    out = np.empty((positive.size, 2))
    out[:, positive_index] = positive
    out[:, 1 - positive_index] = 1.0 - positive
    return out


@dataclass(frozen=True)
class PoolingChoice:
    """The pooling a fold chose on its validation volumes, and how every candidate did there.

    Attributes:
        pooling: The chosen key of :data:`POOLINGS`.
        validation: Candidate -> ``{"accuracy": ..., "log_loss": ...}`` on the validation volumes.
        n_val: Validation volumes.
        majority: Share of the validation volumes in their commonest class: the accuracy of a
            model that learned nothing but the class balance.
    """

    pooling: str
    validation: Mapping[str, Mapping[str, float]]
    n_val: int
    majority: float

    def record(self) -> dict[str, Any]:
        """JSON-ready: the choice, the validation volumes and every candidate's scores."""
        return {
            "pooling": self.pooling,
            "n_val": self.n_val,
            "majority": self.majority,
            "validation": {k: dict(v) for k, v in self.validation.items()},
        }


def choose_pooling(
    slice_probabilities: np.ndarray, labels: np.ndarray, candidates: Sequence[str], positive_index: int
) -> PoolingChoice:
    """The candidate pooling with the highest validation accuracy; on a tie the lower log loss, then the first given.

    Args:
        slice_probabilities: Positive-class probabilities of the validation volumes' slices
            (:func:`stack_slices` order).
        labels: (N,) the validation volumes' class indices.
        candidates: Keys of :data:`POOLINGS`, at least one.
        positive_index: Index of the positive class.
    """
    if not candidates:
        raise ParameterError("slice_poolings is empty; give at least one of " + ", ".join(POOLINGS))
    labels = np.asarray(labels, dtype=int)
    is_positive = labels == positive_index
    scores: dict[str, dict[str, float]] = {}
    for pooling in candidates:
        pooled = np.clip(pool_slices(slice_probabilities, len(labels), pooling), 1e-7, 1 - 1e-7)
        accuracy = float(np.mean((pooled >= 0.5) == is_positive))
        log_loss = float(-np.mean(np.where(is_positive, np.log(pooled), np.log(1 - pooled))))
        scores[pooling] = {"accuracy": accuracy, "log_loss": log_loss}
    best = min(candidates, key=lambda name: (-scores[name]["accuracy"], scores[name]["log_loss"]))
    majority = float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")
    return PoolingChoice(best, scores, len(labels), majority)


# ---------------------------------------------------------------- models


def build_slice_model(params: Gradcam3dParams, backbone: str) -> keras.Model:
    """A backbone built flat from ``base.output`` with a global-average-pooling head and a softmax.

    Weights ``params.slice_weights`` (None: random, then residual branches start at zero, as in
    resnet50-gradcam; ``"imagenet"``; or a weights file); every layer trains; the batch norms take
    the 3D CNN's momentum and the head its dropout.
    """
    from common import models

    return models.build_backbone_model(
        backbone,
        (*input_size(params, backbone), 3),
        len(params.classes),
        head=models.gap_head(params.dropout),
        weights=params.slice_weights,
        bn_momentum=params.bn_momentum,
        zero_init_residual=True,
        name=backbone,
    )


@dataclass
class FreshStart:
    """A compiled model's weights and optimiser state as built, to start every fold from.

    Restoring them gives the model the weights and optimiser state a rebuild with the same
    initial weights would have, while keeping its traced training, validation and prediction
    steps. The random streams of its dropout layers are not part of that state and run on
    from fold to fold, so with dropout a fold's draws depend on the folds before it (the
    run still repeats: the folds always run in the same order).
    """

    model: Any
    weights: list[np.ndarray]
    optimiser: list[np.ndarray]

    @classmethod
    def of(cls, model) -> FreshStart:
        """Record ``model``'s state now (after compiling, before any training)."""
        return cls(model, model.get_weights(), [v.numpy() for v in model.optimizer.variables])

    def restore(self):
        """Put the recorded weights and optimiser state back; returns the model."""
        self.model.set_weights(self.weights)
        for variable, value in zip(self.model.optimizer.variables, self.optimiser):
            variable.assign(value)
        return self.model


def copy_model(model) -> keras.Model:
    """A new model of the same architecture holding ``model``'s current weights (a fold's model to keep)."""
    import keras

    kept = keras.models.clone_model(model)
    kept.set_weights(model.get_weights())
    return kept


def predict_positive(model, images: np.ndarray, batch_size: int, positive_index: int) -> np.ndarray:
    """The positive class's probability of every image."""
    from common.training import fit

    return fit.predict_proba(model, images, batch_size=batch_size)[:, positive_index]


# ---------------------------------------------------------------- cross-validation


@dataclass
class SliceBaseline:
    """One 2D baseline cross-validated on the 3D CNN's folds.

    Attributes:
        name: The backbone (the model's name in ``metrics.json``).
        cv: Volume-level results per fold (test probabilities pooled from slices), summarised like the 3D CNN's.
        poolings: The pooling each fold chose on its validation volumes, in fold order.
        depths: The slices taken from every volume.
        input_size: ``(height, width)`` of the model input.
        preprocess: The backbone's input preprocessing.
        labelled_by: ``"lesion"`` or ``"volume"`` (:func:`slice_labels`); ``"volume"`` also when no volume
            had a mask.
        weights: The initial weights (None: random, ``"imagenet"`` or a file).
        depth: Slices in every volume.
        seconds: Wall time of the whole cross-validation.
    """

    name: str
    cv: CrossValidation
    poolings: list[PoolingChoice]
    depths: np.ndarray
    input_size: tuple[int, int]
    preprocess: str | None
    labelled_by: str
    weights: str | None
    depth: int
    seconds: float

    def summary(self) -> str:
        """One Markdown sentence: slices, input, weights, labels, folds, time and the pooling each fold chose."""
        height, width = self.input_size
        slices = f"all {self.depth}" if len(self.depths) == self.depth else f"{len(self.depths)} of {self.depth}"
        chosen = ", ".join(choice.pooling for choice in self.poolings)
        return (
            f"**{self.name}**: {slices} axial slices per volume at {height} x {width} px, "
            f"{'random' if self.weights is None else self.weights} initial weights, slices labelled by "
            f"{'their lesion' if self.labelled_by == 'lesion' else 'their volume'}; {len(self.cv.folds)} folds in "
            f"{self.seconds:.0f} s; pooling chosen on each fold's validation volumes: {chosen}."
        )

    def on_validation(self) -> tuple[int, int, float]:
        """Over every fold: validation volumes right at the pooling the fold chose, validation volumes, and the share
        of the commonest class among them."""
        n = sum(choice.n_val for choice in self.poolings)
        right = round(sum(choice.validation[choice.pooling]["accuracy"] * choice.n_val for choice in self.poolings))
        majority = sum(choice.majority * choice.n_val for choice in self.poolings) / n if n else float("nan")
        return right, n, majority

    def learned(self) -> bool:
        """Whether it beat the class balance on its validation volumes (never its test volumes).

        True when the lower end of the Wilson 95% interval of its validation accuracy
        (:meth:`on_validation`) lies above the commonest class's share. A baseline that did
        not learn is no evidence for or against the model it is compared with.
        """
        from common.evaluation.intervals import wilson_interval

        right, n, majority = self.on_validation()
        return n > 0 and wilson_interval(right, n)[0] > majority

    def fold_table(self) -> pd.DataFrame:
        """One row per fold: sizes, epochs, seconds, the pooling chosen and the test metrics."""
        table = self.cv.fold_table(SUMMARY_METRICS)
        table.insert(table.columns.get_loc("seconds") + 1, "pooling", [choice.pooling for choice in self.poolings])
        return table

    def record(self) -> tuple[dict, dict]:
        """The ``models`` entry and this baseline's ``slice_baselines`` entry of ``metrics.json``.

        The second holds the settings, each fold's sizes, epochs, pooling choice (with every
        candidate's validation scores), test metrics and history.
        """
        entry, folds = self.cv.record()
        for fold, choice, result in zip(folds, self.poolings, self.cv.folds):
            fold["pooling"] = choice.record()
            fold["history"] = result.history.to_dict("list")
        return entry, {
            "slices_per_volume": int(len(self.depths)),
            "slices": self.depths.tolist(),
            "input_shape": [*self.input_size, 3],
            "preprocess": self.preprocess,
            "slice_labels": self.labelled_by,
            "seconds": round(self.seconds, 1),
            "folds": folds,
        }


def cross_validate_slices(
    params: Gradcam3dParams,
    samples: pd.DataFrame,
    volumes: np.ndarray,
    backbone: str,
    masks: np.ndarray | None = None,
    runtime: Runtime | None = None,
    new_model: Callable[[], Any] | None = None,
) -> SliceBaseline:
    """Cross-validate one slice baseline on the 3D CNN's folds.

    Folds and their validation parts are exactly those of
    :func:`common.experiments.cross_validation.cross_validate` (same seed, same
    carving); each fold's model trains on the slices of its fitting volumes for at most
    ``params.slice_epochs`` (patience ``params.patience``, Adam at
    ``params.slice_learning_rate``, rotation ``params.augment_rotation``, classes
    weighted to balance when both occur, batch norms recalibrated before each validation
    with ``params.slice_recalibrate_bn`` training batches), chooses its pooling on the validation
    volumes and is scored once on its test volumes.

    Args:
        params: Run parameters (``k_folds``, ``val_fraction``, ``seed``, the ``slice_*`` settings,
            ``slices_per_volume``, ``patience``, ``augment_rotation``, ``classes``, ``positive``).
        samples: Volume table, in the order of ``volumes``.
        volumes: (N, H, W, D, 1) normalised volumes.
        backbone: A :data:`common.models.BACKBONES` key.
        masks: (N, H, W, D) lesion masks for ``slice_labels="lesion"``, or None.
        runtime: Strategy and speed-ups the model is built and compiled with (trained in float32 here,
            so that its traced step survives every fold); None: one device.
        new_model: Returns the uncompiled model; None: :func:`build_slice_model`.

    Raises:
        ParameterError: A task that is not binary.
        DataError: ``samples`` and ``volumes`` differ in length.
    """
    from common import models
    from common.evaluation import tables
    from common.experiments.fitting import score
    from common.training import fit
    from common.training.runtime import Runtime, set_seed

    if len(params.classes) != 2 or params.positive is None:
        raise ParameterError("slice baselines pool a positive-class probability: the task must be binary")
    if len(samples) != len(volumes):
        raise DataError(f"{len(samples)} samples but {len(volumes)} volumes; load the volumes from the same table")
    started = time.perf_counter()
    positive = list(params.classes).index(params.positive)
    labels = samples["label_index"].to_numpy()
    depths = slice_depths(volumes.shape[3], params.slices_per_volume)
    size = input_size(params, backbone)
    preprocess = models.backbone_spec(backbone).preprocess
    how = params.slice_labels if masks is not None and np.asarray(masks).any() else "volume"
    per_slice = slice_labels(labels, depths, how, masks)
    inputs = slice_inputs(stack_slices(volumes, depths), size, preprocess)
    k = len(depths)

    def rows(positions: np.ndarray) -> np.ndarray:
        return (np.asarray(positions)[:, None] * k + np.arange(k)).reshape(-1)

    runtime = float32(runtime or Runtime.local())
    set_seed(params.seed)
    with runtime.scope():
        model = new_model() if new_model is not None else build_slice_model(params, backbone)
    runtime.compile(model, params.slice_learning_rate)
    model.run_eagerly = params.slice_run_eagerly
    start = FreshStart.of(model)
    folds, poolings = [], []
    splits_ = list(splits.k_folds(samples, params.k_folds, seed=params.seed))
    for fold, (train_positions, test_positions) in enumerate(splits_, start=1):
        fold_started = time.perf_counter()
        fold_seed = params.seed + fold
        set_seed(fold_seed)
        fit_positions, val_positions = carve_validation(
            samples, np.asarray(train_positions), params.val_fraction, fold_seed
        )
        test_positions = np.asarray(test_positions)
        fit_rows, val_rows = rows(fit_positions), rows(val_positions)
        fit_labels = per_slice[fit_rows]
        weights = (
            fit.class_weights(fit_labels, 2) if np.unique(fit_labels).size == 2 else None
        )  # a tiny fold may lack a lesion slice
        model = start.restore()
        history = fit.fit(
            model,
            slice_dataset(inputs[fit_rows], fit_labels, params.slice_batch_size, params.augment_rotation, fold_seed),
            _batches(inputs[val_rows], per_slice[val_rows], params.slice_batch_size),
            params.slice_epochs,
            patience=params.patience,
            class_weight=weights,
            recalibrate_bn=params.slice_recalibrate_bn,
            log=lambda line, fold=fold: print(f"fold {fold} of {params.k_folds}, {line}"),
        )
        val_slices = predict_positive(model, inputs[val_rows], params.slice_batch_size, positive)
        choice = choose_pooling(val_slices, labels[val_positions], params.slice_poolings, positive)
        test_slices = predict_positive(model, inputs[rows(test_positions)], params.slice_batch_size, positive)
        probabilities = volume_probabilities(pool_slices(test_slices, len(test_positions), choice.pooling), positive)
        kept = model if fold == len(splits_) else copy_model(model)
        folds.append(
            FoldResult(
                fold,
                fit_positions,
                val_positions,
                test_positions,
                history,
                probabilities,
                score(params, labels[test_positions], probabilities),
                kept,
                time.perf_counter() - fold_started,
            )
        )
        poolings.append(choice)
    cv = CrossValidation(folds, len(samples), list(params.classes))
    summary = tables.summarise_folds([r.metrics for r in folds], names=SUMMARY_METRICS)
    cv.summary = with_pooled_intervals(params, summary, samples, cv.out_of_fold_probabilities())
    return SliceBaseline(
        backbone,
        cv,
        poolings,
        depths,
        size,
        preprocess,
        how,
        params.slice_weights,
        int(volumes.shape[3]),
        time.perf_counter() - started,
    )


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int):
    """Validation batches of (model input, label), in order."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), np.asarray(labels, np.int32)))
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def float32(runtime: Runtime) -> Runtime:
    """``runtime`` building its models in float32: a mixed-precision model would be cast after its first
    fold (:func:`common.training.precision.to_float32`), losing the traced step the next folds reuse."""
    return dataclasses.replace(runtime, precision="float32", speedups={**runtime.speedups, "dtype_policy": "float32"})


def cross_validate_baselines(
    params: Gradcam3dParams,
    samples: pd.DataFrame,
    volumes: np.ndarray,
    masks: np.ndarray | None = None,
    runtime: Runtime | None = None,
) -> dict[str, SliceBaseline]:
    """:func:`cross_validate_slices` of every backbone of ``params.slice_models``, in that order (empty: none)."""
    return {
        backbone: cross_validate_slices(params, samples, volumes, backbone, masks, runtime)
        for backbone in params.slice_models
    }


# ---------------------------------------------------------------- Grad-CAM beside the 3D CNN's


def lesion_depth(mask: np.ndarray | None, cam: np.ndarray) -> int:
    """The axial slice through the lesion: the one with most mask voxels, else the 3D CAM's heaviest slice."""
    weights = mask if mask is not None and np.asarray(mask).any() else cam
    return int(np.asarray(weights).sum(axis=(0, 1)).argmax())


def slice_cam(baseline: SliceBaseline, volumes: np.ndarray, position: int, depth: int, target: int) -> np.ndarray:
    """Grad-CAM of one axial slice of a volume by the baseline's model of the fold that tested the volume.

    Args:
        baseline: The cross-validated baseline.
        volumes: (N, H, W, D, 1) normalised volumes.
        position: The volume's position in the sample table.
        depth: The slice.
        target: The class explained.

    Returns:
        (height, width) CAM in [0, 1] at the model's input size (the last convolutional layer's, upsampled).
    """
    from common.explain import driver

    image = slice_inputs(
        stack_slices(volumes[position : position + 1], np.array([depth])), baseline.input_size, baseline.preprocess
    )
    fold = int(baseline.cv.fold_of()[position])
    return driver.owned_cams(baseline.cv.folds[fold - 1].model, image, np.array([target]), "gradcam", None)[0]


def cam_views(
    volumes: np.ndarray,
    masks: np.ndarray | None,
    shown: Mapping[str, Any],
    probabilities: np.ndarray,
    baselines: Mapping[str, SliceBaseline],
    model_name: str,
) -> tuple[list[np.ndarray], list[str], list[np.ndarray | None]]:
    """Each shown volume's slice through its lesion: the 3D Grad-CAM there, then every baseline's Grad-CAM of it.

    Args:
        volumes: (N, H, W, D, 1) normalised volumes.
        masks: (N, H, W, D) lesion masks, or None.
        shown: Name -> a shown volume (``position``, ``target``, ``cam`` (H, W, D) by the 3D model;
            :class:`common.experiments.volumes.ShownVolume`).
        probabilities: (N, C) the 3D model's out-of-fold probabilities.
        baselines: Backbone -> its :class:`SliceBaseline`.
        model_name: The 3D model's name in the titles.

    Returns:
        ``(panels, titles, masks)``, ``1 + len(baselines)`` per shown volume, a row each for
        :func:`common.report.figures.image_grid`: overlays on the slice, every title naming the model,
        the slice and the model's out-of-fold probability of the explained class.
    """
    from common.explain import overlays

    panels, titles, outlines = [], [], []
    for name, volume in shown.items():
        mask = None if masks is None else masks[volume.position]
        depth = lesion_depth(mask, volume.cam)
        image = volumes[volume.position, :, :, depth, 0]
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
        outline = None if mask is None or not mask[:, :, depth].any() else mask[:, :, depth]
        panels.append(overlays.overlay(image, volume.cam[:, :, depth]))
        titles.append(
            f"{name}, slice {depth}: {model_name}\n3D Grad-CAM, p = {probabilities[volume.position, volume.target]:.2f}"
        )
        for backbone, baseline in baselines.items():
            cam = slice_cam(baseline, volumes, volume.position, depth, volume.target)
            p = baseline.cv.out_of_fold_probabilities()[volume.position, volume.target]
            panels.append(overlays.overlay(image, cam))
            titles.append(f"{backbone}\n2D Grad-CAM, p = {p:.2f}")
        outlines += [outline] * (1 + len(baselines))
    return panels, titles, outlines


# ---------------------------------------------------------------- the paper's claim


def claim_verdict(
    comparison: PairedComparison,
    proposed: str,
    baselines: Mapping[str, SliceBaseline],
    metrics: Sequence[str] = ("accuracy", "f1", "auc"),
) -> str:
    """Whether the paired tests on the out-of-fold predictions say ``proposed`` outperformed ``baselines``, per metric.

    A baseline is outperformed on a metric only when ``proposed`` has the best value and the
    baseline is significantly worse (Holm-adjusted, :func:`common.evaluation.paired.paired_comparison`);
    a baseline the test cannot tell from the best ties. A baseline that did not learn
    (:meth:`SliceBaseline.learned`, judged on validation volumes) counts neither way: its own
    line says so. A last line says when the baselines learned from slice labels drawn from
    the lesion masks, which ``proposed`` never sees.

    Returns:
        A Markdown list, one line per metric of ``comparison``: the verdict, every model's value, the test and n;
        then one line per baseline that did not learn, and the supervision line.
    """
    from common.evaluation.intervals import wilson_interval
    from common.evaluation.paired import METRIC_TITLES
    from common.evaluation.tables import join_words

    judged = [name for name, baseline in baselines.items() if baseline.learned()]
    lines = []
    for metric in [m for m in metrics if m in comparison.metrics]:
        best, worse = comparison.references[metric], comparison.worse(metric)
        if best == proposed:
            beaten = [name for name in judged if name in worse]
            tied = [name for name in judged if name not in worse]
            verdict = f"{proposed} is best" + (f", significantly better than {join_words(beaten)}" if beaten else "")
            verdict += f"; the test cannot tell it from {join_words(tied)}" if tied else ""
        elif proposed in worse:
            verdict = f"{proposed} is significantly worse than {best}"
        else:
            verdict = f"{best} is best; the test cannot tell {proposed} from it"
        values = ", ".join(f"{name} {comparison.values[metric][name]:.3f}" for name in [proposed, *baselines])
        lines.append(
            f"- {METRIC_TITLES.get(metric, metric)}: {verdict} ({values}; Holm-adjusted {comparison.tests[metric]}, "
            f"alpha {comparison.alpha:g}, n = {comparison.n} volumes)."
        )
    for name, baseline in baselines.items():
        if name not in judged:
            right, n, majority = baseline.on_validation()
            low, high = wilson_interval(right, n) if n else (float("nan"), float("nan"))
            lines.append(
                f"- {name} did not learn: on its validation volumes it was right {right} times of {n} "
                f"({right / max(n, 1):.3f}, 95% CI {low:.3f}-{high:.3f}), not above the {majority:.3f} of naming the "
                f"commonest class, so a test against it says nothing for or against {proposed}; it is left out of the "
                "verdicts above."
            )
    by_lesion = [name for name in judged if baselines[name].labelled_by == "lesion"]
    if by_lesion:
        lines.append(
            f"- Supervision: {join_words(by_lesion)} learned from slice labels drawn from the nodule masks "
            f"(`slice_labels: lesion`); {proposed} never sees the masks and learned from one label per volume."
        )
    return "\n".join(lines)
