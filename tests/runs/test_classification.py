"""The two ResNet50 experiments (resnet50-gradcam, iqoth) run end to end in the smoke profile."""

import pytest

from common.config import registry
from common.report.results import METRICS_KEYS
from tests.runs.checks import assert_metric_entry, assert_png

METRIC_NAMES = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
FIGURES = ("samples", "training_curves", "confusion_matrix", "roc_curves", "cam_grid")


@pytest.mark.parametrize(
    "experiment_id, models",
    [
        pytest.param(
            "resnet50-gradcam",
            ["ResNet50", "plain_cnn", "resnet18", "resnet32", "ResNet50_no_augment", "cnn3d", "resnet3d_18"],
            marks=pytest.mark.notebook("resnet50-gradcam"),
        ),
        pytest.param("iqoth", ["ResNet50"], marks=pytest.mark.notebook("iqoth")),
    ],
)
def test_smoke_run_writes_metrics_with_cis_and_figures(smoke_results, experiment_id, models):
    record = smoke_results(experiment_id)
    metrics = record["metrics"]
    assert set(METRICS_KEYS) <= set(metrics)
    assert metrics["experiment"] == experiment_id and metrics["profile"] == "smoke"
    assert metrics["versions"]["tensorflow"].startswith("2.")
    n_test = sum(metrics["data"]["class_counts"]["test"].values())
    assert sorted(metrics["models"]) == sorted(models)
    volumes = (metrics.get("table_one") or {}).get("volumes") or {}
    for name in models:
        scores = metrics["models"][name]
        for metric in METRIC_NAMES:
            assert_metric_entry(scores[metric])
        matrix = scores["confusion_matrix"]
        assert len(matrix) == len(registry.experiment(experiment_id)["classes"])
        # The 3D rows of Table I are tested on their own volumes, the others on the run's test images.
        n_volumes = sum(volumes.get("split_counts", {}).get("test", {}).values())
        assert sum(map(sum, matrix)) == (n_volumes if name in volumes.get("models", {}) else n_test)
    for name in FIGURES:
        assert_png(record["dir"] / "figures" / f"{name}.png")
    assert (record["dir"] / "history.csv").exists() and (record["dir"] / "model.keras").exists()
    assert (record["dir"] / f"{experiment_id}.ipynb").exists()
    # both splits are reported; phantoms hold no duplicates, so the two coincide
    assert set(metrics["splits"]) == {"image", "grouped"}
    assert metrics["splits"]["grouped"]["models"]["ResNet50"] == metrics["models"]["ResNet50"]
    assert metrics["splits"]["image"]["same_as"] == "grouped"
    assert metrics["train_test_duplicate_share"] == 0


@pytest.mark.notebook("resnet50-gradcam")
def test_explanations_are_scored_per_method(smoke_results):
    metrics = smoke_results("resnet50-gradcam")["metrics"]
    explanations = metrics["explanations"]["ResNet50"]
    assert set(explanations) == {"gradcam", "gradcam++", "scorecam"}
    # Grad-CAM is also scored at the finer layer chosen on the validation split, one of the candidates.
    selection = metrics["cam_layer_selection"]
    assert set(selection["validation"]) == set(metrics["parameters"]["cam_layer_candidates"])
    best = max(scores["pointing_game"]["value"] for scores in selection["validation"].values())
    assert selection["validation"][selection["chosen"]]["pointing_game"]["value"] == best
    finer = metrics["explanations"][f"ResNet50 at {selection['chosen']}"]
    assert set(finer) == {"gradcam"}
    for scores in [*explanations.values(), *finer.values()]:
        for name in ("pointing_game", "energy_share", "iou"):
            assert_metric_entry(scores[name])


@pytest.mark.parametrize(
    "experiment_id",
    [
        pytest.param("resnet50-gradcam", marks=pytest.mark.notebook("resnet50-gradcam")),
        pytest.param("iqoth", marks=pytest.mark.notebook("iqoth")),
    ],
)
def test_every_cam_method_and_the_random_map_are_benchmarked_on_the_same_images(smoke_results, experiment_id):
    record = smoke_results(experiment_id)
    metrics = record["metrics"]
    found = metrics["cam_benchmark"]
    params = metrics["parameters"]
    assert list(found["methods"]) == params["benchmark_methods"] and "random" in found["methods"]
    assert found["n"] == params["benchmark_images"] and found["localisation"] == "scored"
    assert found["layer"] == metrics["cam_layer_selection"]["chosen"]  # where the methods can differ
    for scores in found["methods"].values():
        for name in ("pointing_game", "energy_share", "iou", "deletion_auc", "insertion_auc", "average_drop"):
            assert_metric_entry(scores[name])
            assert scores[name]["n"] == found["n"]
    tests = found["paired_tests"]["metrics"]
    assert tests["pointing_game"]["test"] == "exact McNemar" and tests["deletion_auc"]["better"] == "lower"
    assert_png(record["dir"] / "figures" / "cam_methods.png")


@pytest.mark.notebook("resnet50-gradcam")
def test_paper_table_is_generated_from_the_registry(smoke_results):
    metrics = smoke_results("resnet50-gradcam")["metrics"]
    rows = {(row["model"], row["metric"]): row for row in metrics["paper_vs_run"]}
    # ResNet-50-Grad's 98.2% accuracy stands beside this run's ResNet50.
    assert rows[("ResNet50", "accuracy")]["paper"] == pytest.approx(0.982)
    assert rows[("ResNet50", "accuracy")]["this_run"] == metrics["models"]["ResNet50"]["accuracy"]["value"]
    assert ("plain_cnn", "accuracy") in rows
    # Every row of Table I has a model of this run, named beside its row, with an interval.
    claims = registry.paper_claims("resnet50-gradcam")
    assert {row["paper_model"] for row in metrics["paper_vs_run"]} == set(claims["models"])
    for paper_model, run_model in claims["run_model_for"].items():
        row = rows[(run_model, "accuracy")]
        assert row["paper_model"] == paper_model and row["ci95"][0] <= row["this_run"] <= row["ci95"][1]
    assert {row["model"] for row in metrics["paper_vs_run"] if row.get("data")} == set(claims["run_model_for"].values())
    volume_models = set(metrics["table_one"]["volumes"]["models"])
    assert volume_models == {"cnn3d", "resnet3d_18"}
    assert {row["model"] for row in metrics["paper_vs_run"] if "volumes" in row["data"]} == volume_models
    # The paper's own inconsistencies are noted: three F1 rows and ResNet-50 vs ResNet-50-Grad.
    assert [entry["kind"] for entry in metrics["table_one"]["paper_consistency"]] == ["f1"] * 3 + ["same_network"]
