"""Tests of common.experiments.leakage: split variants, the split plan and retraining on the other split."""

import dataclasses
import shutil
from types import SimpleNamespace

import pandas as pd
import pytest

from common.data import audit
from common.errors import ParameterError
from common.experiments import fitting, leakage, loading
from common.training.runtime import Runtime

NO_DUPLICATES = {"exact_groups": [], "near_groups": [], "pairs": []}


def test_split_variants_share_one_split_when_the_audit_finds_no_duplicates(tiny_params):
    samples = loading.load_samples(tiny_params).samples
    variants = leakage.split_variants(tiny_params, samples, NO_DUPLICATES)
    assert list(variants) == ["grouped", "image"]
    assert variants["grouped"] is variants["image"]


def test_split_variants_keep_duplicate_groups_on_one_side(tiny_params, tmp_path):
    samples = loading.load_samples(tiny_params).samples
    # plant duplicates: rows 1-2 become copies of row 0's file, row 7 of row 6's
    for row, source in ((1, 0), (2, 0), (7, 6)):
        copy = tmp_path / f"copy_{row}.png"
        shutil.copyfile(samples.loc[source, "path"], copy)
        samples.loc[row, "path"] = str(copy)
    result = audit.audit_samples(samples, progress=False)
    grouped = leakage.split_variants(dataclasses.replace(tiny_params, split="grouped"), samples, result)["grouped"]
    for rows in ([0, 1, 2], [6, 7]):
        assert grouped.loc[rows, "split"].nunique() == 1


def test_an_unknown_split_name_is_refused(tiny_params):
    with pytest.raises(ParameterError, match="Parameter 'split' must be one of image, grouped, both; got 'patient'"):
        dataclasses.replace(tiny_params, split="patient")


def test_plan_splits_audits_and_records_the_main_split(tiny_params):
    samples = loading.load_samples(tiny_params).samples
    plan = leakage.plan_splits(tiny_params, samples)
    assert plan.primary == "grouped" and plan.samples is plan.tables["grouped"] is plan.tables["image"]
    assert plan.duplicate_share == 0 and list(plan.share_table().index) == ["grouped", "image"]
    assert plan.audit_record() == {
        "exact_groups": 0,
        "near_groups": 0,
        "threshold": tiny_params.near_duplicate_threshold,
    }
    assert plan.summary() == "0 exact-duplicate groups, 0 near-duplicate groups; main analysis on the grouped split"


def _plan(params, image_share):
    grouped, image = pd.DataFrame({"split": ["train"]}), pd.DataFrame({"split": ["test"]})
    shares = {"grouped": {"share": 0.0}, "image": {"share": image_share}}
    return leakage.SplitPlan(
        NO_DUPLICATES, {"grouped": grouped, "image": image}, shares, params.near_duplicate_threshold
    )


def test_compare_splits_names_a_shared_table_and_skips_a_split_with_few_duplicates(tiny_params):
    shared = leakage.SplitPlan(
        NO_DUPLICATES,
        {"grouped": "table", "image": "table"},
        {"grouped": {"share": 0.0}, "image": {"share": 0.0}},
        0.98,
    )
    same = leakage.compare_splits(tiny_params, shared, "ResNet50", {"accuracy": 1}, None, Runtime.local())
    assert same.results["image"] == {
        "models": {"ResNet50": {"accuracy": 1}},
        "train_test_duplicate_share": {"share": 0.0},
        "same_as": "grouped",
    }
    assert same.models == {"grouped split": {"accuracy": 1}, "image split": {"accuracy": 1}} and same.notes == []
    few = leakage.compare_splits(
        tiny_params, _plan(tiny_params, 0.001), "ResNet50", {"accuracy": 1}, None, Runtime.local()
    )
    assert few.results["image"]["models"] == {} and "not_retrained" in few.results["image"]
    assert few.models == {"grouped split": {"accuracy": 1}}
    assert few.notes == [
        "image split: 0.0010 of its training images have a duplicate in its test split; not retrained."
    ]


def test_compare_splits_retrains_the_backbone_on_a_leaky_split(tiny_params, monkeypatch):
    plan = _plan(tiny_params, 0.5)
    trained = []
    monkeypatch.setattr(fitting, "build_backbone_classifier", lambda params, runtime: "fresh model")

    def fake_fit(params, model, table, preprocess, runtime):
        trained.append((model, table, preprocess))
        return SimpleNamespace(scores={"accuracy": 0.7})

    monkeypatch.setattr(fitting, "fit_and_evaluate", fake_fit)
    compared = leakage.compare_splits(tiny_params, plan, "ResNet50", {"accuracy": 1}, "resnet50", Runtime.local())
    assert trained == [("fresh model", plan.tables["image"], "resnet50")]
    assert compared.models == {"grouped split": {"accuracy": 1}, "image split": {"accuracy": 0.7}}
    assert compared.results["image"]["train_test_duplicate_share"] == {"share": 0.5}
