"""Tests of common.experiments.nine_models.tables: the comparison table and the paper beside the run."""

import pytest

from common.experiments import nine_models


def entry(value, low, high):
    return {"value": value, "ci95": [low, high]}


def test_comparison_table_marks_every_best_model_and_shows_costs():
    records = {
        "A": {
            "accuracy": entry(0.9, 0.8, 0.95),
            "auc": entry(0.97, 0.9, 1.0),
            "params_total": 10,
            "params_trainable": 4,
            "train_seconds": 3.0,
            "inference_images_per_s": 50.0,
        },
        "B": {
            "accuracy": entry(0.9, 0.85, 0.95),
            "auc": entry(0.95, 0.9, 0.99),
            "params_total": 20,
            "params_trainable": 20,
            "train_seconds": 5.0,
            "inference_images_per_s": 20.0,
        },
        "C": {
            "accuracy": entry(0.7, 0.6, 0.8),
            "auc": entry(0.99, 0.95, 1.0),
            "params_total": 5,
            "params_trainable": 5,
            "train_seconds": 1.0,
            "inference_images_per_s": 90.0,
        },
    }
    table = nine_models.comparison_table(records, ("accuracy", "auc"))
    assert table.loc["A", "accuracy"] == "0.900 (0.80–0.95)" + nine_models.BEST_MARK
    assert table.loc["B", "accuracy"].endswith(nine_models.BEST_MARK)  # a tie: both marked
    assert not table.loc["C", "accuracy"].endswith(nine_models.BEST_MARK)
    assert table.loc["C", "auc"].endswith(nine_models.BEST_MARK)
    assert not table.loc["A", "auc"].endswith(nine_models.BEST_MARK)
    assert list(table.columns) == [
        "accuracy",
        "auc",
        "params_total",
        "params_trainable",
        "train_seconds",
        "inference_images_per_s",
    ]
    assert table.loc["B", "params_total"] == 20
    assert nine_models.best_models(records, ("accuracy", "auc")) == {"accuracy": {"A", "B"}, "auc": {"C"}}
    # Read back from metrics.json, an undefined number is None.
    records["C"]["auc"] = {"value": 0.99, "ci95": [None, None]}
    assert nine_models.comparison_table(records, ("auc",)).loc["C", "auc"] == "0.990" + nine_models.BEST_MARK


PAPER_ROWS = [
    {"model": "VGG16", "metric": "auc", "paper": 0.999, "this_run": 0.9, "difference": -0.099},
    {"model": "VGG16", "metric": "accuracy", "paper": 0.963, "this_run": 0.95, "difference": -0.013},
    {"model": "ResNet50", "metric": "accuracy", "paper": 0.977, "this_run": 1.0, "difference": 0.023},
    {"model": "ResNet50", "metric": "auc", "paper": 0.999, "this_run": 1.0, "difference": 0.001},
]


def test_paper_comparison_table_pivots_rows_in_table_order_and_a_phantom_run_is_not_comparable():
    rows = [{**row, "paper_inside_ci": None, "comparable": False, "reason": "phantoms"} for row in PAPER_ROWS]
    table = nine_models.paper_comparison_table(rows)
    assert list(table.index) == ["VGG16", "ResNet50"]
    assert list(table.columns) == [
        ("accuracy", "paper"),
        ("accuracy", "this run"),
        ("accuracy", "difference"),
        ("auc", "paper"),
        ("auc", "this run"),
        ("auc", "difference"),
        ("inside CI", ""),
    ]
    assert table.loc["ResNet50", ("accuracy", "difference")] == pytest.approx(0.023)
    assert table[("inside CI", "")].tolist() == ["not comparable (phantoms)"] * 2
    assert nine_models.paper_comparison_table([]).empty


def test_paper_comparison_table_of_a_comparable_run_says_yes_or_no_after_each_difference():
    # Intervals as a paper-profile run on the real data might give them: VGG16's AUC misses the paper's 0.999.
    inside = {("VGG16", "auc"): False, ("VGG16", "accuracy"): True, ("ResNet50", "accuracy"): True}
    rows = [
        {**row, "paper_inside_ci": inside.get((row["model"], row["metric"]), True), "comparable": True}
        for row in PAPER_ROWS
    ]
    table = nine_models.paper_comparison_table(rows)
    assert list(table.columns)[:4] == [
        ("accuracy", "paper"),
        ("accuracy", "this run"),
        ("accuracy", "difference"),
        ("accuracy", "inside CI"),
    ]
    assert table[("auc", "inside CI")].tolist() == ["no", "yes"]
    assert table[("accuracy", "inside CI")].tolist() == ["yes", "yes"]
    assert table.loc["VGG16", ("auc", "paper")] == pytest.approx(0.999)
