"""What the test split can carry: calibration of every model, and paired tests between models.

After evaluation every experiment hands its test labels and each model's
probabilities to :func:`evidence_of`, which returns an :class:`Evidence`: each
model's calibration (expected calibration error with its interval, Brier score,
reliability bins; :mod:`common.evaluation.calibration`) and, where two or more
models were tested on the same images, the paired comparison of each against
the best per metric with Holm's correction (:mod:`common.evaluation.paired`).
A model is "best" only together with every model the test cannot tell from it.

The significance level is the registry's ``statistics.alpha``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.config import registry
from common.config.params import RunParams
from common.evaluation import calibration, paired, tables


@dataclass(frozen=True)
class Evidence:
    """Calibration per model and, with several models, their paired comparison.

    Attributes:
        calibrations: Model name -> its calibration on the test split.
        comparison: The paired comparison of the models, or None for a single model.
        unit: What was resampled or permuted: ``"images"`` or ``"<G> groups"``.
    """

    calibrations: Mapping[str, calibration.Calibration]
    comparison: paired.PairedComparison | None
    unit: str

    def calibration_table(self) -> pd.DataFrame:
        """One row per model: its calibration kind, ECE and Brier score with their intervals."""
        rows = {
            name: {
                "n": found.ece.n if found.ece.n is not None else tables.MISSING,
                "calibration of": found.kind,
                "ECE": tables.format_estimate(found.ece),
                "Brier": tables.format_estimate(found.brier),
            }
            for name, found in self.calibrations.items()
        }
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "model"
        return table

    def best_per_metric(self, names=tables.SUMMARY_METRICS) -> dict[str, list[str]]:
        """Metric -> the models marked best: the best and every model tied with it (one model: itself)."""
        if self.comparison is None:
            return {name: list(self.calibrations) for name in names}
        return {name: self.comparison.best(name) for name in names if name in self.comparison.metrics}

    def summary(self) -> str:
        """Markdown: which models tie with the best per metric, or that one model cannot be compared."""
        if self.comparison is None:
            return "One model: no paired comparison."
        return self.comparison.summary()

    def reliability_figure(self, path: str | Path):
        """The reliability diagram of every model (:func:`common.report.figures.reliability_diagram`)."""
        from common.report import figures

        return figures.reliability_diagram(self.calibrations, path=path)

    def record(self) -> dict[str, Any]:
        """``{"calibration": {model: record}, "paired_tests": record or None}`` for ``metrics.json``."""
        return {
            "calibration": {name: found.record() for name, found in self.calibrations.items()},
            "paired_tests": None if self.comparison is None else self.comparison.record(),
        }


def groups_of(test: pd.DataFrame):
    """The test split's groups when it has any (duplicates, patients, cases), else None (every image a unit)."""
    if "group" in test.columns and test["group"].notna().any():
        return test["group"].to_numpy()
    return None


def evidence_of(
    params: RunParams,
    labels: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    groups=None,
) -> Evidence:
    """Calibration of every model and, with two or more, their paired comparison on the same images.

    Args:
        params: Run parameters (``classes``, ``positive``, ``seed``, ``n_resamples``).
        labels: The test images' class indices.
        probabilities: Model name -> its test probabilities (N, C), every model on the same images.
        groups: The images' groups (:func:`groups_of`), resampled or permuted whole; None: images.
    """
    alpha = float(registry.section("statistics")["alpha"])
    calibrations = {
        name: calibration.calibration(
            labels,
            probs,
            params.classes,
            positive=params.positive,
            groups=groups,
            seed=params.seed,
            n_resamples=params.n_resamples,
        )
        for name, probs in probabilities.items()
    }
    comparison = None
    if len(probabilities) > 1:
        comparison = paired.paired_comparison(
            labels,
            probabilities,
            params.classes,
            positive=params.positive,
            groups=groups,
            seed=params.seed,
            n_resamples=params.n_resamples,
            alpha=alpha,
        )
    unit = "images" if groups is None else f"{pd.Series(groups).nunique(dropna=False)} groups"
    return Evidence(calibrations, comparison, unit)
