"""Tests of common.evaluation.paired on hand-made predictions whose p-values are known."""

import json

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import f1_score, roc_auc_score

from common.errors import DataError, ParameterError
from common.evaluation import paired
from common.evaluation.classification import _point_estimates
from common.evaluation.paired import _mcnemar, _SwapMetrics, paired_comparison, paired_score_comparison
from tests.scores import three_class_scores

NAMES = ["benign", "malignant"]


def probabilities_for(predicted, n_classes=2, confidence=0.8):
    """Probabilities whose arg-max is ``predicted``."""
    probs = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def wrong_on(labels, images):
    """Predictions equal to ``labels`` except on ``images``, where they are the other class."""
    predicted = labels.copy()
    predicted[images] = 1 - predicted[images]
    return probabilities_for(predicted)


def holm_by_hand(p_values):
    """Holm's step-down adjustment: sort, multiply by m, m - 1, ..., 1, carry the maximum, cap at 1."""
    order = np.argsort(p_values)
    adjusted = np.maximum.accumulate(np.asarray(p_values)[order] * np.arange(len(p_values), 0, -1))
    result = np.empty(len(p_values))
    result[order] = np.minimum(adjusted, 1)
    return result


def test_exact_mcnemar_by_hand():
    right_reference = np.array([True] * 10 + [False] * 9 + [True] * 5)
    right_model = np.array([False] * 1 + [True] * 9 + [True] * 9 + [True] * 5)
    p, (b, c) = _mcnemar(right_reference, right_model)
    assert (b, c) == (1, 9)
    # Exact McNemar: two-sided binomial of the 10 discordant images, 2 * P(X <= 1), X ~ Bin(10, 1/2).
    assert p == pytest.approx(2 * scipy.stats.binom.cdf(1, 10, 0.5)) == pytest.approx(0.021484375)


def test_holm_turns_a_raw_p_below_alpha_into_a_tie():
    labels = np.array([0, 1] * 20)
    # The reference is wrong on image 0 only; X, Y and Z miss 9, 6 and 5 images it gets right.
    probabilities = {
        "Reference": wrong_on(labels, [0]),
        "X": wrong_on(labels, list(range(1, 10))),  # b = 9, c = 1 (right on image 0)
        "Y": wrong_on(labels, [0, *range(10, 16)]),  # b = 6, c = 0
        "Z": wrong_on(labels, [0, *range(16, 21)]),  # b = 5, c = 0
    }
    result = paired_comparison(labels, probabilities, NAMES, metrics=("accuracy",))
    comparisons = {c.model: c for c in result.comparisons["accuracy"]}
    raw = [2 * scipy.stats.binom.cdf(1, 10, 0.5), 2 * 0.5**6, 2 * 0.5**5]  # 0.0215, 0.03125, 0.0625
    assert [comparisons[m].p for m in "XYZ"] == pytest.approx(raw)
    assert [comparisons[m].discordant for m in "XYZ"] == [(9, 1), (6, 0), (5, 0)]
    # Holm by hand: 0.0215 * 3 = 0.0645, max(0.03125 * 2, 0.0645), max(0.0625, 0.0645).
    assert [comparisons[m].p_holm for m in "XYZ"] == pytest.approx(holm_by_hand(raw))
    assert [comparisons[m].p_holm for m in "XYZ"] == pytest.approx([0.064453125] * 3)
    # X's raw p is below 0.05, but not after Holm: every model ties with the best.
    assert result.references["accuracy"] == "Reference"
    assert result.best("accuracy") == ["Reference", "Z", "Y", "X"]
    assert result.worse("accuracy") == []
    stricter = paired_comparison(labels, probabilities, NAMES, metrics=("accuracy",), alpha=0.1)
    assert stricter.best("accuracy") == ["Reference"] and stricter.worse("accuracy") == ["Z", "Y", "X"]
    record = result.record()["metrics"]["accuracy"]
    assert record["test"] == "exact McNemar" and record["reference"] == "Reference"
    assert record["comparisons"]["X"]["discordant"] == {"only_reference_right": 9, "only_model_right": 1}
    assert record["comparisons"]["X"]["tie"] is True
    json.dumps(result.record())  # plain JSON types throughout


def good_and_bad(n=200, seed=0):
    """Three-class labels, a good model, a copy of it and a model that guesses."""
    labels, good = three_class_scores(n, seed, boost=1.5)
    guessing = np.random.default_rng(seed + 1).dirichlet([1, 1, 1], n)
    return labels, {"Good": good, "Copy": good.copy(), "Guess": guessing}


def test_identical_model_ties_and_a_guessing_model_is_worse_in_every_metric():
    labels, probabilities = good_and_bad()
    result = paired_comparison(labels, probabilities, ["a", "b", "c"], n_resamples=500)
    for metric in result.metrics:
        assert result.references[metric] == "Good", metric
        copy = next(c for c in result.comparisons[metric] if c.model == "Copy")
        assert copy.p == 1.0 and copy.tie, metric
        assert result.best(metric) == ["Good", "Copy"], metric
        assert result.worse(metric) == ["Guess"], metric
    table = result.table("f1")
    assert table.loc["Good", "verdict"] == "best" and table.loc["Copy", "verdict"] == "tie with best"
    assert table.loc["Guess", "verdict"].startswith("worse (p ")
    good_f1 = f1_score(labels, probabilities["Good"].argmax(axis=1), average="macro")
    assert table.loc["Good", "value"] == f"{good_f1:.3f}"
    accuracy = result.table()
    assert accuracy.loc["Copy", "only best right"] == 0 and accuracy.loc["Copy", "only this right"] == 0
    assert list(accuracy.index) == ["Good", "Copy", "Guess"]
    assert result.summary().splitlines()[0] == (
        "- Accuracy: Good is best, tied with Copy (Holm-adjusted exact McNemar, alpha 0.05); 1 model is worse."
    )
    assert "AUC: Good is best, tied with Copy (Holm-adjusted paired permutation test, alpha 0.05)" in result.summary()


def test_permutation_statistic_equals_the_metrics_of_swapped_predictions():
    labels, probabilities = good_and_bad(n=60)
    good, guess = probabilities["Good"], probabilities["Guess"]
    swaps = _SwapMetrics(labels, good, guess, positive=2, unit_of_row=np.arange(60))
    swapped = np.random.default_rng(3).random(60) < 0.5
    mixed_a = np.where(swapped[:, None], guess, good)
    mixed_b = np.where(swapped[:, None], good, guess)
    for k, metric in enumerate(("accuracy", "precision", "recall", "specificity", "f1", "auc")):
        expected = _point_estimates(labels, mixed_a, 2)[k] - _point_estimates(labels, mixed_b, 2)[k]
        assert swaps.difference(metric, swapped[None, :])[0] == pytest.approx(expected), metric
    unswapped = swaps.difference("auc", np.zeros((1, 60), bool))[0]
    assert unswapped == pytest.approx(
        roc_auc_score(labels, good, multi_class="ovr") - roc_auc_score(labels, guess, multi_class="ovr")
    )


def test_groups_swap_together_and_give_the_exact_permutation_p():
    # 4 patients x 4 slices; the reference is always right, the other model always wrong.
    labels = np.array([0, 1] * 8)
    groups = np.repeat(np.arange(4), 4)
    probabilities = {"Right": probabilities_for(labels), "Wrong": probabilities_for(1 - labels)}
    result = paired_comparison(labels, probabilities, NAMES, metrics=("accuracy",), groups=groups)
    [comparison] = result.comparisons["accuracy"]
    # All 2^4 sign patterns of the 4 groups: only "no swap" and "all swapped" reach |difference| = 1.
    assert comparison.p == pytest.approx(2 / 16) and comparison.tie
    assert comparison.discordant == (16, 0)
    assert result.tests["accuracy"] == "paired permutation test over 4 groups"
    assert result.n_groups == 4 and result.record()["n_groups"] == 4


def test_single_model_has_no_comparison():
    labels, probabilities = good_and_bad(n=40)
    result = paired_comparison(labels, {"Good": probabilities["Good"]}, ["a", "b", "c"])
    assert result.best("auc") == ["Good"] and result.comparisons["auc"] == ()
    assert result.table().loc["Good", "verdict"] == "only model (no comparison)"
    assert result.summary().splitlines()[0] == "- Accuracy: Good is the only model; there is nothing to compare."


def test_bad_inputs_raise_named_errors():
    labels, probabilities = good_and_bad(n=40)
    with pytest.raises(ParameterError, match="metrics"):
        paired_comparison(labels, probabilities, ["a", "b", "c"], metrics=("kappa",))
    with pytest.raises(ParameterError, match="alpha"):
        paired_comparison(labels, probabilities, ["a", "b", "c"], alpha=1.5)
    with pytest.raises(DataError, match="No models"):
        paired_comparison(labels, {}, ["a", "b", "c"])
    with pytest.raises(DataError, match="rows"):
        paired_comparison(labels, {"Short": probabilities["Good"][:10]}, ["a", "b", "c"])
    result = paired_comparison(labels, probabilities, ["a", "b", "c"], metrics=("accuracy",))
    with pytest.raises(ParameterError, match="was not compared"):
        result.table("auc")


def test_per_image_hits_are_compared_by_exact_mcnemar_and_scores_by_the_exact_permutation_test():
    hits_best = np.ones(12, bool)
    hits_other = hits_best.copy()
    hits_other[:10] = False  # 10 images only the best hits, none only the other
    share_best = np.linspace(0.2, 0.9, 8)
    scores = {
        "A": {"pointing_game": hits_best, "energy_share": np.r_[share_best, share_best[:4]]},
        "B": {"pointing_game": hits_other, "energy_share": np.r_[share_best - 0.1, share_best[:4] - 0.1]},
    }
    comparison = paired_score_comparison(scores, n_resamples=10_000, alpha=0.05)
    assert comparison.references == {"pointing_game": "A", "energy_share": "A"}
    (hit,) = comparison.comparisons["pointing_game"]
    assert comparison.tests["pointing_game"] == "exact McNemar" and hit.discordant == (10, 0)
    assert hit.p == pytest.approx(2 * 0.5**10)  # exact binomial, two-sided
    (share,) = comparison.comparisons["energy_share"]
    # Every difference is 0.1: only the two all-same-sign swaps of the 2**12 are as extreme.
    assert comparison.tests["energy_share"] == "paired permutation test"
    assert share.p == pytest.approx(2 / 2**12) and not share.tie
    assert comparison.values["energy_share"]["A"] == pytest.approx(np.mean(scores["A"]["energy_share"]))
    assert comparison.n == 12 and json.dumps(comparison.record())


def test_lower_is_better_picks_the_lowest_mean_and_equal_scores_tie():
    deletion = np.linspace(0.1, 0.5, 10)  # 2 / 2**10 against random, times 2 by Holm
    scores = {
        "gradcam": {"deletion_auc": deletion},
        "random": {"deletion_auc": deletion + 0.3},
        "copy": {"deletion_auc": deletion.copy()},
    }
    comparison = paired_score_comparison(scores, lower_is_better=["deletion_auc"], n_resamples=1000)
    assert comparison.best("deletion_auc") == ["gradcam", "copy"]
    assert comparison.worse("deletion_auc") == ["random"]
    assert comparison.record()["metrics"]["deletion_auc"]["better"] == "lower"
    assert "Deletion auc: gradcam is best, tied with copy" in comparison.summary()
    table = comparison.table("deletion_auc")
    assert list(table.index) == ["gradcam", "copy", "random"] and table.loc["copy", "verdict"] == "tie with best"


def test_per_image_scores_that_do_not_line_up_are_refused():
    with pytest.raises(DataError, match="empty"):
        paired_score_comparison({})
    with pytest.raises(DataError, match="same images"):
        paired_score_comparison({"A": {"iou": np.ones(3)}, "B": {"iou": np.ones(4)}})
    with pytest.raises(DataError, match="expected"):
        paired_score_comparison({"A": {"iou": np.ones(3)}, "B": {"energy_share": np.ones(3)}})
    with pytest.raises(DataError, match="finite"):
        paired_score_comparison({"A": {"iou": np.ones(3)}, "B": {"iou": np.array([1.0, np.nan, 0.0])}})
    with pytest.raises(ParameterError, match="alpha"):
        paired_score_comparison({"A": {"iou": np.ones(3)}}, alpha=1.0)


@pytest.mark.parametrize(
    "p_values", [[0.01, 0.04, 0.03, 0.2], [0.5, 0.5, 0.01], [0.001], [], [0.02, 0.02, 0.9, 0.04, 0.3]]
)
def test_holm_matches_statsmodels(p_values):
    from statsmodels.stats.multitest import multipletests

    expected = multipletests(p_values, method="holm")[1] if p_values else np.array([])
    np.testing.assert_allclose(paired.holm(p_values), expected)


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2.
    np.testing.assert_allclose(paired.holm([0.01, 0.04, 0.03, 0.2]), [0.04, 0.09, 0.09, 0.2])


def test_paired_scores_of_one_image_tie_every_candidate():
    """One image cannot separate anything: every permutation p-value is 1, every candidate ties with the best."""
    found = paired_score_comparison(
        {
            "a": {"auc": np.array([0.9]), "hit": np.array([True])},
            "b": {"auc": np.array([0.1]), "hit": np.array([False])},
        }
    )
    assert found.n == 1 and found.worse("auc") == [] and found.worse("hit") == []
    assert [c.p for c in found.comparisons["auc"]] == [1.0]
