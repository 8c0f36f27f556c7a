"""Paired comparisons of models evaluated on the same test images: which models tie with the best.

Overlapping confidence intervals do not say whether two models differ: models
scored on the same images make correlated errors, and a paired test uses that.
For each metric the model with the highest value is the reference, and every
other model is tested against it on the same images:

- accuracy: the exact McNemar test on the images exactly one of the two models
  gets right (statsmodels);
- every other metric: a paired permutation test of the metric's difference
  (``scipy.stats.permutation_test`` with ``permutation_type="samples"``): under
  the null hypothesis the two models are exchangeable on each image, so each
  permutation swaps the two models' predictions on a random set of images;
  seeded, with a bounded number of permutations (exact when they are few).

With ``groups`` (patients), whole groups are swapped together, and accuracy is
tested by the same permutation test (McNemar assumes independent images). The
p-values of one metric's comparisons are adjusted with Holm's method
(:func:`holm`); a model whose adjusted p-value is at least ``alpha`` ties with
the best. Metric values are those of
:func:`common.evaluation.classification.classification_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from statsmodels.stats.contingency_tables import mcnemar

from common.errors import DataError, ParameterError
from common.evaluation.classification import (
    SUMMARY_METRICS,
    _point_estimates,
    _validated,
    confusion_rates,
)
from common.evaluation.intervals import bootstrap_units, resample_batch
from common.evaluation.tables import MISSING, VALUE_DIGITS, join_words

# How a metric is named in a sentence.
METRIC_TITLES = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "f1": "F1",
    "auc": "AUC",
}
MCNEMAR = "exact McNemar"
PERMUTATION = "paired permutation test"
# p-values below this are written as "< 0.001".
P_FLOOR = 0.001
# Columns of the accuracy table with McNemar's discordant counts against the best model.
ONLY_BEST_RIGHT = "only best right"
ONLY_THIS_RIGHT = "only this right"


@dataclass(frozen=True)
class Comparison:
    """One model tested against the best model of a metric on the same images.

    Attributes:
        model: The model tested.
        reference: The best model of the metric.
        p: The test's two-sided p-value.
        p_holm: The p-value adjusted with Holm's method over the metric's comparisons.
        tie: Whether the model ties with the best (``p_holm >= alpha``).
        discordant: For accuracy, ``(b, c)``: images only the best model gets right,
            and images only this model gets right; None for other metrics.
    """

    model: str
    reference: str
    p: float
    p_holm: float
    tie: bool
    discordant: tuple[int, int] | None = None

    def record(self) -> dict[str, Any]:
        """The JSON record: p-values, tie flag and, for accuracy, the discordant counts."""
        record: dict[str, Any] = {"p": float(self.p), "p_holm": float(self.p_holm), "tie": bool(self.tie)}
        if self.discordant is not None:
            record["discordant"] = {"only_reference_right": self.discordant[0], "only_model_right": self.discordant[1]}
        return record


@dataclass(frozen=True)
class PairedComparison:
    """Every model against the best one, per metric, on the same test images.

    Attributes:
        models: The model names, in the order given.
        metrics: The metrics compared.
        values: Metric -> model -> value (as :func:`classification_metrics` computes it).
        references: Metric -> the model with the highest value (the first on ties).
        comparisons: Metric -> the other models' comparisons with the reference.
        tests: Metric -> the name of the paired test used.
        n: Number of test images.
        n_groups: Number of groups swapped together, or None (images swapped one by one).
        alpha: Significance level of the Holm-adjusted tests.
        n_resamples: Permutations of each permutation test.
        seed: Seed of the permutations.
        lower_is_better: The metrics whose best value is the lowest (a deletion AUC, say).
    """

    models: tuple[str, ...]
    metrics: tuple[str, ...]
    values: Mapping[str, Mapping[str, float]]
    references: Mapping[str, str]
    comparisons: Mapping[str, tuple[Comparison, ...]]
    tests: Mapping[str, str]
    n: int
    n_groups: int | None
    alpha: float
    n_resamples: int
    seed: int
    lower_is_better: frozenset[str] = frozenset()

    def _check_metric(self, metric: str) -> None:
        if metric not in self.metrics:
            raise ParameterError(f"metric={metric!r} was not compared; compared: {list(self.metrics)}.")

    def _better_first(self, metric: str, models: Sequence[str]) -> list[str]:
        """``models`` from the best value of ``metric`` to the worst."""
        sign = 1.0 if metric in self.lower_is_better else -1.0
        return sorted(models, key=lambda model: sign * self.values[metric][model])

    def best(self, metric: str) -> list[str]:
        """The best model of ``metric`` and every model tied with it, best first, then by value."""
        self._check_metric(metric)
        tied = self._better_first(metric, [c.model for c in self.comparisons[metric] if c.tie])
        return [self.references[metric], *tied]

    def worse(self, metric: str) -> list[str]:
        """The models significantly worse than the best in ``metric`` (Holm-adjusted), by value."""
        self._check_metric(metric)
        return self._better_first(metric, [c.model for c in self.comparisons[metric] if not c.tie])

    def record(self) -> dict[str, Any]:
        """The JSON record: settings, then per metric the reference, the test, the values and the comparisons."""
        return {
            "alpha": float(self.alpha),
            "n": int(self.n),
            "n_groups": self.n_groups,
            "n_resamples": int(self.n_resamples),
            "seed": int(self.seed),
            "metrics": {
                metric: {
                    "better": "lower" if metric in self.lower_is_better else "higher",
                    "reference": self.references[metric],
                    "test": self.tests[metric],
                    "values": {model: float(value) for model, value in self.values[metric].items()},
                    "best": self.best(metric),
                    "comparisons": {c.model: c.record() for c in self.comparisons[metric]},
                }
                for metric in self.metrics
            },
        }

    def table(self, metric: str = "accuracy") -> pd.DataFrame:
        """Display table of one metric: one row per model, best first, then by value.

        Columns: value, n, (accuracy) the discordant counts against the best model,
        p, Holm p, and the verdict: ``"best"``, ``"tie with best"`` or
        ``"worse (p = 0.003)"`` (the Holm-adjusted p), or ``"only model (no
        comparison)"`` for a single model.
        """
        self._check_metric(metric)
        by_model = {c.model: c for c in self.comparisons[metric]}
        rows = {}
        for model in [*self.best(metric), *self.worse(metric)]:
            comparison = by_model.get(model)
            row: dict[str, Any] = {"value": f"{self.values[metric][model]:.{VALUE_DIGITS}f}", "n": self.n}
            if metric == "accuracy":
                counts = comparison.discordant if comparison is not None else None
                row[ONLY_BEST_RIGHT], row[ONLY_THIS_RIGHT] = counts if counts is not None else (MISSING, MISSING)
            if comparison is None:
                row["p"], row["Holm p"] = MISSING, MISSING
                row["verdict"] = "best" if len(self.models) > 1 else "only model (no comparison)"
            else:
                row["p"], row["Holm p"] = _format_p(comparison.p), _format_p(comparison.p_holm)
                row["verdict"] = "tie with best" if comparison.tie else f"worse (p {_p_text(comparison.p_holm)})"
            rows[model] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "model"
        return table

    def summary(self) -> str:
        """One Markdown sentence per metric (a bulleted list): the best model, its ties, how many are worse."""
        return "\n".join(f"- {self._sentence(metric)}" for metric in self.metrics)

    def _sentence(self, metric: str) -> str:
        title, best = METRIC_TITLES.get(metric, metric.replace("_", " ").capitalize()), self.references[metric]
        if len(self.models) == 1:
            return f"{title}: {best} is the only model; there is nothing to compare."
        tied, n_worse = self.best(metric)[1:], len(self.worse(metric))
        ties = f", tied with {join_words(tied)}" if tied else ""
        worse = {0: "no model is worse", 1: "1 model is worse"}.get(n_worse, f"{n_worse} models are worse")
        return f"{title}: {best} is best{ties} (Holm-adjusted {self.tests[metric]}, alpha {self.alpha:g}); {worse}."


def _format_p(p: float) -> str:
    """A p-value as a table shows it: three decimals, or ``< 0.001``."""
    return f"< {P_FLOOR:g}" if p < P_FLOOR else f"{p:.3f}"


def _p_text(p: float) -> str:
    """A p-value in a verdict: ``= 0.003`` or ``< 0.001``."""
    return f"< {P_FLOOR:g}" if p < P_FLOOR else f"= {p:.3f}"


def _rank_auc(scores: np.ndarray, is_positive: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney, ties counted half) of each row of ``scores`` (B, N) against fixed labels."""
    ranks = scipy.stats.rankdata(scores, axis=-1)
    n_positive = int(is_positive.sum())
    n_negative = is_positive.size - n_positive
    wins = ranks[:, is_positive].sum(axis=1) - n_positive * (n_positive + 1) / 2
    return wins / (n_positive * n_negative)


class _SwapMetrics:
    """A metric of two models' predictions after swapping them on a set of units, vectorised over swap sets."""

    def __init__(self, labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, positive: int, unit_of_row):
        self.labels, self.probs_a, self.probs_b, self.positive = labels, probs_a, probs_b, positive
        self.unit_of_row = unit_of_row
        n_rows, n_classes = probs_a.shape
        self.n_classes = n_classes
        cells = np.zeros((2, n_rows, n_classes * n_classes))
        for side, probs in enumerate((probs_a, probs_b)):
            cells[side, np.arange(n_rows), labels * n_classes + probs.argmax(axis=1)] = 1.0
        self.cells_a, self.change = cells[0].sum(axis=0), cells[1] - cells[0]
        present = [k for k in range(n_classes) if 0 < np.sum(labels == k) < labels.size]
        self.auc_classes = [positive] if n_classes == 2 else present

    def _threshold_metric(self, name: str, cells: np.ndarray) -> np.ndarray:
        accuracy, per_class = confusion_rates(cells.reshape(-1, self.n_classes, self.n_classes))
        if name == "accuracy":
            return accuracy
        return per_class[name][self.positive] if self.n_classes == 2 else per_class[name].mean(axis=0)

    def _auc(self, swapped_rows: np.ndarray, first: bool) -> np.ndarray:
        own, other = (self.probs_a, self.probs_b) if first else (self.probs_b, self.probs_a)
        aucs = []
        for k in self.auc_classes:
            scores = np.where(swapped_rows, other[:, k], own[:, k])
            aucs.append(_rank_auc(scores, self.labels == k))
        return np.mean(aucs, axis=0)

    def difference(self, name: str, swapped_units: np.ndarray) -> np.ndarray:
        """Metric of model A minus model B after each row's swaps: (B, n_units) booleans -> (B,)."""
        swapped_rows = swapped_units[:, self.unit_of_row]
        if name == "auc":
            return self._auc(swapped_rows, True) - self._auc(swapped_rows, False)
        moved = swapped_rows.astype(float) @ self.change
        cells_b = self.cells_a + self.change.sum(axis=0)
        return self._threshold_metric(name, self.cells_a + moved) - self._threshold_metric(name, cells_b - moved)


def _permutation_p(swaps: _SwapMetrics, metric: str, n_units: int, seed: int, n_resamples: int) -> float:
    """Two-sided p-value of the paired permutation test of ``metric``'s difference, swapping units."""

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        # x holds unit indices; index u + n_units means unit u was swapped to the other model.
        drawn = np.moveaxis(np.asarray(x), axis, -1)
        swapped = np.atleast_2d(drawn >= n_units).reshape(-1, n_units)
        return swaps.difference(metric, swapped).reshape(drawn.shape[:-1])

    units = np.arange(n_units)
    columns = swaps.labels.size * (swaps.n_classes if metric == "auc" else 1)
    result = scipy.stats.permutation_test(
        (units, units + n_units),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        batch=resample_batch(n_resamples, columns),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(min(result.pvalue, 1.0))


def _mcnemar(right_reference: np.ndarray, right_model: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Exact McNemar p-value and the discordant counts (only the reference right, only the model right)."""
    b = int(np.sum(right_reference & ~right_model))
    c = int(np.sum(~right_reference & right_model))
    both, neither = int(np.sum(right_reference & right_model)), int(np.sum(~right_reference & ~right_model))
    return float(mcnemar([[both, b], [c, neither]], exact=True).pvalue), (b, c)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the order given.

    The i-th smallest of m p-values is multiplied by ``m - i + 1``, made no
    smaller than the adjusted values before it, and capped at 1: a comparison
    is significant at ``alpha`` exactly when Holm's procedure rejects it.
    (statsmodels' ``multipletests(method="holm")`` gives the same values, a test
    checks, but runs a full garbage collection on every call: 0.2-0.4 s in a
    kernel holding TensorFlow, several calls per table.)
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _holm_comparisons(
    others: Sequence[str],
    reference: str,
    raw: Sequence[float],
    discordant: Sequence[tuple[int, int] | None],
    alpha: float,
) -> tuple[Comparison, ...]:
    """One metric's comparisons with the reference: the raw p-values adjusted by Holm's method (:func:`holm`)."""
    adjusted = holm(raw)
    return tuple(
        Comparison(other, reference, p, float(p_holm), bool(p_holm >= alpha), counts)
        for other, p, p_holm, counts in zip(others, raw, adjusted, discordant)
    )


def _check(metrics: Sequence[str], alpha: float, probabilities: Mapping) -> None:
    """Raise ParameterError for unknown metrics or an alpha outside (0, 1), DataError for no models."""
    unknown = [metric for metric in metrics if metric not in SUMMARY_METRICS]
    if unknown or not metrics:
        raise ParameterError(f"metrics must be some of {list(SUMMARY_METRICS)}; got {list(metrics)}.")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must lie strictly between 0 and 1; got {alpha}.")
    if not probabilities:
        raise DataError("No models to compare: probabilities is empty.")


def paired_comparison(
    y_true,
    probabilities: Mapping[str, Any],
    class_names: Sequence[str],
    positive: str | None = None,
    metrics: Sequence[str] = SUMMARY_METRICS,
    groups=None,
    seed: int = 0,
    n_resamples: int = 1000,
    alpha: float = 0.05,
) -> PairedComparison:
    """Test every model against the best one of each metric, on the same test images.

    Args:
        y_true: (N,) integer class indices into ``class_names``, shared by all models.
        probabilities: Model name -> its (N, C) probabilities of the same images in
            the same order (for two classes also a 1-D positive-class probability).
        class_names: Names of the C classes, in index order.
        positive: Positive class name for binary metrics (default: the last class).
        metrics: Metrics to compare, from ``SUMMARY_METRICS``.
        groups: Optional (N,) group id per image (e.g. patient); when given, whole
            groups are swapped together and accuracy, too, is tested by permutation.
        seed: Seed of the permutations.
        n_resamples: Permutations of each permutation test (all of them, exactly,
            when there are no more than this).
        alpha: Significance level of the Holm-adjusted tests (the study's setting).

    Returns:
        The :class:`PairedComparison`.

    Raises:
        DataError: If a model's probabilities do not fit ``y_true`` or no model is given.
        ParameterError: If a metric, ``positive``, ``n_resamples`` or ``alpha`` is invalid.
    """
    metrics = tuple(metrics)
    _check(metrics, alpha, probabilities)
    checked = {
        model: _validated(y_true, probs, class_names, positive, n_resamples, 1 - alpha)
        for model, probs in probabilities.items()
    }
    _, labels, _, positive_class = next(iter(checked.values()))
    probs = {model: inputs[2] for model, inputs in checked.items()}
    unit_of_row, n_units = bootstrap_units(groups, labels.size)
    all_values = {
        model: dict(zip(SUMMARY_METRICS, _point_estimates(labels, p, positive_class))) for model, p in probs.items()
    }
    values = {metric: {model: float(all_values[model][metric]) for model in probs} for metric in metrics}

    references, comparisons, tests = {}, {}, {}
    for metric in metrics:
        reference = max(probs, key=values[metric].__getitem__)
        uses_mcnemar = metric == "accuracy" and groups is None
        tests[metric] = MCNEMAR if uses_mcnemar else PERMUTATION + ("" if groups is None else f" over {n_units} groups")
        others = [model for model in probs if model != reference]
        raw, discordant = [], []
        for model in others:
            p, counts = _mcnemar(probs[reference].argmax(axis=1) == labels, probs[model].argmax(axis=1) == labels)
            if not uses_mcnemar:
                swaps = _SwapMetrics(labels, probs[reference], probs[model], positive_class, unit_of_row)
                p = _permutation_p(swaps, metric, n_units, seed, int(n_resamples))
            raw.append(p)
            discordant.append(counts if metric == "accuracy" else None)
        references[metric] = reference
        comparisons[metric] = _holm_comparisons(others, reference, raw, discordant, alpha)
    return PairedComparison(
        models=tuple(probs),
        metrics=metrics,
        values=values,
        references=references,
        comparisons=comparisons,
        tests=tests,
        n=int(labels.size),
        n_groups=None if groups is None else n_units,
        alpha=float(alpha),
        n_resamples=int(n_resamples),
        seed=int(seed),
    )


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the paired differences ``x - y`` along ``axis`` (vectorised for permutation_test)."""
    return np.mean(np.asarray(x) - np.asarray(y), axis=axis)


def paired_score_comparison(
    scores: Mapping[str, Mapping[str, Any]],
    lower_is_better: Sequence[str] = (),
    seed: int = 0,
    n_resamples: int = 1000,
    alpha: float = 0.05,
) -> PairedComparison:
    """Per-image scores of several candidates on the same images: each against the best of every metric.

    The same verdicts as :func:`paired_comparison`, for scores that exist image
    by image (an explanation's pointing-game hit or deletion AUC, say) rather
    than metrics of a whole split. A metric's value is the mean over images,
    its reference the candidate with the best mean; a boolean score (a hit) is
    tested by the exact McNemar test, any other by a paired permutation test
    of the mean difference (each permutation swaps the two candidates' scores
    on a random set of images); Holm's correction within each metric.

    Args:
        scores: Candidate (a CAM method, say) -> metric -> its (N,) scores of
            the same N images in the same order; every candidate has every metric.
        lower_is_better: Metrics whose best mean is the lowest.
        seed: Seed of the permutations.
        n_resamples: Permutations of each permutation test (all of them, exactly, when fewer).
        alpha: Significance level of the Holm-adjusted tests.

    Returns:
        The :class:`PairedComparison` (its ``models`` are the candidates).

    Raises:
        DataError: No candidates, missing metrics, scores of different lengths, or non-finite scores.
        ParameterError: An ``alpha`` outside (0, 1).
    """
    if not scores:
        raise DataError("No candidates to compare: scores is empty.")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must lie strictly between 0 and 1; got {alpha}.")
    candidates = tuple(scores)
    metrics = tuple(next(iter(scores.values())))
    arrays: dict[str, dict[str, np.ndarray]] = {metric: {} for metric in metrics}
    for candidate, by_metric in scores.items():
        if set(by_metric) != set(metrics):
            raise DataError(f"{candidate} has metrics {sorted(by_metric)}; expected {sorted(metrics)}")
        for metric in metrics:
            arrays[metric][candidate] = np.asarray(by_metric[metric])
    lengths = {values.shape for by_candidate in arrays.values() for values in by_candidate.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise DataError(f"every score must be one value per image of the same images; got shapes {sorted(lengths)}")
    if not all(
        np.isfinite(values.astype(float)).all() for by_candidate in arrays.values() for values in by_candidate.values()
    ):
        raise DataError("scores must be finite")
    lower = frozenset(lower_is_better)
    values = {
        metric: {candidate: float(np.mean(array)) for candidate, array in by_candidate.items()}
        for metric, by_candidate in arrays.items()
    }
    references, comparisons, tests = {}, {}, {}
    for metric in metrics:
        pick = min if metric in lower else max
        reference = pick(candidates, key=values[metric].__getitem__)
        binary = all(array.dtype == bool for array in arrays[metric].values())
        tests[metric] = MCNEMAR if binary else PERMUTATION
        others = [candidate for candidate in candidates if candidate != reference]
        raw: list[float] = []
        discordant: list[tuple[int, int] | None] = []
        for candidate in others:
            mine, best = arrays[metric][candidate], arrays[metric][reference]
            if binary:
                p, counts = _mcnemar(best, mine)
                discordant.append(counts)
            elif len(best) < 2:
                # One image: swapped or not, |difference| is the same, so the exact p-value is 1
                # (scipy's permutation test refuses a single observation).
                p = 1.0
                discordant.append(None)
            else:
                result = scipy.stats.permutation_test(
                    (best.astype(float), mine.astype(float)),
                    _mean_difference,
                    permutation_type="samples",
                    vectorized=True,
                    n_resamples=int(n_resamples),
                    alternative="two-sided",
                    rng=np.random.default_rng(seed),
                )
                p = float(min(result.pvalue, 1.0))
                discordant.append(None)
            raw.append(p)
        references[metric] = reference
        comparisons[metric] = _holm_comparisons(others, reference, raw, discordant, alpha)
    return PairedComparison(
        models=candidates,
        metrics=metrics,
        values=values,
        references=references,
        comparisons=comparisons,
        tests=tests,
        n=int(next(iter(lengths))[0]),
        n_groups=None,
        alpha=float(alpha),
        n_resamples=int(n_resamples),
        seed=int(seed),
        lower_is_better=lower,
    )
