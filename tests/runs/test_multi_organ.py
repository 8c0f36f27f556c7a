"""The multi-organ experiment (seed 003) runs end to end in the smoke profile."""

import json

import pytest

from common.config import registry
from common.report.results import METRICS_KEYS
from tests.runs.checks import assert_metric_entry, assert_png

EXPERIMENT = "multi-organ"
METRIC_NAMES = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
FIGURES = (
    "samples",
    "training_curves",
    "confusion_matrix",
    "roc_curves",
    "per_organ_accuracy",
    "organ_confusion_matrix",
    "cam_contours",
)
ORGANS = ["brain", "breast", "kidney", "lung"]


@pytest.mark.notebook(EXPERIMENT)
def test_smoke_run_writes_8_class_metrics_with_cis_and_figures(smoke_results):
    record = smoke_results(EXPERIMENT)
    metrics = record["metrics"]
    assert set(METRICS_KEYS) <= set(metrics)
    assert metrics["experiment"] == EXPERIMENT and metrics["profile"] == "smoke"
    assert list(metrics["models"]) == ["CNN"]
    scores = metrics["models"]["CNN"]
    for metric in METRIC_NAMES:
        assert_metric_entry(scores[metric])
    classes = registry.experiment(EXPERIMENT)["classes"]
    assert list(scores["per_class"]) == classes
    for entries in scores["per_class"].values():
        for metric in ("precision", "recall", "f1", "auc"):
            assert_metric_entry(entries[metric])
    n_test = sum(metrics["data"]["class_counts"]["test"].values())
    assert len(scores["confusion_matrix"]) == 8 and sum(map(sum, scores["confusion_matrix"])) == n_test
    for name in FIGURES:
        assert_png(record["dir"] / "figures" / f"{name}.png")
    assert (record["dir"] / "history.csv").exists() and (record["dir"] / "model.keras").exists()


@pytest.mark.notebook(EXPERIMENT)
def test_model_is_the_papers_cnn(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    assert metrics["parameter_count"] == {"weights": 3_305_096, "with_optimizer": 3_305_098}
    assert metrics["parameters"]["image_size"] == 128 and metrics["parameters"]["channels"] == 1
    assert metrics["parameters"]["batch_size"] == 32 and metrics["parameters"]["split_fractions"] == [0.7, 0.1, 0.2]


@pytest.mark.notebook(EXPERIMENT)
def test_organ_and_tumour_accuracies_agree_with_the_confusion_matrix(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    matrix = metrics["models"]["CNN"]["confusion_matrix"]
    n_test = sum(map(sum, matrix))
    # Classes come in (tumour, no tumour) pairs per organ: organ k owns rows/columns 2k, 2k+1.
    inside_blocks = sum(matrix[i][j] for i in range(8) for j in range(8) if i // 2 == j // 2)
    assert_metric_entry(metrics["organ_accuracy"])
    assert metrics["organ_accuracy"]["value"] == pytest.approx(inside_blocks / n_test)
    assert list(metrics["tumour_accuracy_per_organ"]) == ORGANS
    for k, organ in enumerate(ORGANS):
        entry = metrics["tumour_accuracy_per_organ"][organ]
        assert_metric_entry(entry)
        rows = matrix[2 * k : 2 * k + 2]
        tumour_right = sum(row[j] for i, row in enumerate(rows) for j in range(8) if j % 2 == i)
        assert entry["value"] == pytest.approx(tumour_right / sum(map(sum, rows)))


@pytest.mark.notebook(EXPERIMENT)
def test_explanations_and_paper_rows(smoke_results):
    record = smoke_results(EXPERIMENT)
    metrics = record["metrics"]
    assert set(metrics["explanations"]["CNN"]) == set(metrics["parameters"]["cam_methods"])
    for scores in metrics["explanations"]["CNN"].values():
        for name in ("pointing_game", "energy_share", "iou"):
            assert_metric_entry(scores[name])
    rows = {(row["model"], row["metric"]): row for row in metrics["paper_vs_run"]}
    assert rows[("CNN", "accuracy")]["paper"] == pytest.approx(0.9326)
    assert rows[("CNN", "accuracy")]["this_run"] == metrics["models"]["CNN"]["accuracy"]["value"]
    notebook = json.loads((record["dir"] / f"{EXPERIMENT}.ipynb").read_text())
    assert not any(
        output.get("output_type") == "error" for cell in notebook["cells"] for output in cell.get("outputs", [])
    )


@pytest.mark.notebook(EXPERIMENT)
def test_contour_maps_come_from_the_image_and_are_compared_with_gradcam(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    compared = metrics["contour_comparison"]
    assert 1 <= compared["n_images"] == len(compared["images"]) <= metrics["parameters"]["n_explain"]
    # Taken in turn from each tumour class: as many classes as images, up to the four.
    labels = [image["label"] for image in compared["images"]]
    assert set(labels) <= {f"{organ}_tumor" for organ in ORGANS}
    assert len(set(labels)) == min(len(labels), len(ORGANS))
    assert compared["rule"] == registry.section("image_contours")
    for group in compared["summary"].values():
        for name in ("contour_vs_cam", "contour_vs_lesion", "cam_vs_lesion"):
            assert_metric_entry(group[name])
            assert group[name]["n"] >= 1
    for image in compared["images"]:
        assert image["predicted_organ"] in ORGANS
        assert all(0.0 <= image[name] <= 1.0 for name in ("contour_vs_cam", "contour_vs_lesion", "cam_vs_lesion"))
    # Drawn from the image, the contour is not the heatmap's region again (which would overlap the lesion
    # exactly as much as the region does, on every image).
    assert any(abs(image["contour_vs_lesion"] - image["cam_vs_lesion"]) > 1e-6 for image in compared["images"])
