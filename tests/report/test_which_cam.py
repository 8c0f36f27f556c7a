"""The page "Which CAM should I trust?" from hand-made benchmark records (common.report.which_cam)."""

from __future__ import annotations

from common.report import which_cam


def estimate(value: float, n: int = 24) -> dict:
    return {"value": value, "ci95": [value - 0.05, value + 0.05], "n": n}


def benchmark_record(with_masks: bool = True) -> dict:
    """A benchmark of two methods and the random map: gradcam best on deletion, all tied elsewhere."""
    metrics = (["pointing_game", "energy_share", "iou"] if with_masks else []) + [
        "deletion_auc",
        "insertion_auc",
        "average_drop",
        "increase_in_confidence",
    ]
    values = {"gradcam": 0.2, "xgradcam": 0.25, "random": 0.8}
    return {
        "layer": "conv2_block3_out",
        "n": 24,
        "localisation": "scored" if with_masks else "no masks",
        "summary": "gradcam and xgradcam are among the best on every metric that separates the methods (deletion AUC).",
        "best": {
            m: ["gradcam", "xgradcam"] if m == "deletion_auc" else ["gradcam", "xgradcam", "random"] for m in metrics
        },
        "separating": ["deletion_auc"],
        "methods": {method: {m: estimate(value) for m in metrics} for method, value in values.items()},
    }


def run_record(benchmark: dict | None, spearman: list[float] | None = None) -> dict:
    explanations = {"ResNet50": {"gradcam": {"randomisation_spearman": spearman}}} if spearman else {}
    return {"cam_benchmark": benchmark, "explanations": explanations}


def test_the_ranking_names_the_best_only_where_the_tests_separate_methods():
    found = {
        "resnet50-gradcam": run_record(benchmark_record()),
        "nine-models": run_record(None),
        "iqoth": run_record(benchmark_record(with_masks=False)),
    }
    header, rows = which_cam.ranking_rows(found)
    assert header == ["metric", "resnet50-gradcam", "nine-models", "iqoth"]  # registry order
    by_metric = {row[0]: row[1:] for row in rows}
    assert by_metric["deletion AUC (lower is better)"] == [
        "gradcam and xgradcam",
        which_cam.NOT_RUN,
        "gradcam and xgradcam",
    ]
    assert by_metric["insertion AUC"] == [which_cam.ALL_TIE, which_cam.NOT_RUN, which_cam.ALL_TIE]
    assert by_metric["pointing game"] == [which_cam.ALL_TIE, which_cam.NOT_RUN, "no masks"]


def test_the_page_shows_every_benchmark_its_sentence_and_the_randomisation_check():
    found = {
        "resnet50-gradcam": run_record(benchmark_record(), spearman=[1.0, 0.4, 0.12]),
        "iqoth": run_record(benchmark_record(with_masks=False)),
        "multi-organ": run_record(None),
    }
    page = which_cam.which_cam_markdown(found)
    assert page.startswith("# Which CAM should I trust?")
    assert "[The experiment's page](../experiments/resnet50-gradcam): 24 images at layer `conv2_block3_out`." in page
    assert "re-initialising the top 3 layers correlates with the trained model's by ρ = 0.12" in page
    assert "| gradcam | 0.200 (0.15–0.25) ◆ |" in page  # pointing game, tied
    assert "| random | 0.800 (0.75–0.85) ◆ | " in page and "0.800 (0.75–0.85) |" in page  # not on deletion
    iqoth = page.split("## IQ-OTH")[1] if "## IQ-OTH" in page else page.split("iqoth)")[1]
    assert "pointing game" not in iqoth.split(":::")[1]  # no localisation columns without masks
    assert "## Multi" not in page


def test_without_any_benchmark_the_page_says_so():
    assert "No run of this book benchmarked its CAM methods." in which_cam.which_cam_markdown(
        {"iqoth": run_record(None)}
    )


def test_a_pooled_benchmark_says_over_how_many_models():
    pooled = benchmark_record() | {
        "layer": "each model's own",
        "n": 36,
        "models": {"VGG16": benchmark_record()} | {"ResNet50": benchmark_record()},
    }
    page = which_cam.which_cam_markdown({"nine-models": run_record(pooled)})
    assert "36 images pooled over 2 models, each image scored with its own model's maps" in page
    assert "at layer `each model's own`" not in page
