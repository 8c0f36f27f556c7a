"""Stratified k-fold cross-validation of a volume classifier (seed 001's evaluation).

Seed 001 evaluates its 3D CNN by cross-validation, reporting mean metrics with
95% confidence intervals. The loop here: folds stratified by class and grouped
by case (:func:`common.data.splits.k_folds`); from each training fold a
validation part is carved for early stopping, so a test fold is never looked at
before it is scored; every fold's model, history, test probabilities and
metrics are kept (:class:`FoldResult`, :class:`CrossValidation`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.config.params import Gradcam3dParams
from common.data import splits
from common.data.volume_sets import volume_dataset
from common.errors import DataError, ParameterError
from common.evaluation.classification import SUMMARY_METRICS

if TYPE_CHECKING:
    from common.explain.driver import FoldModels
    from common.training.runtime import Runtime


def carve_validation(
    samples: pd.DataFrame, train_positions: np.ndarray, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
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
        metrics: :func:`common.evaluation.classification.classification_metrics` of the test fold.
        model: The fold's trained model (best validation epoch).
        seconds: Wall time of the fold's training and evaluation.
    """

    fold: int
    fit_positions: np.ndarray
    val_positions: np.ndarray
    test_positions: np.ndarray
    history: pd.DataFrame
    probabilities: np.ndarray
    metrics: dict[str, Any]
    model: Any
    seconds: float

    def sizes(self) -> dict[str, int]:
        """Fold number and how many volumes fitted, validated and tested."""
        return {
            "fold": self.fold,
            "n_fit": len(self.fit_positions),
            "n_val": len(self.val_positions),
            "n_test": len(self.test_positions),
        }


@dataclass
class CrossValidation:
    """Every fold of a cross-validation, and what they add up to."""

    folds: list[FoldResult]
    n_samples: int
    class_names: list[str]
    summary: dict[str, Any] = field(default_factory=dict)

    def fold_of(self) -> np.ndarray:
        """The test fold (from 1) of every sample."""
        owner = np.zeros(self.n_samples, dtype=int)
        for result in self.folds:
            owner[result.test_positions] = result.fold
        return owner

    def fold_models(self, positions: Sequence[int] | np.ndarray) -> FoldModels:
        """Every fold's model, and the fold whose model explains each sample at ``positions`` (its test fold)."""
        from common.explain.driver import FoldModels

        return FoldModels({result.fold: result.model for result in self.folds}, self.fold_of()[np.asarray(positions)])

    def tested_by_first_fold(
        self, positions: Sequence[int] | np.ndarray, limit: int | None = None
    ) -> tuple[FoldResult, np.ndarray]:
        """The test fold of the first of ``positions``, and those of ``positions`` it tested.

        Args:
            positions: Sample positions, at least one.
            limit: Keep at most this many of them (None: all).

        Returns:
            ``(fold, positions)``: the :class:`FoldResult` and its positions among ``positions``, in order.
        """
        positions = np.asarray(positions)
        owner = self.fold_of()[positions]
        first = self.folds[owner[0] - 1]
        return first, positions[owner == first.fold][:limit]

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
            rows.append(
                {
                    **r.sizes(),
                    "epochs": len(r.history),
                    "seconds": round(r.seconds, 1),
                    **{name: r.metrics[name]["value"] for name in names},
                }
            )
        return pd.DataFrame(rows).set_index("fold")

    def histories(self) -> dict[str, pd.DataFrame]:
        """Training history of every fold, keyed ``"fold <n>"``."""
        return {f"fold {r.fold}": r.history for r in self.folds}

    def record(self) -> tuple[dict, list[dict]]:
        """The ``models`` entry (summary + summed confusion matrix) and the per-fold metrics for ``metrics.json``."""
        entry = {**self.summary, "confusion_matrix": self.confusion_matrix()}
        folds = [
            {**r.sizes(), "epochs": len(r.history), "seconds": round(r.seconds, 2), "metrics": r.metrics}
            for r in self.folds
        ]
        return entry, folds


def build_model(params: Gradcam3dParams):
    """The paper's 3D CNN (:func:`common.models.build_cnn3d`) for the run's input shape and settings."""
    from common import models

    return models.build_cnn3d(
        (*params.input_shape, 1),
        len(params.classes),
        width=params.width,
        hidden_units=params.hidden_units,
        dropout=params.dropout,
        bn_momentum=params.bn_momentum,
    )


def cross_validate(
    params: Gradcam3dParams,
    samples: pd.DataFrame,
    volumes: np.ndarray,
    new_model: Callable[[], Any] | None = None,
    out_dir: str | Path | None = None,
    metric_names: Sequence[str] = SUMMARY_METRICS,
    verbose: int = 0,
    runtime: Runtime | None = None,
) -> CrossValidation:
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
        runtime: A :class:`common.training.runtime.Runtime`: each fold's model is built
            and compiled in its strategy, with its speed-ups; None: one device.

    Returns:
        :class:`CrossValidation` with every fold and ``summary`` (from
        :func:`common.evaluation.tables.summarise_folds`).

    Raises:
        DataError: ``samples`` and ``volumes`` differ in length.
    """
    from common.evaluation import tables
    from common.training.runtime import Runtime

    if len(samples) != len(volumes):
        raise DataError(f"{len(samples)} samples but {len(volumes)} volumes; load the volumes from the same table")
    folds = splits.k_folds(samples, params.k_folds, seed=params.seed)
    runtime = runtime or Runtime.local()
    results = [
        _fit_fold(
            params,
            samples,
            volumes,
            fold,
            np.asarray(train_positions),
            np.asarray(test_positions),
            new_model,
            out_dir,
            verbose,
            runtime,
        )
        for fold, (train_positions, test_positions) in enumerate(folds, start=1)
    ]
    cv = CrossValidation(results, len(samples), list(params.classes))
    summary = tables.summarise_folds([r.metrics for r in results], names=metric_names)
    cv.summary = with_pooled_intervals(params, summary, samples, cv.out_of_fold_probabilities())
    return cv


# The summary's proportions, whose fold interval collapses when every fold gives the same value.
POOLED_WHEN_DEGENERATE = ("accuracy", "precision", "recall", "specificity")


def with_pooled_intervals(params: Gradcam3dParams, summary: dict, samples: pd.DataFrame, probabilities) -> dict:
    """``summary`` with a proportion's zero-width fold interval replaced by that of the pooled predictions.

    When every fold gives the same value (all 1.000, say), the t interval over folds has zero width:
    three folds of 1.000 are compatible with a true accuracy well below 1. Such a proportion gets
    the interval of the out-of-fold predictions pooled over folds (each volume once, by the model that
    did not train on it; Wilson's, cluster-aware over the cases), and ``ci_method`` says so.

    Args:
        params: Run parameters (classes, positive class, seed, resamples).
        summary: :func:`common.evaluation.tables.summarise_folds` of the folds.
        samples: The volume table (``label_index``, ``group``), in ``probabilities`` order.
        probabilities: Out-of-fold probabilities (N, C).
    """
    degenerate = [
        name
        for name in POOLED_WHEN_DEGENERATE
        if name in summary and summary[name]["ci95"][0] == summary[name]["ci95"][1]
    ]
    if not degenerate:
        return summary
    from common.experiments.fitting import score

    groups = samples["group"].to_numpy() if "group" in samples and samples["group"].notna().any() else None
    pooled = score(params, samples["label_index"].to_numpy(), probabilities, groups)
    fixed = dict(summary)
    for name in degenerate:
        method = pooled["ci_methods"][name]
        fixed[name] = {
            **summary[name],
            "ci95": pooled[name]["ci95"],
            "ci_method": f"every fold gave {summary[name]['value']:.3f}: {method} of the {pooled['n']} pooled "
            "out-of-fold predictions",
        }
    return fixed


def _fit_fold(
    params: Gradcam3dParams,
    samples: pd.DataFrame,
    volumes: np.ndarray,
    fold: int,
    train_positions: np.ndarray,
    test_positions: np.ndarray,
    new_model: Callable[[], Any] | None,
    out_dir: str | Path | None,
    verbose: int,
    runtime: Runtime,
) -> FoldResult:
    """One round of :func:`cross_validate`: seed, carve, build, fit and score on the test fold.

    Args:
        params: Run parameters (see :func:`cross_validate`).
        samples: Volume table, in the order of ``volumes``.
        volumes: (N, H, W, D, 1) model inputs.
        fold: Fold number, from 1 (the fold's seed is ``params.seed + fold``).
        train_positions: Positions of the fold's training volumes.
        test_positions: Positions of its test volumes.
        new_model: Returns a new, uncompiled model; None builds :func:`build_model`.
        out_dir: Parent of the fold's ``fold_<n>/`` folder, or None.
        verbose: Keras verbosity of ``fit``.
        runtime: Strategy and speed-ups the model is built and compiled with.

    Prints one line when the fold's model is trained (``"fold 1 of 5, "`` and
    :func:`common.training.fit.fit`'s line).
    """
    from common.experiments.fitting import score
    from common.training import fit
    from common.training.runtime import set_seed

    started = time.perf_counter()
    labels = samples["label_index"].to_numpy()
    fold_seed = params.seed + fold
    set_seed(fold_seed)
    fit_positions, val_positions = carve_validation(samples, train_positions, params.val_fraction, fold_seed)
    fit_data = volume_dataset(
        volumes[fit_positions],
        labels[fit_positions],
        params.batch_size,
        params.augment_rotation,
        training=True,
        seed=fold_seed,
    )
    val_data = volume_dataset(volumes[val_positions], labels[val_positions], params.batch_size)
    with runtime.scope():
        model = new_model() if new_model is not None else build_model(params)
    runtime.compile(model, params.learning_rate)
    history = fit.fit(
        model,
        fit_data,
        val_data,
        params.epochs,
        patience=params.patience,
        out_dir=None if out_dir is None else Path(out_dir) / f"fold_{fold}",
        verbose=verbose,
        log=lambda line: print(f"fold {fold} of {params.k_folds}, {line}"),
    )
    probabilities = fit.predict_proba(model, volumes[test_positions], batch_size=params.batch_size)
    scores = score(params, labels[test_positions], probabilities)
    return FoldResult(
        fold,
        fit_positions,
        val_positions,
        test_positions,
        history,
        probabilities,
        scores,
        model,
        time.perf_counter() - started,
    )
