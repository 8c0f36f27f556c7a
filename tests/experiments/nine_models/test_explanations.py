"""Tests of common.experiments.nine_models.explanations: layer groups, shown images, the driver's records."""

import dataclasses
import math
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest

from common.config import registry
from common.errors import ParameterError
from common.experiments import nine_models
from common.explain.driver import Explanation, ExplanationSet, LayerSelection


def test_build_model_and_layer_groups_follow_the_papers_freezing():
    params = registry.resolve("nine-models", "paper")
    # The paper's VGG16 settings at a CPU size (same layers), without downloading weights.
    settings = dataclasses.replace(nine_models.model_settings(params, "VGG16"), input_size=32, weights=None)
    model = nine_models.build_model(settings, 2)
    trainable_convs = [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.trainable
    ]
    groups = nine_models.layer_groups(model, settings)
    # Last 7 layers: block5_pool, block5_conv3..1, block4_pool, block4_conv3, block4_conv2.
    assert (
        groups["trainable"]
        == trainable_convs
        == ["block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3"]
    )
    assert groups["frozen"][0] == "block1_conv1" and groups["frozen"][-1] == "block4_conv1"
    assert len(groups["frozen"]) == 8
    thinned = nine_models.layer_groups(model, settings, max_layers=3)
    assert thinned["frozen"] == ["block1_conv1", "block3_conv1", "block4_conv1"]
    assert thinned["trainable"][0] == "block4_conv2" and thinned["trainable"][-1] == "block5_conv3"
    # A run that trains every layer keeps the paper's split for the groups.
    everything = dataclasses.replace(settings, trainable_last_layers=None)
    assert nine_models.layer_groups(nine_models.build_model(everything, 2), everything) == groups
    with pytest.raises(ParameterError, match="max_layers"):
        nine_models.layer_groups(model, settings, max_layers=0)


def test_correct_by_all_prefers_images_every_model_got_right():
    test = pd.DataFrame({"label": ["cancer", "cancer", "pneumonia", "cancer"], "label_index": [1, 1, 0, 1]})
    right = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    one_wrong = right.copy()
    one_wrong[0] = [0.8, 0.2]
    runs = {"A": SimpleNamespace(probabilities=right), "B": SimpleNamespace(probabilities=one_wrong)}
    assert nine_models.correct_by_all(runs, test, "cancer", 2).tolist() == [1, 3]
    assert nine_models.correct_by_all(runs, test, "cancer", 5).tolist() == [1, 3, 0]


def score(value, n, low=0.1, high=0.9):
    return {"value": value, "ci95": [low, high], "n": n, "n_skipped_empty_mask": 0}


def test_explanation_table_has_one_row_per_model_and_method():
    scores = {
        "A": {"gradcam": {"pointing_game": score(0.5, 4), "energy_share": score(0.25, 4), "iou": score(0.125, 4)}},
        "A at b2": {
            "gradcam": {"pointing_game": score(float("nan"), 0), "energy_share": score(0.0, 0), "iou": score(0.0, 0)}
        },
    }
    table = nine_models.explanation_table(scores)
    assert list(table.index) == [("A", "gradcam"), ("A at b2", "gradcam")]
    assert list(table.columns) == list(nine_models.EXPLANATION_SCORES)
    assert table.loc[("A", "gradcam"), "pointing_game"] == "0.500 (0.10–0.90), n = 4"
    assert table.loc[("A", "gradcam"), "iou"] == "0.125 (0.10–0.90), n = 4"
    assert (table.loc[("A at b2", "gradcam")] == "no image (n = 0)").all()


def explanation(layer, scores):
    return Explanation(
        np.array([3, 5]),
        layer,
        np.ones((2, 4, 4), bool),
        {"gradcam": np.zeros((2, 4, 4))},
        {"gradcam": scores},
        {"gradcam": 0.1},
    )


def test_the_drivers_records_fill_scores_and_layer_choices():
    out = nine_models.ModelExplanations(positions=np.array([0, 1]), last_layer={"A": "last", "B": "lastB"})
    validation = {"fine": {"pointing_game": score(1.0, 2), "energy_share": score(0.5, 2), "iou": score(0.3, 2)}}
    scored = ExplanationSet(
        "A",
        explanation("last", validation["fine"]),
        LayerSelection("fine", validation, 2, 0.5),
        explanation("fine", validation["fine"]),
        {"last": (2, 2), "fine": (4, 4)},
    )
    assert out.add_scores("A", scored, ["gradcam"], ["fine"], n_test=8) == "fine"
    # The scored images' pointing game, per test image (NaN where not scored), for the contrast-detail analysis.
    flags = out.pointed["A"]
    assert flags.shape == (8,) and np.isfinite(flags).sum() == len(scored.last.positions)
    assert out.scores["A"]["gradcam"] is scored.last.scores["gradcam"]
    assert out.scores["A at fine"] == {"gradcam": validation["fine"]}
    assert out.selections["A"] == {
        "chosen": "fine",
        "validation": validation,
        "n": 2,
        "seconds": 0.5,
        "candidates": ["fine"],
        "grids": {"last": [2, 2], "fine": [4, 4]},
    }
    # No test image scored: every method has undefined scores, and there is no choice.
    assert out.add_scores("B", None, ["gradcam", "scorecam"], ["fine"], n_test=8) is None
    assert set(out.scores["B"]) == {"gradcam", "scorecam"} and "B" not in out.selections
    for entry in out.scores["B"]["scorecam"].values():
        assert math.isnan(entry["value"]) and all(map(math.isnan, entry["ci95"])) and entry["n"] == 0
    out.chosen_layer_cams["A"] = np.zeros((2, 4, 4))
    assert out.chosen_labels() == {"A at fine": "A"}
    assert list(out.chosen_rows()) == ["A at fine"]
    table = out.selection_table()
    assert table.loc["A", "last layer"] == "last (2 x 2)" and table.loc["A", "chosen on validation"] == "fine (4 x 4)"
    assert table.loc["A", "pointing_game, chosen"] == "1.00 (n = 2)"


def _benchmark(n: int, gap: float):
    """A hand-made benchmark of gradcam and the random map on n images: gradcam's deletion AUC lower by ``gap``."""
    from common.evaluation.paired import paired_score_comparison
    from common.explain.benchmark import Benchmark
    from common.explain.metric_names import LOWER_IS_BETTER

    rng = np.random.default_rng(n)
    noise = 0.01 * rng.standard_normal(n)
    per_image = {
        "gradcam": {"deletion_auc": 0.3 + noise, "insertion_auc": 0.6 + noise},
        "random": {"deletion_auc": 0.3 + gap + noise[::-1], "insertion_auc": 0.6 + noise[::-1]},
    }
    comparison = paired_score_comparison(per_image, lower_is_better=LOWER_IS_BETTER, n_resamples=200)
    cams = {method: np.zeros((n, 4, 4)) for method in per_image}
    return Benchmark(("gradcam", "random"), "conv", np.arange(n), False, per_image, comparison, {}, cams, 0, 200)


def test_the_models_benchmarks_pool_and_say_when_no_model_alone_can_separate_methods():
    few = nine_models.ModelExplanations(positions=np.arange(2), benchmarks={"A": _benchmark(4, 0.5)})
    assert few.separating_models() == []
    # Four images: an exact paired test's smallest two-sided p-value is 2/16, above 0.05 however large the gap.
    assert "cannot give a p-value below 2/2^4 = 0.125" in few.benchmark_note()
    both = nine_models.ModelExplanations(
        positions=np.arange(2), benchmarks={"A": _benchmark(4, 0.5), "B": _benchmark(12, 0.5)}
    )
    assert both.separating_models() == ["B"] and both.benchmark_note().startswith("On its own images, B separates")
    table = both.benchmark_table()
    assert list(table.index) == ["A (n = 4)", "B (n = 12)"]
    assert table.loc["B (n = 12)", "deletion AUC (lower is better)"] == "gradcam"
    assert table.loc["A (n = 4)", "deletion AUC (lower is better)"] == "all tie"
    record = both.benchmark_record()
    assert record["n"] == 16 and set(record["models"]) == {"A", "B"} and record["best"]["deletion_auc"] == ["gradcam"]
    assert nine_models.ModelExplanations(positions=np.arange(2)).benchmark_record() is None
