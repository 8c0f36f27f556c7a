"""Calibration of a classifier's probabilities: reliability bins, expected calibration error, Brier score.

A model is calibrated when, among the images it gives probability 0.8, about
80 % are what it says. What is checked depends on the number of classes (``kind``):

- ``"binary"``: the positive class's probability against whether the image is
  of the positive class;
- ``"top-label"`` (three or more classes): the confidence, the highest class
  probability, against whether that top class is right.

The expected calibration error (ECE) puts the probabilities in ``n_bins``
equal-width bins on [0, 1] and averages, weighted by the bins' counts, the gap
between each bin's mean probability and its observed frequency. The Brier score
is the mean squared distance between the probabilities and the truth: binary,
scikit-learn's ``brier_score_loss`` on the positive class; three or more
classes, the squared distance between the probability vector and the one-hot
label, averaged over images. Both get a seeded percentile-bootstrap interval
over images, or over groups (patients) when ``groups`` is given
(:func:`common.evaluation.intervals.percentile_intervals`). The reliability bins
are scikit-learn's ``calibration_curve`` (``strategy="uniform"``) with each
bin's count; empty bins are left out.

The ECE is biased upward on small samples (a bin's gap is never negative), so a
well-calibrated model on few images still shows a small positive ECE; read it
with its interval and the bin counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from common.errors import ParameterError
from common.evaluation.classification import _validated
from common.evaluation.estimate import Estimate
from common.evaluation.intervals import bootstrap_units, percentile_intervals, resample_counts

BINARY = "binary"
TOP_LABEL = "top-label"


@dataclass(frozen=True)
class Calibration:
    """How well a model's probabilities match what happens.

    Attributes:
        kind: ``"binary"`` (the positive class's probability) or ``"top-label"``
            (the top class's probability, three or more classes).
        ece: Expected calibration error with its bootstrap interval and ``n`` images.
        brier: Brier score with its bootstrap interval and ``n`` images.
        bin_lower: Lower edge of each non-empty bin.
        bin_upper: Upper edge of each non-empty bin.
        predicted: Mean probability in each non-empty bin.
        observed: Observed frequency in each non-empty bin (share positive, or share right).
        count: Number of images in each non-empty bin.
        n_bins: Number of equal-width bins on [0, 1].
        positive: The positive class (binary), or None (top-label).
    """

    kind: str
    ece: Estimate
    brier: Estimate
    bin_lower: tuple[float, ...]
    bin_upper: tuple[float, ...]
    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    count: tuple[int, ...]
    n_bins: int
    positive: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON record for ``metrics.json``: ``{"kind", "positive", "ece", "brier", "bins", "n_bins"}``."""
        return {
            "kind": self.kind,
            "positive": self.positive,
            "ece": self.ece.to_record(),
            "brier": self.brier.to_record(),
            "bins": {
                "lower": list(self.bin_lower),
                "upper": list(self.bin_upper),
                "predicted": list(self.predicted),
                "observed": list(self.observed),
                "count": list(self.count),
            },
            "n_bins": self.n_bins,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], confidence: float = 0.95) -> Calibration:
        """Read a :meth:`record` back (e.g. from ``metrics.json``)."""
        bins = record["bins"]
        return cls(
            kind=record["kind"],
            ece=Estimate.from_record(record["ece"], confidence),
            brier=Estimate.from_record(record["brier"], confidence),
            bin_lower=tuple(float(v) for v in bins["lower"]),
            bin_upper=tuple(float(v) for v in bins["upper"]),
            predicted=tuple(float(v) for v in bins["predicted"]),
            observed=tuple(float(v) for v in bins["observed"]),
            count=tuple(int(v) for v in bins["count"]),
            n_bins=int(record["n_bins"]),
            positive=record.get("positive"),
        )

    def table(self) -> pd.DataFrame:
        """Display table of the non-empty bins: range, images, mean probability, observed frequency, gap."""
        return pd.DataFrame(
            {
                "bin": [f"{low:.2f}–{high:.2f}" for low, high in zip(self.bin_lower, self.bin_upper)],
                "images": list(self.count),
                "mean probability": np.round(self.predicted, 3),
                "observed": np.round(self.observed, 3),
                "gap": np.round(np.subtract(self.observed, self.predicted), 3),
            }
        ).set_index("bin")


def _bin_of(probability: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability, as scikit-learn's ``calibration_curve`` bins them."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], probability)


def _calibration_statistic(
    in_bin: np.ndarray, probability: np.ndarray, outcome: np.ndarray, squared_error: np.ndarray, unit_of_row, n_units
):
    """Vectorised bootstrap statistic: rows (ECE, Brier) of the resamples of units."""
    per_unit = np.zeros((n_units, 3 * in_bin.shape[1] + 2))
    n_bins = in_bin.shape[1]
    columns = np.column_stack([in_bin, in_bin * probability[:, None], in_bin * outcome[:, None], squared_error])
    np.add.at(per_unit[:, :-1], unit_of_row, columns)
    np.add.at(per_unit[:, -1], unit_of_row, 1.0)

    def statistic(drawn_units: np.ndarray, axis: int = -1) -> np.ndarray:
        sums = resample_counts(drawn_units, n_units, axis).astype(float) @ per_unit
        probabilities, outcomes = sums[:, n_bins : 2 * n_bins], sums[:, 2 * n_bins : 3 * n_bins]
        images = sums[:, -1]
        ece = np.abs(outcomes - probabilities).sum(axis=1) / images
        return np.stack([ece, sums[:, -2] / images])

    return statistic


def calibration(
    y_true,
    y_prob,
    class_names: Sequence[str],
    positive: str | None = None,
    groups=None,
    seed: int = 0,
    n_resamples: int = 1000,
    n_bins: int = 10,
    confidence: float = 0.95,
) -> Calibration:
    """Reliability bins, expected calibration error and Brier score of a model's probabilities.

    Args:
        y_true: (N,) integer class indices into ``class_names``.
        y_prob: (N, C) class probabilities; for two classes also a 1-D array of the
            probability of the second class.
        class_names: Names of the C classes, in index order.
        positive: Positive class name for two classes (default: the last class).
        groups: Optional (N,) group id per image (e.g. patient); when given, whole
            groups are resampled for the intervals.
        seed: Seed of the bootstrap.
        n_resamples: Number of bootstrap resamples.
        n_bins: Number of equal-width probability bins.
        confidence: Confidence level of the intervals (stored under ``ci95``).

    Returns:
        The :class:`Calibration`: binary for two classes, top-label for three or more.

    Raises:
        DataError: If the arrays do not fit each other or hold a single class.
        ParameterError: If ``positive``, ``n_bins``, ``n_resamples`` or ``confidence`` is invalid.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ParameterError(f"n_bins must be a positive integer; got {n_bins}.")
    n_bins = int(n_bins)
    names, labels, probs, positive_class = _validated(y_true, y_prob, class_names, positive, n_resamples, confidence)
    if len(names) == 2:
        kind, probability = BINARY, probs[:, positive_class]
        outcome = (labels == positive_class).astype(float)
        brier = float(brier_score_loss(outcome, probability, pos_label=1))
        squared_error = (probability - outcome) ** 2
    else:
        kind, probability = TOP_LABEL, probs.max(axis=1)
        outcome = (probs.argmax(axis=1) == labels).astype(float)
        squared_error = ((probs - np.eye(len(names))[labels]) ** 2).sum(axis=1)
        brier = float(squared_error.mean())

    bin_of_row = _bin_of(probability, n_bins)
    in_bin = np.eye(n_bins)[bin_of_row]
    counts = in_bin.sum(axis=0)
    observed, predicted = calibration_curve(outcome, probability, n_bins=n_bins, strategy="uniform", pos_label=1)

    unit_of_row, n_units = bootstrap_units(groups, labels.size)
    statistic = _calibration_statistic(in_bin, probability, outcome, squared_error, unit_of_row, n_units)
    ece = float(statistic(np.arange(n_units)[None, :])[0, 0])  # every unit once: the sample itself
    low, high = percentile_intervals(statistic, n_units, labels.size, seed, int(n_resamples), confidence)
    unit = "images" if groups is None else f"{n_units} groups (cluster bootstrap)"
    method = f"percentile bootstrap, {int(n_resamples)} resamples of {unit}, seed {seed}"
    n = int(labels.size)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    filled = counts > 0
    return Calibration(
        kind=kind,
        ece=Estimate(ece, float(low[0]), float(high[0]), confidence, n=n, method=method),
        brier=Estimate(brier, float(low[1]), float(high[1]), confidence, n=n, method=method),
        bin_lower=tuple(edges[:-1][filled].tolist()),
        bin_upper=tuple(edges[1:][filled].tolist()),
        predicted=tuple(float(v) for v in predicted),
        observed=tuple(float(v) for v in observed),
        count=tuple(int(v) for v in counts[filled]),
        n_bins=n_bins,
        positive=names[positive_class] if kind == BINARY else None,
    )
