"""Tests of common.evaluation.tables: fold summaries, display tables, paper comparisons."""

import numpy as np
import pytest

from common.errors import DataError
from common.evaluation.estimate import Estimate
from common.evaluation.tables import best_per_metric, fold_estimate, metrics_table, paper_vs_run, summarise_folds


def test_summarise_folds_uses_t_interval_over_folds():
    folds = [{"accuracy": {"value": v, "ci95": [v, v]}, "f1": v - 0.1} for v in (0.6, 0.7, 0.8)]
    summary = summarise_folds(folds, names=("accuracy", "f1"))
    # mean 0.7, sd 0.1, t(0.975, df=2) = 4.3027 -> half width 0.24841
    assert summary["accuracy"]["value"] == pytest.approx(0.7)
    assert summary["accuracy"]["ci95"] == pytest.approx([0.7 - 0.248414, 0.7 + 0.248414], abs=1e-5)
    assert summary["accuracy"]["folds"] == pytest.approx([0.6, 0.7, 0.8])
    assert summary["f1"]["value"] == pytest.approx(0.6)
    constant = summarise_folds([{"accuracy": 0.5}, {"accuracy": 0.5}], names=("accuracy",))
    assert constant["accuracy"]["ci95"] == [0.5, 0.5]
    with pytest.raises(DataError, match="two folds"):
        summarise_folds(folds[:1])


def test_table_and_best_model():
    models = {
        "VGG16": {"accuracy": {"value": 0.9, "ci95": [0.85, 0.95]}, "auc": {"value": 0.97, "ci95": [0.9, 0.99]}},
        "ResNet50": {"accuracy": {"value": 0.93, "ci95": [0.9, 0.96]}, "auc": {"value": 0.95, "ci95": [0.9, 0.98]}},
    }
    table = metrics_table(models, names=("accuracy", "auc", "f1"))
    assert table.loc["VGG16", "accuracy"] == "0.900 [0.850, 0.950]"
    assert table.loc["ResNet50", "f1"] == ""
    assert best_per_metric(models, names=("accuracy", "auc", "f1")) == {"accuracy": "ResNet50", "auc": "VGG16"}


def test_paper_vs_run_normalises_percent_and_checks_interval():
    paper = {"CNN": {"accuracy": 80, "Sensitivity": 82.0, "auc": 0.98}, "Missing": {"accuracy": 0.5}}
    run = {
        "CNN": {
            "accuracy": {"value": 0.78, "ci95": [0.7, 0.85]},
            "recall": {"value": 0.9, "ci95": [0.85, 0.95]},
            "auc": {"value": 0.9, "ci95": [0.85, 0.95]},
        }
    }
    table = paper_vs_run(paper, run).set_index(["model", "metric"])
    assert table.loc[("CNN", "accuracy"), "paper"] == pytest.approx(0.80)
    assert table.loc[("CNN", "accuracy"), "difference"] == pytest.approx(-0.02)
    assert bool(table.loc[("CNN", "accuracy"), "paper_inside_ci"])
    assert table.loc[("CNN", "recall"), "paper"] == pytest.approx(0.82)
    assert not bool(table.loc[("CNN", "recall"), "paper_inside_ci"])
    assert table.loc[("CNN", "auc"), "paper"] == pytest.approx(0.98)
    assert np.isnan(table.loc[("Missing", "accuracy"), "this_run"])
    assert not bool(table.loc[("Missing", "accuracy"), "paper_inside_ci"])


def test_fold_intervals_stay_within_zero_and_one():
    wide = summarise_folds([{"accuracy": 0.0}, {"accuracy": 1.0}], names=("accuracy",))["accuracy"]
    assert wide["value"] == 0.5 and wide["ci95"] == [0.0, 1.0]
    # mean 0.9, sd 0.1, three folds: the t interval's upper end 1.148 is clipped to 1
    high = summarise_folds([{"f1": v} for v in (0.8, 0.9, 1.0)], names=("f1",))["f1"]
    assert high["ci95"] == pytest.approx([0.9 - 0.248414, 1.0], abs=1e-5)


def test_fold_estimate_carries_the_folds_and_clips_to_proportions():
    estimate = fold_estimate([0.6, 0.7, 0.8], confidence=0.95)
    assert estimate.folds == pytest.approx((0.6, 0.7, 0.8))
    assert estimate.interval == pytest.approx((0.7 - 0.248414, 0.7 + 0.248414), abs=1e-5)
    assert estimate.to_record() == summarise_folds([{"f1": v} for v in (0.6, 0.7, 0.8)], names=("f1",))["f1"]
    narrower = fold_estimate([0.6, 0.7, 0.8], confidence=0.5)
    assert narrower.high - narrower.low < estimate.high - estimate.low
    assert fold_estimate([0.0, 1.0]).interval == (0.0, 1.0)


def test_tables_read_estimates_records_and_numbers_alike():
    as_estimate = {"VGG16": {"accuracy": Estimate(0.9, 0.85, 0.95)}}
    as_record = {"VGG16": {"accuracy": {"value": 0.9, "ci95": [0.85, 0.95]}}}
    assert metrics_table(as_estimate, names=("accuracy",)).equals(metrics_table(as_record, names=("accuracy",)))
    assert metrics_table({"m": {"auc": 0.5}}, names=("auc",)).loc["m", "auc"] == "0.500 [nan, nan]"
    # metrics.json stores an undefined number as null: it reads back as NaN.
    undefined = {"m": {"auc": {"value": None, "ci95": [None, None]}}}
    assert metrics_table(undefined, names=("auc",)).loc["m", "auc"] == "nan [nan, nan]"
    assert best_per_metric({"a": {"auc": Estimate(0.7, 0.6, 0.8)}, "b": {"auc": 0.8}}, names=("auc",)) == {"auc": "b"}
    paper = {"CNN": {"accuracy": 0.88}}
    compared = paper_vs_run(paper, as_estimate | {"CNN": as_estimate["VGG16"]})
    assert compared.loc[0, "ci95_low"] == 0.85 and bool(compared.loc[0, "paper_inside_ci"])
    plain = paper_vs_run(paper, {"CNN": {"accuracy": 0.88}})
    assert plain.loc[0, "this_run"] == 0.88 and not bool(plain.loc[0, "paper_inside_ci"])
    with pytest.raises(DataError, match="neither a fraction nor a percent"):
        paper_vs_run({"CNN": {"accuracy": 130}}, {})


def test_summarise_folds_reads_estimates_and_names_a_missing_metric():
    folds = [{"accuracy": Estimate(v, v, v)} for v in (0.6, 0.7, 0.8)]
    assert summarise_folds(folds, names=("accuracy",))["accuracy"]["value"] == pytest.approx(0.7)
    with pytest.raises(DataError, match="no 'f1'"):
        summarise_folds(folds, names=("f1",))
