"""Tests of common.evaluation.classification on hand-made labels whose answers are known."""

import time

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from common.errors import DataError, ParameterError
from common.evaluation.classification import (
    _point_estimates,
    _weighted_statistic,
    class_probabilities,
    classification_metrics,
    positive_index,
    roc_points,
)
from common.evaluation.intervals import wilson_interval
from tests.scores import three_class_scores

SUMMARY = ("accuracy", "precision", "recall", "specificity", "f1", "auc")


def probabilities_for(predicted, n_classes, confidence=0.8):
    """Probabilities whose arg-max is ``predicted``."""
    probs = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def noisy_three_class(n=240, seed=1):
    return three_class_scores(n, seed, boost=0.6)


def test_perfect_prediction_gives_one_with_wilson_intervals_below_one():
    labels = np.array([0] * 20 + [1] * 20)
    probs = probabilities_for(labels, 2, confidence=0.9)
    result = classification_metrics(labels, probs, ["benign", "malignant"], n_resamples=1000)
    # Proportions: Wilson on their own counts, so 40/40 right is not [1, 1].
    assert result["accuracy"]["value"] == 1.0
    assert result["accuracy"]["ci95"] == pytest.approx(list(wilson_interval(40, 40)))
    for name in ("precision", "recall", "specificity"):
        assert result[name]["value"] == 1.0
        assert result[name]["ci95"] == pytest.approx(list(wilson_interval(20, 20))), name
        assert result["ci_methods"][name] == "Wilson"
    assert result["accuracy"]["ci95"][0] < 0.92
    # F1 and AUC keep their intervals (bootstrap and DeLong), which are points here.
    assert result["f1"] == {"value": 1.0, "ci95": [1.0, 1.0]}
    assert result["auc"]["value"] == 1.0
    assert result["confusion_matrix"] == [[20, 0], [0, 20]]
    assert result["n"] == 40


def test_all_of_135_right_is_not_certainty():
    labels = np.array([0] * 60 + [1] * 75)
    result = classification_metrics(labels, probabilities_for(labels, 2), ["benign", "malignant"])
    low, high = result["accuracy"]["ci95"]
    # Wilson's lower end at 135/135: n / (n + z^2) = 135 / (135 + 1.95996^2).
    assert low == pytest.approx(135 / (135 + scipy.stats.norm.ppf(0.975) ** 2)) == pytest.approx(0.9723, abs=1e-4)
    assert high == 1.0


def test_known_confusion_matrix_gives_known_rates():
    # TN 50, FP 10, FN 5, TP 35 with "malignant" (index 1) positive.
    labels = np.array([0] * 60 + [1] * 40)
    predicted = np.array([0] * 50 + [1] * 10 + [0] * 5 + [1] * 35)
    result = classification_metrics(labels, probabilities_for(predicted, 2), ["benign", "malignant"])
    assert result["confusion_matrix"] == [[50, 10], [5, 35]]
    assert result["accuracy"]["value"] == pytest.approx(85 / 100)
    assert result["precision"]["value"] == pytest.approx(35 / 45)
    assert result["recall"]["value"] == pytest.approx(35 / 40)
    assert result["specificity"]["value"] == pytest.approx(50 / 60)
    assert result["f1"]["value"] == pytest.approx(70 / 85)
    # The negative class's recall is the positive class's specificity.
    assert result["per_class"]["benign"]["recall"]["value"] == pytest.approx(50 / 60)
    assert result["per_class"]["benign"]["specificity"]["value"] == pytest.approx(35 / 40)
    # Each proportion's interval is Wilson's on its own counts: precision is TP of TP + FP.
    assert result["accuracy"]["ci95"] == pytest.approx(list(wilson_interval(85, 100)))
    assert result["precision"]["ci95"] == pytest.approx(list(wilson_interval(35, 45)))
    assert result["recall"]["ci95"] == pytest.approx(list(wilson_interval(35, 40)))
    assert result["specificity"]["ci95"] == pytest.approx(list(wilson_interval(50, 60)))
    assert result["per_class"]["benign"]["precision"]["ci95"] == pytest.approx(list(wilson_interval(50, 55)))
    assert result["per_class"]["benign"]["recall"]["ci95"] == pytest.approx(list(wilson_interval(50, 60)))
    assert result["ci_methods"]["per_class"]["benign"]["precision"] == "Wilson"
    assert "bootstrap" in result["ci_methods"]["per_class"]["benign"]["f1"]


def test_positive_class_can_be_chosen_and_one_dimensional_scores_expand():
    labels = np.array([0] * 60 + [1] * 40)
    predicted = np.array([0] * 50 + [1] * 10 + [0] * 5 + [1] * 35)
    probs = probabilities_for(predicted, 2)
    as_columns = classification_metrics(labels, probs, ["benign", "malignant"])
    as_vector = classification_metrics(labels, probs[:, 1], ["benign", "malignant"])
    assert as_columns == as_vector
    benign_positive = classification_metrics(labels, probs, ["benign", "malignant"], positive="benign")
    assert benign_positive["precision"]["value"] == pytest.approx(50 / 55)
    assert benign_positive["recall"]["value"] == pytest.approx(50 / 60)
    with pytest.raises(ParameterError, match="positive='cancer'"):
        classification_metrics(labels, probs, ["benign", "malignant"], positive="cancer")


def test_intervals_bracket_values_and_are_deterministic_per_seed():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    first = classification_metrics(labels, scores, ["normal", "cancer"], seed=3)
    again = classification_metrics(labels, scores, ["normal", "cancer"], seed=3)
    other_seed = classification_metrics(labels, scores, ["normal", "cancer"], seed=4)
    assert first == again
    assert first["f1"]["ci95"] != other_seed["f1"]["ci95"]
    assert first["accuracy"]["ci95"] == other_seed["accuracy"]["ci95"]  # Wilson: no resampling
    for name in SUMMARY:
        low, high = first[name]["ci95"]
        assert low < first[name]["value"] < high, name
        assert high - low < 0.2, name
    assert first["ci_methods"]["auc"].startswith("DeLong")
    assert first["ci_methods"]["accuracy"] == "Wilson"
    assert "percentile bootstrap" in first["ci_methods"]["f1"]


@pytest.mark.parametrize("decimals", [None, 1], ids=["distinct-scores", "tied-scores"])
def test_bootstrap_statistic_matches_sklearn_for_whole_and_weighted_samples(decimals):
    labels, probs = noisy_three_class()
    if decimals is not None:
        probs = np.round(probs, decimals)
    n = labels.size
    units = np.arange(n)
    statistic = _weighted_statistic(labels, probs, 2, units, n)
    whole_sample = statistic(units[None, :])[:, 0]
    np.testing.assert_allclose(whole_sample, _point_estimates(labels, probs, 2))
    # A resample drawing rows with repetition equals sklearn on the repeated rows.
    drawn = np.random.default_rng(5).integers(0, n, n)
    np.testing.assert_allclose(statistic(drawn[None, :])[:, 0], _point_estimates(labels[drawn], probs[drawn], 2))


def test_three_classes_give_macro_averages_and_one_vs_rest_auc():
    labels, probs = noisy_three_class()
    names = ["normal", "benign", "malignant"]
    result = classification_metrics(labels, probs, names)
    predicted = probs.argmax(axis=1)
    assert result["precision"]["value"] == pytest.approx(precision_score(labels, predicted, average="macro"))
    assert result["recall"]["value"] == pytest.approx(recall_score(labels, predicted, average="macro"))
    assert result["f1"]["value"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert result["auc"]["value"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    for k, name in enumerate(names):
        assert result["per_class"][name]["auc"]["value"] == pytest.approx(roc_auc_score(labels == k, probs[:, k]))
        low, high = result["per_class"][name]["auc"]["ci95"]
        assert low <= result["per_class"][name]["auc"]["value"] <= high
    assert "bootstrap" in result["ci_methods"]["auc"]
    assert np.sum(result["confusion_matrix"]) == labels.size


def test_tiny_samples_with_single_class_resamples_do_not_crash():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.2, 0.1, 0.4, 0.9, 0.3, 0.4])
    result = classification_metrics(labels, scores, ["normal", "cancer"], groups=np.arange(10))
    low, high = result["auc"]["ci95"]
    assert np.isfinite(low) and np.isfinite(high) and low <= high


def test_grouped_bootstrap_resamples_whole_groups():
    # 20 patients x 15 slices; a patient's slices are all right or all wrong.
    labels = np.tile([0, 1, 0], 100)
    patient_correct = np.random.default_rng(2).random(20) < 0.75
    groups = np.repeat(np.arange(20), 15)
    predicted = np.where(patient_correct[groups], labels, 1 - labels)
    probs = probabilities_for(predicted, 2)
    per_image = classification_metrics(labels, probs, ["normal", "cancer"])
    per_patient = classification_metrics(labels, probs, ["normal", "cancer"], groups=groups)
    assert per_patient["accuracy"]["value"] == per_image["accuracy"]["value"]
    image_low, image_high = per_image["accuracy"]["ci95"]
    patient_low, patient_high = per_patient["accuracy"]["ci95"]
    assert patient_low <= per_patient["accuracy"]["value"] <= patient_high
    # Clustered errors: 20 independent units, not 300, so the interval is much wider.
    assert patient_high - patient_low > 2 * (image_high - image_low)
    assert "20 groups" in per_patient["ci_methods"]["auc"]
    # Accuracy: the cluster-aware Wilson interval; a patient's 15 slices count about once.
    assert per_patient["ci_methods"]["accuracy"].startswith("Wilson, effective n from 20 groups (design effect")
    right = int(patient_correct.sum())
    assert per_patient["accuracy"]["ci95"] == pytest.approx(list(wilson_interval(right, 20)), abs=0.04)


def test_singleton_groups_give_the_plain_wilson_intervals():
    labels = np.array([0] * 60 + [1] * 40)
    predicted = np.array([0] * 50 + [1] * 10 + [0] * 5 + [1] * 35)
    probs = probabilities_for(predicted, 2)
    plain = classification_metrics(labels, probs, ["benign", "malignant"])
    singletons = classification_metrics(labels, probs, ["benign", "malignant"], groups=np.arange(100))
    for name in ("accuracy", "precision", "recall", "specificity"):
        assert singletons[name]["ci95"] == pytest.approx(plain[name]["ci95"]), name
        assert singletons["ci_methods"][name] == "Wilson (every image its own group)"


def test_grouped_perfect_proportions_take_the_groups_holding_the_images_as_n():
    # 12 patients x 5 slices, every slice right: no spread between groups.
    labels = np.repeat([0, 1] * 6, 5)
    groups = np.repeat(np.arange(12), 5)
    result = classification_metrics(labels, probabilities_for(labels, 2), ["benign", "malignant"], groups=groups)
    assert result["accuracy"]["ci95"] == pytest.approx(list(wilson_interval(12, 12)))
    assert result["ci_methods"]["accuracy"] == "Wilson, effective n = 12 groups (no spread between groups)"
    # Recall of "malignant" counts the 30 malignant slices, held by 6 patients.
    assert result["recall"]["ci95"] == pytest.approx(list(wilson_interval(6, 6)))
    assert "6 groups" in result["ci_methods"]["recall"]


def test_zero_denominator_stays_zero_with_no_interval_and_a_reason():
    labels = np.repeat([0, 1, 2], 10)
    predicted = np.where(labels == 2, 1, labels)  # "malignant" is never predicted
    names = ["normal", "benign", "malignant"]
    result = classification_metrics(labels, probabilities_for(predicted, 3), names)
    precision = result["per_class"]["malignant"]["precision"]
    assert precision["value"] == 0.0 and all(np.isnan(precision["ci95"]))
    assert result["ci_methods"]["per_class"]["malignant"]["precision"] == "none (no image predicted as malignant)"
    # Its recall is 0 of 10: a Wilson interval from 0.
    assert result["per_class"]["malignant"]["recall"]["ci95"] == pytest.approx(list(wilson_interval(0, 10)))


def test_macro_average_without_width_at_one_is_widened_to_the_classes_limits():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    names = ["normal", "benign", "malignant"]
    result = classification_metrics(labels, probabilities_for(labels, 3), names, n_resamples=200)
    for metric in ("precision", "recall", "specificity"):
        classes = [result["per_class"][name][metric]["ci95"] for name in names]
        assert result[metric]["value"] == 1.0
        assert result[metric]["ci95"] == pytest.approx([np.mean([c[0] for c in classes]), 1.0]), metric
        assert "widened to the mean of the classes' Wilson limits" in result["ci_methods"][metric]
    # Recall of each class is Wilson on that class's images: the mean of the three lower ends.
    expected_low = np.mean([wilson_interval(k, k)[0] for k in (10, 20, 30)])
    assert result["recall"]["ci95"][0] == pytest.approx(expected_low)
    assert result["ci_methods"]["accuracy"] == "Wilson"


def test_thousand_resamples_of_three_hundred_images_are_fast():
    labels, probs = noisy_three_class(n=300)
    start = time.perf_counter()
    classification_metrics(labels, probs, ["a", "b", "c"], n_resamples=1000)
    assert time.perf_counter() - start < 5.0


def test_bad_inputs_raise_named_errors():
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match="rows"):
        classification_metrics(labels, np.full((3, 2), 0.5), ["a", "b"])
    with pytest.raises(DataError, match="single class"):
        classification_metrics(np.zeros(4, int), np.full((4, 2), 0.5), ["a", "b"])
    with pytest.raises(DataError, match="outside"):
        classification_metrics(np.array([0, 1, 2, 1]), np.full((4, 2), 0.5), ["a", "b"])
    with pytest.raises(DataError, match="groups"):
        classification_metrics(labels, np.full((4, 2), 0.5), ["a", "b"], groups=[1, 1, 1])


def test_confidence_level_narrows_the_interval_and_is_checked():
    labels, probs = noisy_three_class(n=150)
    wide = classification_metrics(labels, probs, ["a", "b", "c"], confidence=0.95, n_resamples=400)["accuracy"]
    narrow = classification_metrics(labels, probs, ["a", "b", "c"], confidence=0.5, n_resamples=400)["accuracy"]
    assert narrow["ci95"][1] - narrow["ci95"][0] < wide["ci95"][1] - wide["ci95"][0]
    with pytest.raises(ParameterError, match="confidence"):
        classification_metrics(labels, probs, ["a", "b", "c"], confidence=1.0)
    with pytest.raises(ParameterError, match="n_resamples"):
        classification_metrics(labels, probs, ["a", "b", "c"], n_resamples=0)
    with pytest.raises(ParameterError, match="two classes"):
        classification_metrics(labels, probs, ["a"])


def test_class_probabilities_positive_index_and_roc_points():
    np.testing.assert_allclose(class_probabilities([0.2, 0.9], 2), [[0.8, 0.2], [0.1, 0.9]])
    with pytest.raises(DataError, match="shape"):
        class_probabilities(np.full((2, 3), 1 / 3), 2)
    with pytest.raises(DataError, match="NaN"):
        class_probabilities([[0.5, np.nan]], 2)
    assert positive_index(["normal", "benign", "malignant"]) == 2
    assert positive_index(["normal", "benign", "malignant"], "benign") == 1
    fpr, tpr, auc = roc_points([False, False, True, True], [0.1, 0.6, 0.4, 0.9])
    assert auc == pytest.approx(0.75)
    assert fpr[0] == 0 and tpr[-1] == 1
    with pytest.raises(DataError, match="both positive and negative"):
        roc_points([True, True], [0.1, 0.2])
