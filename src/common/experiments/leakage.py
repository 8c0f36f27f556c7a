"""Does the split matter? The audit's duplicates, the image-level and grouped splits, and retraining on the other.

CT data sets often hold the same slice twice, or near-identical neighbours; an
image-level split then puts near-copies of test images into training. The
experiments audit the sample table (:func:`common.data.audit.audit_samples`),
split it by image and by duplicate group (:func:`plan_splits` ->
:class:`SplitPlan`), train on the main split, and retrain the same model on the
other split when the two differ enough to measure leakage rather than training
noise (:func:`compare_splits` -> :class:`SplitComparison`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from common.config.params import BackboneRunParams, ImageRunParams
from common.experiments import loading
from common.training.runtime import Runtime


def split_variants(params: ImageRunParams, samples: pd.DataFrame, audit_result: dict) -> dict[str, pd.DataFrame]:
    """The split(s) ``params.split`` asks for: ``image``, ``grouped`` or ``both``.

    The grouped split keeps every exact- or near-duplicate group of the audit,
    and every patient the manifest names (the ``group`` column), on one side;
    the image-level split ignores both. When there are no such groups, every
    group is a single image, so the image-level split already is a valid grouped
    split and both names refer to it (nothing is trained twice for the same answer).

    Returns:
        ``{"grouped": table, "image": table}`` (those asked for), grouped first.
    """
    from common.data import audit

    choice = params.split  # one of the three (checked against its schema on construction)
    wanted = ["grouped", "image"] if choice == "both" else [choice]
    has_patients = "group" in samples.columns and bool(samples["group"].notna().any())
    has_groups = has_patients or bool(audit_result["exact_groups"] or audit_result["near_groups"])
    image_split = loading.split(params, samples.assign(group=None))
    variants = {}
    for name in wanted:
        if name == "grouped" and has_groups:
            variants[name] = loading.split(params, audit.groups_from_audit(samples, audit_result))
        else:
            variants[name] = image_split
    return variants


def duplicate_shares(variants: dict[str, pd.DataFrame], audit_result: dict) -> dict[str, dict]:
    """Share of training images with an exact or near duplicate in the test split, per split."""
    from common.data import audit

    return {name: audit.train_test_duplicate_share(table, audit_result) for name, table in variants.items()}


@dataclass(frozen=True)
class SplitPlan:
    """The leakage audit of a sample table and the splits made from it.

    Attributes:
        audit: :func:`common.data.audit.audit_samples` of the whole table.
        tables: Split name -> split sample table (:func:`split_variants`), the main split first.
        shares: Split name -> :func:`common.data.audit.train_test_duplicate_share`.
        threshold: The near-duplicate threshold the audit used.
    """

    audit: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    shares: dict[str, dict]
    threshold: float

    @property
    def primary(self) -> str:
        """The main analysis' split: the grouped one when it was asked for."""
        return next(iter(self.tables))

    @property
    def samples(self) -> pd.DataFrame:
        """The main split's sample table."""
        return self.tables[self.primary]

    @property
    def duplicate_share(self) -> float:
        """Share of the main split's training images with a duplicate in its test split."""
        return self.shares[self.primary]["share"]

    def summary(self) -> str:
        """One line: how many duplicate groups the audit found, and the main split."""
        return (
            f"{len(self.audit['exact_groups'])} exact-duplicate groups, "
            f"{len(self.audit['near_groups'])} near-duplicate groups; main analysis on the {self.primary} split"
        )

    def share_table(self) -> pd.DataFrame:
        """The duplicate shares, one row per split."""
        return pd.DataFrame(self.shares).T

    def audit_record(self) -> dict[str, Any]:
        """The ``audit`` entry of ``metrics.json``: group counts and the threshold."""
        return {
            "exact_groups": len(self.audit["exact_groups"]),
            "near_groups": len(self.audit["near_groups"]),
            "threshold": self.threshold,
        }


def plan_splits(params: ImageRunParams, samples: pd.DataFrame) -> SplitPlan:
    """Audit ``samples`` for duplicates (at ``params.near_duplicate_threshold``) and make the splits asked for."""
    from common.data import audit

    result = audit.audit_samples(samples, threshold=params.near_duplicate_threshold, progress=False)
    tables = split_variants(params, samples, result)
    return SplitPlan(result, tables, duplicate_shares(tables, result), params.near_duplicate_threshold)


@dataclass(frozen=True)
class SplitComparison:
    """One model's scores on each split of a :class:`SplitPlan`.

    Attributes:
        model_name: The model compared.
        results: The ``splits`` entry of ``metrics.json``: split name -> ``{"models",
            "train_test_duplicate_share"}`` plus ``same_as`` (the same table as the main
            split) or ``not_retrained`` (too few duplicates to measure leakage).
        notes: A line per split that was not retrained, saying why.
    """

    model_name: str
    results: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> dict[str, dict]:
        """``"<split> split"`` -> the model's scores, for the splits it was trained on."""
        return {
            f"{name} split": entry["models"][self.model_name] for name, entry in self.results.items() if entry["models"]
        }


def compare_splits(
    params: BackboneRunParams, plan: SplitPlan, model_name: str, scores: dict, preprocess: str | None, runtime: Runtime
) -> SplitComparison:
    """Retrain the run's backbone classifier on every other split of the plan, where that measures leakage.

    A split that is the main split's own table is not retrained (``same_as``);
    nor is one where fewer than ``params.retrain_split_min_share`` of the
    training images have a duplicate in its test split: the splits then differ
    by a handful of images, and retraining would measure training noise
    (``not_retrained``). Every retraining starts from the run's seed.

    Args:
        params: Run parameters (``seed``, ``retrain_split_min_share`` and the model's).
        plan: The audit and splits.
        model_name: The model trained on the main split.
        scores: Its test scores on the main split.
        preprocess: The model's input preprocessing (:func:`common.experiments.fitting.preprocess_name`).
        runtime: The run's runtime, each model is built and compiled in it.
    """
    from common.experiments import fitting
    from common.training.runtime import set_seed

    primary = plan.primary
    results = {primary: {"models": {model_name: scores}, "train_test_duplicate_share": plan.shares[primary]}}
    notes = []
    for name, table in plan.tables.items():
        share = plan.shares[name]
        if name == primary:
            continue
        if table is plan.samples:
            results[name] = {**results[primary], "train_test_duplicate_share": share, "same_as": primary}
        elif share["share"] < params.retrain_split_min_share:
            results[name] = {
                "models": {},
                "train_test_duplicate_share": share,
                "not_retrained": f"duplicate share below {params.retrain_split_min_share}",
            }
            notes.append(
                f"{name} split: {share['share']:.4f} of its training images have a duplicate in "
                "its test split; not retrained."
            )
        else:
            set_seed(params.seed)
            other = fitting.fit_and_evaluate(
                params, fitting.build_backbone_classifier(params, runtime), table, preprocess, runtime=runtime
            )
            results[name] = {"models": {model_name: other.scores}, "train_test_duplicate_share": share}
    return SplitComparison(model_name, results, notes)
