"""Every experiment's smoke run, run twice with the same profile and seed, gives the same numbers.

Each second run goes to its own results folder and may run beside the first
or beside another experiment: neither may change a number. Every number in
``metrics.json`` is compared, exactly: accuracies and their intervals, the
training curves, the explanation scores, the audit, the paper-vs-run rows.
Only what measures the machine rather than the run may differ (wall and CPU
times, throughput, memory), named by :data:`MACHINE_MEASURES`.

nine-models' second run trains two of its nine models, and resnet50-gradcam's
and gradcam-3d's leave out their extra models (Table I's other rows, the 2D
slice baselines; the conftest's ``SECOND_RUN_OPTIONS``): every number of the models both runs trained,
and every number that does not depend on which models ran (the data, the
audits), must equal the first run's; the comparisons between models (:data:`ACROSS_MODELS`, and
the CAM benchmark pooled over the models, though not each model's own) are
left out, as they change with the set.
"""

from __future__ import annotations

import re

import pytest

from common.config import registry

# A key anywhere on a number's path that says it measures the machine, not the run.
MACHINE_MEASURES = re.compile(r"(^|_)(time|times|seconds|s|speedup|throughput|memory|rss|mb|gb)(_|$)|per_s$")
# Sections of metrics.json that compare the models of a run, list its settings or its rows of a paper's table: they
# change with the set of models.
ACROSS_MODELS = ("paired_tests", "best_per_metric", "paper_vs_run", "parameters", "figures", "paper", "table_one")
# Parameters that list a run's models (nine-models' nine, resnet50-gradcam's Table I rows, gradcam-3d's 2D baselines).
MODEL_LISTS = ("models", "table_models", "slice_models")


def numbers(tree, path=()) -> dict[tuple, float]:
    """Every number in a parsed JSON tree by its path (list items by index), booleans excluded."""
    if isinstance(tree, dict):
        return {p: v for key, value in tree.items() for p, v in numbers(value, (*path, str(key))).items()}
    if isinstance(tree, list):
        return {p: v for index, value in enumerate(tree) for p, v in numbers(value, (*path, index)).items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {path: tree}
    return {}


def run_numbers(metrics: dict) -> dict[tuple, float]:
    """The numbers of a run's ``metrics.json`` that the run determines (not machine measures)."""
    return {
        path: value
        for path, value in numbers(metrics).items()
        if not any(isinstance(key, str) and MACHINE_MEASURES.search(key) for key in path)
    }


def test_machine_measures_are_told_apart_from_results():
    metrics = {
        "models": {"CNN": {"accuracy": {"value": 0.5, "ci": [0.2, 0.8]}}},
        "histories": {"CNN": {"loss": [0.7, 0.6], "time_s": [1.2, 1.1]}},
        "explanations": {"gradcam": {"pointing_game": 0.75}},
        "performance": {"wall_time_s": 30.1, "inference_images_per_s": 90.0, "batched_cam_speedup": 2.5},
        "environment": {"peak_rss_mb": 900},
        "audit": {"n_exact_pairs": 0, "trainable": True},
    }
    assert run_numbers(metrics) == {
        ("models", "CNN", "accuracy", "value"): 0.5,
        ("models", "CNN", "accuracy", "ci", 0): 0.2,
        ("models", "CNN", "accuracy", "ci", 1): 0.8,
        ("histories", "CNN", "loss", 0): 0.7,
        ("histories", "CNN", "loss", 1): 0.6,
        ("explanations", "gradcam", "pointing_game"): 0.75,
        ("audit", "n_exact_pairs"): 0,
    }


@pytest.mark.parametrize(
    "experiment_id",
    [pytest.param(e, marks=pytest.mark.notebook(e, twice=[e])) for e in registry.experiment_ids()],
)
def test_a_second_run_with_the_same_profile_and_seed_gives_identical_numbers(smoke_results, experiment_id):
    first_run, second_run = smoke_results(experiment_id)["metrics"], smoke_results.second(experiment_id)["metrics"]
    first, second = run_numbers(first_run), run_numbers(second_run)
    left_out = {
        model
        for key in MODEL_LISTS
        for model in set(first_run["parameters"].get(key) or ()) - set(second_run["parameters"].get(key) or ())
    }
    if left_out:  # a second run of fewer models: their numbers, and those no model changes
        first = {path: value for path, value in first.items() if not _across_models(path, left_out)}
        second = {path: value for path, value in second.items() if not _across_models(path, left_out)}
    assert len(first) > 50, f"{experiment_id}: only {len(first)} numbers in metrics.json"
    assert first.keys() == second.keys()
    differing = {path: (first[path], second[path]) for path in first if first[path] != second[path]}
    examples = dict(list(differing.items())[:10])
    assert not differing, f"{experiment_id}: {len(differing)} of {len(first)} numbers differ, e.g. {examples}"


def _across_models(path: tuple, left_out: set[str]) -> bool:
    """Whether a number's path compares models or names a model the second run left out."""
    pooled = path[0] == "cam_benchmark" and (len(path) < 2 or path[1] != "models")
    return (
        pooled
        or path[0] in ACROSS_MODELS
        or any(isinstance(key, str) and any(model in key for model in left_out) for key in path)
    )


def test_a_subset_run_is_compared_on_its_own_models_and_what_no_model_changes():
    assert _across_models(("models", "VGG16", "accuracy", "value"), {"VGG16"})
    assert _across_models(("explanations", "VGG16 at block3_conv3", "gradcam", "n"), {"VGG16"})
    assert _across_models(("paired_tests", "metrics", "accuracy", "p"), {"VGG16"})
    assert not _across_models(("models", "ResNet50", "accuracy", "value"), {"VGG16"})
    assert not _across_models(("audit", "exact_groups"), {"VGG16"})
    # The benchmark pooled over the models changes with the set; each remaining model's own does not.
    assert _across_models(("cam_benchmark", "methods", "gradcam", "deletion_auc", "value"), {"VGG16"})
    assert not _across_models(("cam_benchmark", "models", "ResNet50", "methods", "gradcam", "iou", "n"), {"VGG16"})
