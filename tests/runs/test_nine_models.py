"""The nine-models experiment runs end to end in the smoke profile, all nine models."""

import nbformat
import pytest

from common.config import registry
from common.experiments import nine_models
from common.report.results import METRICS_KEYS
from tests.runs.checks import assert_metric_entry, assert_png

EXPERIMENT = "nine-models"
NINE = [
    "DenseNet121",
    "MobileNetV2",
    "InceptionV3",
    "InceptionResNetV2",
    "ResNet50",
    "ResNet101",
    "VGG16",
    "VGG19",
    "Xception",
]
FIGURES = (
    "samples",
    "roc_curves",
    "metric_bars",
    "confusion_matrix",
    "confusion_matrix_grid",
    "training_curves",
    "cam_grid",
    "cam_grid_chosen_layers",
    "cam_layers_ResNet50",
    "cam_layers_VGG19",
    "cam_layers_InceptionV3",
    "explanation_scores",
    "cam_methods",
)
COSTS = ("params_total", "params_trainable", "train_seconds", "inference_images_per_s")


@pytest.mark.notebook(EXPERIMENT)
def test_one_entry_per_model_with_metrics_and_costs(smoke_results):
    record = smoke_results(EXPERIMENT)
    metrics = record["metrics"]
    assert set(METRICS_KEYS) <= set(metrics)
    assert metrics["profile"] == "smoke" and metrics["parameters"]["models"] == NINE
    assert list(metrics["models"]) == NINE
    n_test = sum(metrics["data"]["class_counts"]["test"].values())
    for name, entry in metrics["models"].items():
        for metric in nine_models.TABLE_METRICS:
            assert_metric_entry(entry[metric])
        assert sum(map(sum, entry["confusion_matrix"])) == n_test
        assert 0 < entry["params_trainable"] <= entry["params_total"], name
        assert entry["train_seconds"] > 0 and entry["inference_images_per_s"] > 0, name
    # Each architecture at its own size: the smallest it accepts in the smoke profile.
    assert metrics["models"]["InceptionV3"]["input_size"] == 75
    assert metrics["models"]["Xception"]["input_size"] == 71
    assert metrics["model_settings"]["ResNet50"]["preprocess"] == "resnet50"


@pytest.mark.notebook(EXPERIMENT)
def test_comparison_table_paper_rows_and_best_models(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    table = nine_models.comparison_table(metrics["models"])
    assert list(table.index) == NINE
    assert list(table.columns) == ["n", *nine_models.TABLE_METRICS, *nine_models.COST_COLUMNS]
    assert set(metrics["best_per_metric"]) == set(nine_models.TABLE_METRICS)
    paired = metrics["paired_tests"]["metrics"]
    for metric, marked in metrics["best_per_metric"].items():
        # The first marked model has the highest value; the others are those the paired test ties with it.
        best = metrics["models"][marked[0]][metric]["value"]
        assert all(entry[metric]["value"] <= best for entry in metrics["models"].values())
        tied = {model for model, found in paired[metric]["comparisons"].items() if found["tie"]}
        assert set(marked) == {paired[metric]["reference"], *tied}
    for name, entry in metrics["calibration"].items():
        assert (
            entry["kind"] == "binary"
            and 0 <= entry["ece"]["value"] <= 1
            and entry["ece"]["n"] == metrics["models"][name]["n"]
        )
    rows = {(row["model"], row["metric"]): row for row in metrics["paper_vs_run"]}
    assert len(rows) == 9 * 6
    assert rows[("ResNet50", "accuracy")]["paper"] == pytest.approx(0.977)
    assert rows[("InceptionV3", "specificity")]["paper"] == pytest.approx(0.980)
    assert rows[("VGG19", "f1")]["this_run"] == metrics["models"]["VGG19"]["f1"]["value"]
    assert set(metrics["paper"]) == set(registry.paper_claims(EXPERIMENT)["models"])


@pytest.mark.notebook(EXPERIMENT)
def test_figures_cam_layers_and_explanations(smoke_results):
    record = smoke_results(EXPERIMENT)
    metrics = record["metrics"]
    for name in FIGURES:
        assert_png(record["dir"] / "figures" / f"{name}.png")
    layers = metrics["cam_layers"]
    assert layers["last"]["ResNet50"] == "conv5_block3_out" and layers["last"]["VGG19"] == "block5_conv4"
    assert "conv5_block3_2_conv" in layers["by_model"]["ResNet50"]["layers"]
    groups = layers["by_model"]["VGG19"]["groups"]
    assert groups["frozen"] and groups["trainable"] and not set(groups["frozen"]) & set(groups["trainable"])
    # Each model's Grad-CAM at its last layer, and at the finer layer chosen on the validation split:
    # one of its candidates, the one with the highest validation pointing game.
    chosen = layers["chosen_on_validation"]
    assert set(chosen) == set(NINE)
    for name, selection in chosen.items():
        validation = selection["validation"]
        assert list(validation) == selection["candidates"] and selection["chosen"] in validation, name
        best = max(scores["pointing_game"]["value"] for scores in validation.values())
        assert validation[selection["chosen"]]["pointing_game"]["value"] == best
        assert set(selection["grids"]) == {layers["last"][name], *selection["candidates"]}
    assert set(metrics["explanations"]) == set(NINE) | {f"{name} at {chosen[name]['chosen']}" for name in NINE}
    for by_method in metrics["explanations"].values():
        assert set(by_method) == {"gradcam"}
        for score in nine_models.EXPLANATION_SCORES:
            assert_metric_entry(by_method["gradcam"][score])  # undefined (None) when no image qualifies
            assert by_method["gradcam"][score]["n"] >= 0
    notebook = nbformat.read(record["dir"] / f"{EXPERIMENT}.ipynb", as_version=4)
    assert not any(
        output.get("output_type") == "error" for cell in notebook.cells for output in cell.get("outputs", [])
    )


@pytest.mark.notebook(EXPERIMENT)
def test_every_model_benchmarks_every_cam_method_and_the_pool_tests_them_together(smoke_results):
    metrics = smoke_results(EXPERIMENT)["metrics"]
    found, params = metrics["cam_benchmark"], metrics["parameters"]
    assert list(found["models"]) == NINE and found["layer"] == "each model's own"
    assert found["n"] == sum(model["n"] for model in found["models"].values())
    chosen = metrics["cam_layers"]["chosen_on_validation"]
    for name, model in found["models"].items():
        assert list(model["methods"]) == params["benchmark_methods"] and "random" in model["methods"]
        assert 1 <= model["n"] <= params["benchmark_images"] and model["localisation"] == "scored"
        if name in chosen and chosen[name]["chosen"]:
            assert model["layer"] == chosen[name]["chosen"], name  # the layer its explanation was scored at
        for scores in model["methods"].values():
            for metric in (
                "pointing_game",
                "energy_share",
                "iou",
                "deletion_auc",
                "insertion_auc",
                "randomisation_spearman",
            ):
                assert_metric_entry(scores[metric])
                assert scores[metric]["n"] == model["n"]
        assert model["paired_tests"]["metrics"]["deletion_auc"]["better"] == "lower"
    assert found["methods"]["random"]["randomisation_spearman"]["value"] == pytest.approx(1.0)
