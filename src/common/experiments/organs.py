"""The organ x tumour decomposition of the multi-organ experiment (seed 003).

The paper's eight classes are the product of four organs and two tumour states
("Brain Tumor", "Brain No Tumor", ...). Its Objectives name two questions the
8-class answer also answers: *which organ is this?* and *is there a tumour?*
This module reads both from the class names themselves, so any class list
spelled ``<organ> tumor`` / ``<organ> no tumor`` (spaces or underscores, any
case, "tumour" or "tumor") decomposes without a typed table, and scores them:

* organ accuracy: the organ of the predicted class is the true organ;
* tumour-presence accuracy: the tumour state of the predicted class is the
  true one (whatever organ was predicted);
* 8-class accuracy: the predicted class is the true class (organ and tumour
  state both right);

each over all images and per true organ (the paper's Figure 5.3 shows
per-organ bars without saying which of these they are).

The decomposition is of the model's answer (the arg-max class), so organ
accuracy equals the share of the 8x8 confusion matrix inside its 2x2 organ
blocks.

Every accuracy is a proportion of independent images, so its 95% interval is
the Wilson score interval, which stays informative at 0% and 100% (common on
small per-organ test sets). When images come in groups (patients), whole
groups are resampled instead (seeded percentile bootstrap of the pooled
proportion), as in :mod:`common.evaluation.intervals`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import DataError, ParameterError
from common.evaluation import tables
from common.evaluation.intervals import proportion_estimate

# "<organ> tumor" or "<organ> no tumor", words split by spaces, underscores or hyphens.
_CLASS_NAME = re.compile(r"^(?P<organ>[a-z]+(?:[ _-][a-z]+)*?)[ _-]+(?P<no>no[ _-]+)?tumou?r$")


def parse_class_name(name: str) -> tuple[str, bool]:
    """Split a class name into its organ and whether it has a tumour.

    Args:
        name: e.g. ``"Brain Tumor"``, ``"kidney_no_tumor"``, ``"Lung No Tumour"``.

    Returns:
        ``(organ, has_tumour)`` with the organ in lower case, words joined by ``_``
        (``("brain", True)``, ``("kidney", False)``).

    Raises:
        DataError: the name does not end in "tumor" / "no tumor".
    """
    match = _CLASS_NAME.match(str(name).strip().lower())
    if match is None:
        raise DataError(
            f"Class name {name!r} is not '<organ> tumor' or '<organ> no tumor'; name the classes "
            "that way (e.g. with a label map) to score organ and tumour accuracy."
        )
    organ = re.sub(r"[ _-]+", "_", match.group("organ"))
    if organ == "no":
        raise DataError(f"Class name {name!r} names no organ; spell it '<organ> no tumor'.")
    return organ, match.group("no") is None


@dataclass(frozen=True)
class OrganDecomposition:
    """Organ and tumour state of every class of a class list.

    Attributes:
        organs: The organs, in order of first appearance in the class list.
        organ_of_class: Organ index of each class, shape (C,).
        tumour_of_class: Whether each class has a tumour, shape (C,).
    """

    organs: tuple[str, ...]
    organ_of_class: np.ndarray
    tumour_of_class: np.ndarray


def decompose(class_names: Sequence[str]) -> OrganDecomposition:
    """Decompose a class list into organs and tumour states.

    Args:
        class_names: Class names in index order.

    Returns:
        The :class:`OrganDecomposition`.

    Raises:
        DataError: a name does not parse (see :func:`parse_class_name`), or two
            classes mean the same organ and tumour state.
    """
    parsed = [parse_class_name(name) for name in class_names]
    duplicates = sorted(
        {
            f"{organ}/{'tumour' if tumour else 'no tumour'}"
            for organ, tumour in parsed
            if parsed.count((organ, tumour)) > 1
        }
    )
    if duplicates:
        raise DataError(f"Classes {list(class_names)} name {duplicates} more than once.")
    organs = tuple(dict.fromkeys(organ for organ, _ in parsed))
    return OrganDecomposition(
        organs=organs,
        organ_of_class=np.array([organs.index(organ) for organ, _ in parsed], dtype=int),
        tumour_of_class=np.array([tumour for _, tumour in parsed], dtype=bool),
    )


def tumour_classes(class_names: Sequence[str]) -> list[str]:
    """The classes with a tumour, in class order (their masks are the lesions CAMs are scored against)."""
    decomposition = decompose(class_names)
    return [name for name, has_tumour in zip(class_names, decomposition.tumour_of_class, strict=True) if has_tumour]


def class_table(class_names: Sequence[str]) -> pd.DataFrame:
    """Every class with its organ and tumour state, indexed by class index."""
    decomposition = decompose(class_names)
    return pd.DataFrame(
        {
            "class": list(class_names),
            "organ": [decomposition.organs[k] for k in decomposition.organ_of_class],
            "tumour": decomposition.tumour_of_class,
        }
    ).rename_axis("index")


def proportion_with_ci(correct, groups=None, seed: int = 0, n_resamples: int = 1000, confidence: float = 0.95) -> dict:
    """Share of True values with its confidence interval.

    Args:
        correct: Boolean array, one entry per image.
        groups: Optional group id per image; when given, whole groups are resampled.
        seed: Seed of the group bootstrap.
        n_resamples: Resamples of the group bootstrap.
        confidence: Confidence level (stored under ``ci95``).

    Returns:
        ``{"value", "ci95": [lo, hi], "n", "ci_method"}``, the record of
        :func:`common.evaluation.intervals.proportion_estimate` (Wilson without
        groups, a group bootstrap with them); NaN value and interval for no images.

    Raises:
        DataError: If ``groups`` does not have one entry per image.
    """
    return proportion_estimate(correct, groups, seed, n_resamples, confidence).to_record()


# The three questions the 8-class answer is scored on, and their result keys:
# (key over all images, key per organ, column title of organ_table).
QUESTIONS = {
    "organ": ("organ_accuracy", "organ_accuracy_per_organ", "organ identified"),
    "tumour": ("tumour_accuracy", "tumour_accuracy_per_organ", "tumour presence"),
    "class": ("accuracy", "accuracy_per_organ", "8-class"),
}


def organ_scores(
    y_true, y_pred, class_names: Sequence[str], groups=None, seed: int = 0, n_resamples: int = 1000
) -> dict:
    """Organ, tumour-presence and 8-class accuracy, over all images and per true organ, with CIs.

    Args:
        y_true: True class indices (N,).
        y_pred: Predicted class indices (N,) (the arg-max of the probabilities).
        class_names: Class names in index order, parsable by :func:`parse_class_name`.
        groups: Optional group id per image (see :func:`proportion_with_ci`).
        seed: Bootstrap seed (grouped data only).
        n_resamples: Bootstrap resamples (grouped data only).

    Returns:
        ``{"organs": [...], "organ_accuracy", "tumour_accuracy", "accuracy": entry,
        "organ_accuracy_per_organ", "tumour_accuracy_per_organ",
        "accuracy_per_organ": {organ: entry}, "organ_confusion_matrix": [[int]]
        (rows true organ, columns predicted organ)}``, each entry as from
        :func:`proportion_with_ci`. Per organ means among the images whose
        *true* organ it is (so organ accuracy per organ is that organ's recall).

    Raises:
        DataError: arrays of different lengths, indices outside the class list,
            or class names that do not parse.
        ParameterError: ``n_resamples`` below 1.
    """
    if int(n_resamples) < 1:
        raise ParameterError(f"n_resamples must be a positive integer; got {n_resamples}.")
    decomposition = decompose(class_names)
    y_true = np.asarray(y_true, dtype=int).ravel()
    y_pred = np.asarray(y_pred, dtype=int).ravel()
    if y_true.size != y_pred.size:
        raise DataError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}.")
    for name, indices in (("y_true", y_true), ("y_pred", y_pred)):
        if indices.size and (indices.min() < 0 or indices.max() >= len(class_names)):
            raise DataError(f"{name} holds indices outside 0..{len(class_names) - 1} (the {len(class_names)} classes).")
    if groups is not None:
        groups = np.asarray(groups, dtype=object).ravel()
        if groups.size != y_true.size:
            raise DataError(f"groups has {groups.size} entries but y_true has {y_true.size}.")
    true_organ, predicted_organ = decomposition.organ_of_class[y_true], decomposition.organ_of_class[y_pred]
    correct = {
        "organ": true_organ == predicted_organ,
        "tumour": decomposition.tumour_of_class[y_true] == decomposition.tumour_of_class[y_pred],
        "class": y_true == y_pred,
    }

    def share(right: np.ndarray, rows: np.ndarray) -> dict:
        return proportion_with_ci(right[rows], None if groups is None else groups[rows], seed, int(n_resamples))

    scores: dict = {"organs": list(decomposition.organs)}
    for question, (overall_key, per_organ_key, _) in QUESTIONS.items():
        scores[overall_key] = share(correct[question], np.ones(y_true.size, dtype=bool))
        scores[per_organ_key] = {
            organ: share(correct[question], true_organ == index) for index, organ in enumerate(decomposition.organs)
        }
    n_organs = len(decomposition.organs)
    confusion = np.zeros((n_organs, n_organs), dtype=int)
    np.add.at(confusion, (true_organ, predicted_organ), 1)
    scores["organ_confusion_matrix"] = confusion.tolist()
    return scores


def organ_table(scores: dict, digits: int = 3) -> pd.DataFrame:
    """Display table of :func:`organ_scores`: a row per organ and one for all images.

    Cells read "value (lo–hi), n = n"; columns are the three questions of :data:`QUESTIONS`.

    Args:
        scores: Result of :func:`organ_scores`.
        digits: Decimals shown.
    """

    def cell(entry: dict) -> str:
        return tables.format_estimate(entry, digits, with_n=True)

    table = pd.DataFrame(
        {
            title: {
                **{organ: cell(scores[per_organ_key][organ]) for organ in scores["organs"]},
                "all images": cell(scores[overall_key]),
            }
            for overall_key, per_organ_key, title in QUESTIONS.values()
        }
    )
    table.index.name = "true organ"
    return table
