"""Organ x tumour decomposition of the multi-organ classes, on hand-made predictions."""

import numpy as np
import pytest
import scipy.stats

from common.config import registry
from common.errors import DataError, ParameterError
from common.experiments import organs

# The paper's own spelling and order (seed 003, Code 4.1).
PAPER_CLASSES = [
    "Brain Tumor",
    "Brain No Tumor",
    "Breast Tumor",
    "Breast No Tumor",
    "Kidney Tumor",
    "Kidney No Tumor",
    "Lung Tumor",
    "Lung No Tumor",
]


def test_registry_classes_are_the_papers_in_the_papers_order():
    classes = registry.experiment("multi-organ")["classes"]
    assert [name.replace("_", " ") for name in classes] == [name.lower() for name in PAPER_CLASSES]
    assert [organs.parse_class_name(a) for a in classes] == [organs.parse_class_name(b) for b in PAPER_CLASSES]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Brain Tumor", ("brain", True)),
        ("kidney_no_tumor", ("kidney", False)),
        ("Lung No Tumour", ("lung", False)),
        ("small-intestine tumour", ("small_intestine", True)),
    ],
)
def test_parse_class_name(name, expected):
    assert organs.parse_class_name(name) == expected


@pytest.mark.parametrize("name", ["glioma", "brain tumor present", "no_tumor", "tumor"])
def test_unparsable_class_names_raise(name):
    with pytest.raises(DataError, match="tumor"):
        organs.parse_class_name(name)


def test_decompose_follows_the_class_order():
    decomposition = organs.decompose(PAPER_CLASSES)
    assert decomposition.organs == ("brain", "breast", "kidney", "lung")
    assert decomposition.organ_of_class.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert decomposition.tumour_of_class.tolist() == [True, False] * 4
    with pytest.raises(DataError, match="more than once"):
        organs.decompose(["brain_tumor", "Brain Tumour"])


def test_organ_scores_on_hand_made_predictions():
    # Two images per class; each error is of one known kind.
    y_true = np.repeat(np.arange(8), 2)
    y_pred = y_true.copy()
    y_pred[0] = 1  # brain tumour -> brain no tumour: organ right, tumour wrong
    y_pred[4] = 4  # breast tumour -> kidney tumour: organ wrong, tumour right
    y_pred[6] = 4  # breast no tumour -> kidney tumour: organ and tumour wrong
    y_pred[14] = 6  # lung no tumour -> lung tumour: organ right, tumour wrong
    y_pred[15] = 6  # again
    scores = organs.organ_scores(y_true, y_pred, PAPER_CLASSES)
    assert scores["organs"] == ["brain", "breast", "kidney", "lung"]
    assert scores["organ_accuracy"]["value"] == pytest.approx(14 / 16)
    assert scores["organ_accuracy"]["n"] == 16
    tumour = {organ: entry["value"] for organ, entry in scores["tumour_accuracy_per_organ"].items()}
    assert tumour == pytest.approx({"brain": 3 / 4, "breast": 3 / 4, "kidney": 1.0, "lung": 2 / 4})
    eight_class = {organ: entry["value"] for organ, entry in scores["accuracy_per_organ"].items()}
    assert eight_class == pytest.approx({"brain": 3 / 4, "breast": 2 / 4, "kidney": 1.0, "lung": 2 / 4})
    organ_recall = {organ: entry["value"] for organ, entry in scores["organ_accuracy_per_organ"].items()}
    assert organ_recall == pytest.approx({"brain": 1.0, "breast": 2 / 4, "kidney": 1.0, "lung": 1.0})
    assert scores["tumour_accuracy"]["value"] == pytest.approx(12 / 16)
    assert scores["accuracy"]["value"] == pytest.approx(11 / 16)
    assert scores["organ_confusion_matrix"] == [[4, 0, 0, 0], [0, 2, 2, 0], [0, 0, 4, 0], [0, 0, 0, 4]]
    # Organ accuracy is the mass of the 8x8 confusion matrix inside its 2x2 organ blocks.
    confusion = np.zeros((8, 8), int)
    np.add.at(confusion, (y_true, y_pred), 1)
    blocks = sum(confusion[2 * k : 2 * k + 2, 2 * k : 2 * k + 2].sum() for k in range(4))
    assert scores["organ_accuracy"]["value"] == pytest.approx(blocks / 16)


def test_intervals_are_wilson_and_contain_the_value():
    y_true = np.repeat(np.arange(8), 5)
    y_pred = y_true.copy()
    y_pred[:3] = 1  # three brain tumour images called brain no tumour
    scores = organs.organ_scores(y_true, y_pred, PAPER_CLASSES)
    brain = scores["tumour_accuracy_per_organ"]["brain"]
    expected = scipy.stats.binomtest(7, 10).proportion_ci(method="wilson")
    assert brain["ci95"] == pytest.approx([expected.low, expected.high])
    assert brain["ci_method"] == "Wilson"
    perfect = scores["tumour_accuracy_per_organ"]["kidney"]
    # 100% on ten images is not certainty: the interval reaches well below 1.
    assert perfect["value"] == 1.0 and perfect["ci95"][0] < 0.8 and perfect["ci95"][1] == pytest.approx(1.0)


def test_grouped_intervals_resample_whole_groups():
    y_true = np.repeat(np.arange(8), 4)
    y_pred = y_true.copy()
    y_pred[[0, 1, 8, 9]] = y_pred[[0, 1, 8, 9]] + 1  # all of groups 0 and 4 wrong (tumour state)
    groups = np.repeat(np.arange(16), 2)
    ungrouped = organs.organ_scores(y_true, y_pred, PAPER_CLASSES)["accuracy_per_organ"]["brain"]
    grouped = organs.organ_scores(y_true, y_pred, PAPER_CLASSES, groups=groups, seed=3)
    entry = grouped["accuracy_per_organ"]["brain"]
    assert entry["value"] == ungrouped["value"] == pytest.approx(0.75)
    assert "4 groups" in entry["ci_method"]
    # Four groups: the pooled share of a resample can only be 0, 1/4, ..., 1.
    assert entry["ci95"][0] <= 0.75 <= entry["ci95"][1]
    assert set(np.round(np.array(entry["ci95"]) * 4, 9)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    again = organs.organ_scores(y_true, y_pred, PAPER_CLASSES, groups=groups, seed=3)
    assert again["accuracy_per_organ"]["brain"] == entry
    # Images without a group are groups of their own.
    partly_grouped = np.array([0, 0, None, None], dtype=object)
    assert "3 groups" in organs.proportion_with_ci([True, True, False, True], partly_grouped)["ci_method"]


def test_organ_without_test_images_gives_nan_and_bad_input_raises():
    scores = organs.organ_scores([0, 1], [0, 0], PAPER_CLASSES)
    assert scores["tumour_accuracy_per_organ"]["brain"]["value"] == 0.5
    assert np.isnan(scores["tumour_accuracy_per_organ"]["lung"]["value"])
    assert scores["tumour_accuracy_per_organ"]["lung"]["n"] == 0
    with pytest.raises(DataError, match="indices outside"):
        organs.organ_scores([0, 8], [0, 0], PAPER_CLASSES)
    with pytest.raises(DataError, match="y_pred has 1"):
        organs.organ_scores([0, 1], [0], PAPER_CLASSES)
    with pytest.raises(ParameterError):
        organs.organ_scores([0], [0], PAPER_CLASSES, n_resamples=0)


def test_organ_table_has_a_row_per_organ_and_the_overall_row():
    scores = organs.organ_scores(np.arange(8), np.arange(8), PAPER_CLASSES)
    table = organs.organ_table(scores)
    assert list(table.index) == ["brain", "breast", "kidney", "lung", "all images"]
    assert list(table.columns) == ["organ identified", "tumour presence", "8-class"]
    assert table.loc["lung", "tumour presence"].startswith("1.000 (")
    assert table.loc["all images", "8-class"].endswith(", n = 8")


def test_tumour_classes_and_class_table_follow_the_class_order():
    classes = ["Lung No Tumor", "Brain Tumor", "lung_tumour", "Brain No Tumor"]
    assert organs.tumour_classes(classes) == ["Brain Tumor", "lung_tumour"]
    table = organs.class_table(classes)
    assert table.index.name == "index" and table["class"].tolist() == classes
    assert table["organ"].tolist() == ["lung", "brain", "lung", "brain"]
    assert table["tumour"].tolist() == [False, True, True, False]
