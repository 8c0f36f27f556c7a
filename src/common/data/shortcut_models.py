"""Cross-validated classifiers of the shortcut audit (:mod:`common.data.shortcuts`) and their scores.

One feature table (metadata or intensity, :mod:`common.data.shortcut_features`)
is scored by a random forest or a logistic regression (one-hot categories,
standardised numbers, classes weighted to balance) with out-of-fold
predictions of a stratified k-fold, grouped when groups are given. The folds
shrink to what the smallest class allows; below two, the score says "too few
samples" instead of failing. The out-of-fold balanced accuracy gets a
percentile-bootstrap interval over the same units
(:func:`common.evaluation.intervals.percentile_intervals`), and the features
are ranked by permutation importance on the held-out folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common.data import shortcut_features
from common.evaluation import intervals
from common.evaluation.estimate import Estimate

CLASSIFIERS = ("random forest", "logistic regression")


@dataclass(frozen=True)
class ClassifierScore:
    """One classifier's cross-validated result on one feature set.

    Attributes:
        feature_set: ``"metadata"`` or ``"intensity"``.
        classifier: ``"random forest"`` or ``"logistic regression"``.
        balanced_accuracy: Out-of-fold balanced accuracy with its interval
            (undefined when ``status`` is not ``"ok"``).
        unit: What the bootstrap resampled (``"images"`` or ``"groups"``).
        folds: Number of cross-validation folds (0 when none were run).
        top_features: ``(feature, mean permutation importance)``, most important first.
        status: ``"ok"``, or why no score was made (e.g. too few samples).
    """

    feature_set: str
    classifier: str
    balanced_accuracy: Estimate
    unit: str
    folds: int
    top_features: tuple[tuple[str, float], ...]
    status: str

    def record(self) -> dict:
        """JSON-ready: the estimate's record with ``unit``, then folds, top features and status."""
        return {
            "balanced_accuracy": {**self.balanced_accuracy.to_record(), "unit": self.unit},
            "folds": self.folds,
            "top_features": [{"feature": name, "importance": round(value, 4)} for name, value in self.top_features],
            "status": self.status,
        }

    def exceeds(self, level: float) -> bool:
        """Whether the interval's lower bound lies above ``level``."""
        return self.balanced_accuracy.low > level


def score(
    part: str, classifier: str, table: pd.DataFrame, labels: np.ndarray, groups, settings: dict, seed: int
) -> ClassifierScore:
    """Cross-validate one classifier on one feature table.

    Args:
        part: Name of the feature set (``"metadata"`` or ``"intensity"``).
        classifier: One of :data:`CLASSIFIERS`.
        table: Features, one row per sample; columns named in
            :data:`common.data.shortcut_features.CATEGORICAL` are one-hot encoded,
            the others standardised. Columns with one value are dropped.
        labels: Class per sample.
        groups: None, or a group id per sample (folds and bootstrap keep groups whole).
        settings: The registry's ``shortcut_audit`` section.
        seed: Seed of folds, forest, shuffles and bootstrap.

    Returns:
        The score; with an undefined estimate and the reason as ``status`` when
        there are too few samples or no feature varies.
    """
    unit = "groups" if groups is not None else "images"
    varying = [column for column in table.columns if table[column].nunique(dropna=False) > 1]
    splitter, folds, problem = _folds(labels, groups, settings["cv_folds"], seed)
    if not varying and not problem:
        problem = f"no {part} feature varies between the samples"
    if problem:
        return ClassifierScore(part, classifier, Estimate.undefined(settings["confidence"]), unit, 0, (), problem)
    data = table[varying]
    model = _model(classifier, [c for c in varying if c in shortcut_features.CATEGORICAL], settings, seed)
    codes = intervals.group_codes(groups)[0] if groups is not None else None
    predicted = np.empty(len(labels), dtype=object)
    importance = np.zeros(len(varying))
    for train, test in splitter.split(data, labels, codes):
        fitted = clone(model).fit(data.iloc[train], labels[train])
        predicted[test] = fitted.predict(data.iloc[test])
        importance += permutation_importance(
            fitted, data.iloc[test], labels[test], settings["importance_repeats"], seed
        )
    ranked = sorted(zip(varying, importance / folds), key=lambda item: -item[1])[: settings["top_features"]]
    estimate = balanced_accuracy_estimate(
        labels, predicted.astype(str), groups, seed, settings["bootstrap_resamples"], settings["confidence"]
    )
    top = tuple((str(name), float(value)) for name, value in ranked)
    return ClassifierScore(part, classifier, estimate, unit, folds, top, "ok")


def permutation_importance(model: Pipeline, data: pd.DataFrame, labels: np.ndarray, repeats: int, seed: int):
    """Drop in balanced accuracy when one feature's values are shuffled among the samples, per feature.

    Every shuffled copy of ``data`` (``repeats`` per feature) is predicted in one call, so a
    pipeline's per-call cost is paid once, not once per feature and repeat.

    Args:
        model: A fitted pipeline.
        data: Held-out samples (a DataFrame the pipeline takes).
        labels: Their true classes.
        repeats: Shuffles per feature.
        seed: Seed of the shuffles.

    Returns:
        Mean drop per column of ``data``, in column order.
    """
    rng = np.random.default_rng(seed)
    copies = []
    for column in data.columns:
        for _ in range(repeats):
            shuffled = data.copy()
            shuffled[column] = data[column].to_numpy()[rng.permutation(len(data))]
            copies.append(shuffled)
    predicted = model.predict(pd.concat([data, *copies], ignore_index=True)).reshape(1 + len(copies), len(data))
    hits = predicted == np.asarray(labels)[None, :]
    # Balanced accuracy of each row: mean recall over the classes present (a held-out fold may lack one).
    scores = np.mean([hits[:, labels == label].mean(axis=1) for label in np.unique(labels)], axis=0)
    return scores[0] - scores[1:].reshape(len(data.columns), repeats).mean(axis=1)


def _folds(labels: np.ndarray, groups, max_folds: int, seed: int):
    """``(splitter, folds, problem)``: as many folds as the smallest class's samples (or groups) allow."""
    if groups is None:
        per_class = pd.Series(labels).value_counts()
        unit = "images"
    else:
        codes = intervals.group_codes(groups)[0]
        per_class = pd.DataFrame({"label": labels, "group": codes}).groupby("label")["group"].nunique()
        unit = "groups"
    folds = int(min(max_folds, per_class.min()))
    if folds < 2:
        smallest = per_class.idxmin()
        return None, 0, f"too few samples: class {smallest!r} has {per_class.min()} {unit}, cross-validation needs 2"
    kind = StratifiedGroupKFold if groups is not None else StratifiedKFold
    return kind(n_splits=folds, shuffle=True, random_state=seed), folds, ""


def _model(classifier: str, categorical: list[str], settings: dict, seed: int) -> Pipeline:
    """One-hot categories and standardised numbers, then the classifier (classes weighted to balance)."""
    encode = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), categorical)],
        remainder=StandardScaler(),
    )
    if classifier == "random forest":
        estimator = RandomForestClassifier(
            n_estimators=settings["forest_trees"],
            min_samples_leaf=settings["forest_min_leaf"],
            class_weight="balanced",
            random_state=seed,
            n_jobs=1,
        )
    else:
        estimator = LogisticRegression(max_iter=settings["logistic_max_iter"], class_weight="balanced")
    return make_pipeline(encode, estimator)


def balanced_accuracy_estimate(
    labels: np.ndarray, predicted: np.ndarray, groups, seed: int, n_resamples: int, confidence: float
) -> Estimate:
    """Balanced accuracy (mean recall over classes) with a percentile-bootstrap interval.

    The bootstrap is :func:`common.evaluation.intervals.percentile_intervals`
    over units (:func:`~common.evaluation.intervals.bootstrap_units`): whole
    groups when ``groups`` is given, else single samples. A resample lacking a
    class averages the recall of the classes it has.

    Args:
        labels: True class per sample.
        predicted: Predicted class per sample.
        groups: None, or one group id per sample (missing: a group of its own).
        seed: Seed of the bootstrap.
        n_resamples: Number of resamples.
        confidence: Confidence level.

    Returns:
        The estimate with ``n`` samples and its method.
    """
    labels = np.asarray(labels, dtype=str)
    unit_of_row, n_units = intervals.bootstrap_units(groups, labels.size)
    one_hot = (labels[:, None] == np.unique(labels)[None, :]).astype(float)
    hits = one_hot * (labels == np.asarray(predicted, dtype=str))[:, None]

    def statistic(drawn_units: np.ndarray, axis: int = -1) -> np.ndarray:
        drawn_units = np.atleast_2d(np.moveaxis(drawn_units, axis, -1)).astype(int)
        resamples = drawn_units.shape[0]
        offsets = (np.arange(resamples) * n_units)[:, None]
        unit_counts = np.bincount((drawn_units + offsets).ravel(), minlength=resamples * n_units)
        weights = unit_counts.reshape(resamples, n_units)[:, unit_of_row].astype(float)
        totals = weights @ one_hot
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(totals > 0, (weights @ hits) / totals, np.nan)
        return np.nanmean(recall, axis=1)[None, :]

    low, high = intervals.percentile_intervals(statistic, n_units, labels.size, seed, n_resamples, confidence)
    unit = "images" if groups is None else "groups (cluster bootstrap)"
    method = f"percentile bootstrap, {n_resamples} resamples of {n_units} {unit}, seed {seed}"
    value = float(balanced_accuracy_score(labels, predicted))
    return Estimate(value, float(low[0]), float(high[0]), confidence, n=int(labels.size), method=method)
