"""Tests of common.evaluation.classification on hand-made labels whose answers are known."""

import time

import numpy as np
import pytest
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
from tests.scores import three_class_scores

SUMMARY = ("accuracy", "precision", "recall", "specificity", "f1", "auc")


def probabilities_for(predicted, n_classes, confidence=0.8):
    """Probabilities whose arg-max is ``predicted``."""
    probs = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def noisy_three_class(n=240, seed=1):
    return three_class_scores(n, seed, boost=0.6)


def test_perfect_prediction_gives_one_with_degenerate_interval():
    labels = np.array([0] * 20 + [1] * 20)
    probs = probabilities_for(labels, 2, confidence=0.9)
    result = classification_metrics(labels, probs, ["benign", "malignant"], n_resamples=1000)
    for name in SUMMARY:
        assert result[name] == {"value": 1.0, "ci95": [1.0, 1.0]}, name
    assert result["confusion_matrix"] == [[20, 0], [0, 20]]
    assert result["n"] == 40


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
    assert first["accuracy"]["ci95"] != other_seed["accuracy"]["ci95"]
    for name in SUMMARY:
        low, high = first[name]["ci95"]
        assert low < first[name]["value"] < high, name
        assert high - low < 0.2, name
    assert first["ci_methods"]["auc"].startswith("DeLong")
    assert "percentile bootstrap" in first["ci_methods"]["accuracy"]


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
