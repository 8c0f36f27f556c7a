"""The gradcam-3d experiment (3D CNN, k-fold CV, 3D Grad-CAM) runs end to end in the smoke profile."""

import numpy as np
import pytest

from common import models
from common.config import registry
from common.report.results import METRICS_KEYS
from tests.runs.checks import assert_metric_entry, assert_png

EXPERIMENT = "gradcam-3d"
CV_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
FIGURES = (
    "dicom_slices",
    "dicom_volume",
    "sobel",
    "training_curves",
    "confusion_matrix",
    "roc_curves",
    "cam_grid",
    "cam_mip",
    "cam_views",
)


@pytest.mark.notebook(EXPERIMENT)
def test_cross_validated_metrics_have_folds_and_cis(smoke_results):
    record = smoke_results(EXPERIMENT)
    metrics = record["metrics"]
    params = registry.resolve(EXPERIMENT, "smoke")
    assert set(METRICS_KEYS) <= set(metrics) and metrics["profile"] == "smoke"
    assert list(metrics["models"]) == ["CNN3D", *params.slice_models]
    entry = metrics["models"]["CNN3D"]
    folds = metrics["folds"]
    assert len(folds) == params.k_folds
    n_volumes = metrics["data"]["n_volumes"]
    assert n_volumes == 2 * params.n_per_class
    assert sum(fold["n_test"] for fold in folds) == n_volumes
    for fold in folds:
        # The validation part is carved from the training folds: fit + val + test = every volume.
        assert fold["n_fit"] + fold["n_val"] + fold["n_test"] == n_volumes
        assert 1 <= fold["epochs"] <= params.epochs
    for name in CV_METRICS:
        assert_metric_entry(entry[name])
        per_fold = [fold["metrics"][name]["value"] for fold in folds]
        assert entry[name]["folds"] == pytest.approx(per_fold)
        assert entry[name]["value"] == pytest.approx(np.mean(per_fold))
    # Summed over test folds, the confusion matrix counts every volume once.
    summed = np.sum([fold["metrics"]["confusion_matrix"] for fold in folds], axis=0)
    assert entry["confusion_matrix"] == summed.tolist() and summed.sum() == n_volumes


@pytest.mark.notebook(EXPERIMENT)
def test_paper_claims_stand_beside_the_run(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    rows = {(row["model"], row["metric"]): row for row in metrics["paper_vs_run"]}
    assert set(rows) == {("CNN3D", name) for name in ("accuracy", "precision", "recall", "f1")}
    assert rows[("CNN3D", "precision")]["paper"] == pytest.approx(0.90)
    assert rows[("CNN3D", "accuracy")]["this_run"] == metrics["models"]["CNN3D"]["accuracy"]["value"]


@pytest.mark.notebook(EXPERIMENT)
def test_figures_and_fold_models_are_written(smoke_results):
    record = smoke_results(EXPERIMENT)
    for name in FIGURES:
        assert_png(record["dir"] / "figures" / f"{name}.png")
    for fold in range(1, len(record["metrics"]["folds"]) + 1):
        assert (record["dir"] / f"fold_{fold}" / "history.csv").exists()
    assert (record["dir"] / f"{EXPERIMENT}.ipynb").exists()


@pytest.mark.notebook(EXPERIMENT)
def test_explanations_are_scored_when_a_tumour_is_found(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    explanations = metrics["explanations"]
    if not explanations:
        # A one-epoch smoke model may miss every tumour; then nothing can be explained.
        assert metrics["models"]["CNN3D"]["recall"]["value"] == 0
        return
    params = registry.resolve(EXPERIMENT, "smoke")
    # The paper's layer (last Conv3D) and the finer comparison layer, scored alike.
    assert set(explanations) == {"CNN3D", f"CNN3D at {params.compare_cam_layer}"}
    for scores in explanations.values():
        assert set(scores) >= set(params.cam_methods)
        for method in params.cam_methods:
            for name in ("pointing_game", "energy_share", "iou"):
                assert_metric_entry(scores[method][name])
                assert 1 <= scores[method][name]["n"] <= params.n_explain
    steps = explanations["CNN3D"]["gradcam"]["randomisation_spearman"]
    assert 1 <= len(steps) <= params.randomisation_layers
    assert all(-1 <= value <= 1 for value in steps)


@pytest.mark.notebook(EXPERIMENT)
def test_slice_baselines_have_per_fold_values_cis_and_a_pooling_chosen_per_fold(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    params = registry.resolve(EXPERIMENT, "smoke")
    assert params.slice_models == ["EfficientNetB0", "ResNet50"]  # every new model runs in smoke, tiny
    cnn_folds = metrics["folds"]
    for name in params.slice_models:
        entry, record = metrics["models"][name], metrics["slice_baselines"][name]
        assert len(record["folds"]) == params.k_folds
        for mine, cnn in zip(record["folds"], cnn_folds):
            # The 3D CNN's folds: the same volumes fitted, validated and tested.
            assert {k: mine[k] for k in ("fold", "n_fit", "n_val", "n_test")} == {
                k: cnn[k] for k in ("fold", "n_fit", "n_val", "n_test")
            }
            assert mine["pooling"]["pooling"] in params.slice_poolings
            assert set(mine["pooling"]["validation"]) == set(params.slice_poolings)
            assert mine["pooling"]["n_val"] == mine["n_val"]
        for metric in CV_METRICS:
            assert_metric_entry(entry[metric])
            per_fold = [fold["metrics"][metric]["value"] for fold in record["folds"]]
            assert entry[metric]["folds"] == pytest.approx(per_fold)
        assert sum(map(sum, entry["confusion_matrix"])) == metrics["data"]["n_volumes"]
        assert record["slices_per_volume"] == params.slices_per_volume
        side = max(params.input_shape[0], models.min_input_size(name))  # the volume's side, or the smallest input
        assert record["input_shape"] == [side, side, 3]
    # The 3D CNN and its baselines, tested against each other on the same out-of-fold volumes.
    tests = metrics["paired_tests"]
    assert tests["n"] == metrics["data"]["n_volumes"]
    assert set(tests["metrics"]["accuracy"]["values"]) == {"CNN3D", *params.slice_models}
