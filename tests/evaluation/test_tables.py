"""Tests of common.evaluation.tables: fold summaries, display tables, paper comparisons."""

import numpy as np
import pytest

from common.errors import DataError
from common.evaluation.estimate import Estimate
from common.evaluation.tables import (
    INSIDE_CI,
    MISSING,
    best_per_metric,
    fold_estimate,
    format_estimate,
    inside_ci_text,
    metrics_table,
    paper_beside_run,
    paper_vs_run,
    sample_size,
    summarise_folds,
)


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
    assert table.loc["VGG16", "accuracy"] == "0.900 (0.85–0.95)"
    assert table.loc["ResNet50", "f1"] == MISSING
    # No model records how many units it was measured on: no n column.
    assert list(table.columns) == ["accuracy", "auc", "f1"]
    assert best_per_metric(models, names=("accuracy", "auc", "f1")) == {"accuracy": "ResNet50", "auc": "VGG16"}


PAPER = {"CNN": {"accuracy": 80, "Sensitivity": 82.0, "auc": 0.98}, "Missing": {"accuracy": 0.5}}
RUN = {
    "CNN": {
        "accuracy": {"value": 0.78, "ci95": [0.7, 0.85]},
        "recall": {"value": 0.9, "ci95": [0.85, 0.95]},
        "auc": {"value": 0.9, "ci95": [0.85, 0.95]},
    }
}


def test_paper_vs_run_normalises_percent_and_checks_interval_of_a_comparable_run():
    table = paper_vs_run(PAPER, RUN, comparable=True).set_index(["model", "metric"])
    assert table.loc[("CNN", "accuracy"), "paper"] == pytest.approx(0.80)
    assert table.loc[("CNN", "accuracy"), "difference"] == pytest.approx(-0.02)
    assert table.loc[("CNN", "accuracy"), "paper_inside_ci"] is True  # 0.80 in [0.70, 0.85]
    assert table.loc[("CNN", "recall"), "paper"] == pytest.approx(0.82)
    assert table.loc[("CNN", "recall"), "paper_inside_ci"] is False  # 0.82 below [0.85, 0.95]
    assert table.loc[("CNN", "auc"), "paper"] == pytest.approx(0.98)
    assert np.isnan(table.loc[("Missing", "accuracy"), "this_run"])
    assert table.loc[("Missing", "accuracy"), "paper_inside_ci"] is False
    assert table["comparable"].tolist() == [True] * 4 and table["reason"].tolist() == [None] * 4


def test_paper_vs_run_of_a_run_not_comparable_judges_no_claim():
    table = paper_vs_run(PAPER, RUN, comparable=False, reason="phantoms").set_index(["model", "metric"])
    # The numbers are still set side by side; whether a claim is inside the interval is not asked.
    assert table.loc[("CNN", "accuracy"), "difference"] == pytest.approx(-0.02)
    assert table["paper_inside_ci"].tolist() == [None] * 4
    assert table["comparable"].tolist() == [False] * 4 and table["reason"].tolist() == ["phantoms"] * 4


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
    assert metrics_table({"m": {"auc": 0.5}}, names=("auc",)).loc["m", "auc"] == "0.500"
    # metrics.json stores an undefined number as null: it reads back as NaN, shown as a dash.
    undefined = {"m": {"auc": {"value": None, "ci95": [None, None]}}}
    assert metrics_table(undefined, names=("auc",)).loc["m", "auc"] == MISSING
    assert best_per_metric({"a": {"auc": Estimate(0.7, 0.6, 0.8)}, "b": {"auc": 0.8}}, names=("auc",)) == {"auc": "b"}
    paper = {"CNN": {"accuracy": 0.88}}
    compared = paper_vs_run(paper, as_estimate | {"CNN": as_estimate["VGG16"]}, comparable=True)
    assert compared.loc[0, "ci95_low"] == 0.85 and compared.loc[0, "paper_inside_ci"] is True
    plain = paper_vs_run(paper, {"CNN": {"accuracy": 0.88}}, comparable=True)
    assert plain.loc[0, "this_run"] == 0.88 and plain.loc[0, "paper_inside_ci"] is False
    with pytest.raises(DataError, match="neither a fraction nor a percent"):
        paper_vs_run({"CNN": {"accuracy": 130}}, {}, comparable=True)


def test_summarise_folds_reads_estimates_and_names_a_missing_metric():
    folds = [{"accuracy": Estimate(v, v, v)} for v in (0.6, 0.7, 0.8)]
    assert summarise_folds(folds, names=("accuracy",))["accuracy"]["value"] == pytest.approx(0.7)
    with pytest.raises(DataError, match="no 'f1'"):
        summarise_folds(folds, names=("f1",))


@pytest.mark.parametrize(
    "entry, text",
    [
        ({"value": 0.90909, "ci95": [0.82, 0.98]}, "0.909 (0.82–0.98)"),
        # The ends are rounded outward: the interval shown holds the value shown, never narrower than computed.
        ({"value": 0.996, "ci95": [0.995, 0.999]}, "0.996 (0.99–1.00)"),
        (Estimate(0.5, 0.123, 0.871), "0.500 (0.12–0.88)"),
        # Binary fractions do not push an end that is already round one step outward.
        ({"value": 0.7, "ci95": [0.1 + 0.2, 0.7 + 0.1]}, "0.700 (0.30–0.80)"),
        ({"value": 0.0, "ci95": [0.0, 0.0]}, "0.000 (0.00–0.00)"),
        ({"value": 0.667, "ci95": [None, None]}, "0.667"),
        (0.982, "0.982"),
        ({"value": None, "ci95": [None, None]}, MISSING),
        (None, MISSING),
    ],
)
def test_format_estimate_writes_one_compact_rule(entry, text):
    assert format_estimate(entry) == text


def test_format_estimate_digits_and_count():
    entry = {"value": 0.25, "ci95": [0.0, 0.75], "n": 4}
    assert format_estimate(entry, with_n=True) == "0.250 (0.00–0.75), n = 4"
    assert format_estimate(entry) == "0.250 (0.00–0.75)"
    assert format_estimate(entry, digits=2, ci_digits=1) == "0.25 (0.0–0.8)"
    assert format_estimate({"value": 0.5, "ci95": [0.4, 0.6]}, with_n=True) == "0.500 (0.40–0.60)"


def test_sample_size_is_the_test_sets_size_or_the_folds():
    assert sample_size({"n": 120, "accuracy": {"value": 0.9, "ci95": [0.8, 1.0]}}) == "120"
    folds = summarise_folds([{"accuracy": v} for v in (0.6, 0.7, 0.8)], names=("accuracy",))
    assert sample_size({**folds, "confusion_matrix": [[1, 0], [0, 1]]}) == "3 folds"
    assert sample_size({"accuracy": fold_estimate([0.6, 0.7])}) == "2 folds"
    assert sample_size({"accuracy": {"value": 0.9, "ci95": [0.8, 1.0]}}) is None


def test_metrics_table_gives_n_first_when_models_record_it():
    models = {
        "A": {"n": 40, "accuracy": {"value": 0.9, "ci95": [0.8, 0.95]}},
        "B": {"accuracy": {"value": 0.7, "ci95": [0.6, 0.8]}},
    }
    table = metrics_table(models, names=("accuracy",))
    assert list(table.columns) == ["n", "accuracy"]
    assert table["n"].tolist() == ["40", MISSING]
    assert table.loc["A", "accuracy"] == "0.900 (0.80–0.95)"


BESIDE_ROWS = [
    {"model": "ResNet50", "metric": "accuracy", "paper": 0.982, "this_run": 0.75, "ci95": [0.25, 1.0]},
    {"model": "ResNet50", "metric": "auc", "paper": 0.98, "this_run": 0.667, "ci95": [None, None]},
    {"model": "plain_cnn", "metric": "accuracy", "paper": None, "this_run": 0.5, "ci95": None},
    {"model": "plain_cnn", "metric": "f1", "paper": 0.8, "this_run": None, "ci95": None},
]


def test_paper_beside_run_sets_each_claim_beside_the_runs_value_and_a_phantom_run_is_not_comparable():
    rows = [{**row, "paper_inside_ci": None, "comparable": False, "reason": "phantoms"} for row in BESIDE_ROWS]
    table = paper_beside_run(rows, sizes={"ResNet50": "4"})
    assert list(table.index) == ["ResNet50", "plain_cnn"]
    assert list(table.columns) == [
        "n",
        "accuracy paper",
        "accuracy run",
        "auc paper",
        "auc run",
        "f1 paper",
        "f1 run",
        INSIDE_CI,
    ]
    assert table.loc["ResNet50"].tolist() == [
        "4",
        "0.982",
        "0.750 (0.25–1.00)",
        "0.980",
        "0.667",
        MISSING,
        MISSING,
        "not comparable (phantoms)",
    ]
    assert table.loc["plain_cnn"].tolist() == [
        MISSING,
        MISSING,
        "0.500",
        MISSING,
        MISSING,
        "0.800",
        MISSING,
        "not comparable (phantoms)",
    ]
    assert "n" not in paper_beside_run(rows).columns
    # An older record without "comparable" is not taken for a comparable run.
    assert paper_beside_run(BESIDE_ROWS)[INSIDE_CI].tolist() == ["not comparable"] * 2


def test_paper_beside_run_of_a_comparable_run_says_yes_or_no_per_metric():
    inside = {("ResNet50", "accuracy"): True, ("ResNet50", "auc"): False}
    rows = [
        {**row, "paper_inside_ci": inside.get((row["model"], row["metric"]), False), "comparable": True}
        for row in BESIDE_ROWS
    ]
    table = paper_beside_run(rows)
    assert list(table.columns) == [
        "accuracy paper",
        "accuracy run",
        "accuracy inside CI",
        "auc paper",
        "auc run",
        "auc inside CI",
        "f1 paper",
        "f1 run",
        "f1 inside CI",
    ]
    # 0.982 lies in [0.25, 1.0]; ResNet50's AUC has no interval; plain_cnn's claims or values are missing.
    assert table["accuracy inside CI"].tolist() == ["yes", MISSING]
    assert table["auc inside CI"].tolist() == ["no", MISSING]
    assert table["f1 inside CI"].tolist() == [MISSING, MISSING]


@pytest.mark.parametrize(
    "row, text",
    [
        ({"paper": 0.9, "this_run": 0.8, "paper_inside_ci": True, "comparable": True}, "yes"),
        ({"paper": 0.9, "this_run": 0.8, "paper_inside_ci": False, "comparable": True}, "no"),
        (
            {"paper": 0.9, "this_run": 0.8, "paper_inside_ci": None, "comparable": False, "reason": "phantoms"},
            "not comparable (phantoms)",
        ),
        ({"paper": 0.9, "this_run": 0.8, "paper_inside_ci": True}, "not comparable"),
    ],
)
def test_inside_ci_text_says_yes_or_no_only_for_a_comparable_run(row, text):
    assert inside_ci_text(row) == text


def test_paper_beside_run_names_the_papers_model_and_other_data_only_where_rows_carry_them():
    names = {"ResNet50": "ResNet-50-Grad", "plain_cnn": "CNN"}
    rows = [
        {**row, "paper_model": names[row["model"]], "comparable": False, "reason": "phantoms"} for row in BESIDE_ROWS
    ]
    rows = [{**row, "data": "volumes"} if row["model"] == "plain_cnn" else row for row in rows]
    table = paper_beside_run(rows, sizes={"ResNet50": "4", "plain_cnn": "2"})
    assert list(table.columns[:3]) == ["paper's model", "tested on", "n"]
    assert table["paper's model"].tolist() == ["ResNet-50-Grad", "CNN"]
    assert table["tested on"].tolist() == [MISSING, "volumes"]
    # Rows whose paper model is the run's own name (or older rows without one) add neither column.
    same = [{**row, "paper_model": row["model"]} for row in BESIDE_ROWS]
    assert "paper's model" not in paper_beside_run(same).columns
    assert list(paper_beside_run(BESIDE_ROWS).columns) == list(paper_beside_run(same).columns)
    assert "tested on" not in paper_beside_run(same).columns
