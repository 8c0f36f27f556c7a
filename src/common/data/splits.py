"""Train/validation/test splits and k folds, stratified by label and grouped when groups are known.

Grouped splits keep every group (a patient, a scan, a cluster of near-duplicate
images) in one split, so no test image has a sibling in training. They are made
by a seeded greedy assignment, per label: the label's groups are taken in a
random order and each goes to the split that is furthest below its target number
of images. Of :data:`GROUP_ORDER_TRIALS` random orders, the one whose split sizes
come closest to the targets is kept. Random orders (rather than largest group
first, which would always put the biggest groups in training) keep a group's chance
of landing in the test set independent of its size. Everything is deterministic
for a seed. A group's label is its most frequent label.

Rows whose group is missing (null) are groups of their own, so an ungrouped
table is split image by image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from common.errors import DataError, ParameterError

# Split names by the number of fractions given: (train, test) or (train, val, test).
SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}
FRACTION_TOLERANCE = 1e-6
# Random group orders tried per class in a grouped split (see _split_by_fractions).
GROUP_ORDER_TRIALS = 50


def split_samples(
    samples: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    counts: Mapping[str, int] | None = None,
    seed: int = 0,
    group_col: str = "group",
    stratify_col: str = "label",
) -> pd.DataFrame:
    """Assign each sample to a split, stratified by label.

    Args:
        samples: Sample table (one row per image).
        fractions: Share of each class's images per split: three values
            (train, val, test) or two (train, test); they must sum to 1. A split
            with fraction 0 stays empty.
        counts: Instead of fractions, exact images per class per split, e.g.
            ``{"train": 714, "val": 150, "test": 150}``. Images beyond the total
            are left out of the returned table. Cannot be combined with groups.
        seed: Seed of the shuffle; the same seed gives the same split.
        group_col: Column of group ids; rows with the same non-null id share a split.
        stratify_col: Column whose classes every split keeps in proportion.

    Returns:
        A copy of ``samples`` (only the rows used, in their original order) with
        a ``split`` column.

    Raises:
        ParameterError: malformed fractions or counts, or counts with groups.
        DataError: a class has too few images (or groups) to give every non-empty
            split at least one; the message gives the numbers.
    """
    if samples.empty:
        raise DataError("Cannot split an empty sample table; the data folder yielded no images.")
    groups = _group_ids(samples, group_col)
    if counts is not None:
        if _has_groups(samples, group_col):
            raise ParameterError(
                "Exact per-class counts cannot keep groups whole; use fractions for a grouped split "
                f"or drop the {group_col!r} column for an image-level split."
            )
        assignment = _split_by_counts(samples, counts, seed, stratify_col)
    else:
        names, shares = _check_fractions(fractions)
        assignment = _split_by_fractions(samples, groups, names, shares, seed, stratify_col)
    result = samples.copy()
    result["split"] = assignment
    return result[result["split"].notna()].copy()


def _check_fractions(fractions: Sequence[float]) -> tuple[tuple[str, ...], np.ndarray]:
    shares = np.asarray(fractions, dtype=float)
    if len(shares) not in SPLIT_NAMES or (shares < 0).any() or abs(shares.sum() - 1) > FRACTION_TOLERANCE:
        raise ParameterError(
            f"fractions must be 2 (train, test) or 3 (train, val, test) non-negative numbers "
            f"summing to 1, got {list(fractions)}."
        )
    return SPLIT_NAMES[len(shares)], shares


def _has_groups(samples: pd.DataFrame, group_col: str) -> bool:
    return group_col in samples.columns and bool(samples[group_col].notna().any())


def _group_ids(samples: pd.DataFrame, group_col: str) -> np.ndarray:
    """One id per row: the group column where set, else a unique id for the row."""
    row_ids = np.array([f"__row_{position}" for position in range(len(samples))], dtype=object)
    if group_col not in samples.columns:
        return row_ids
    values = samples[group_col].to_numpy(dtype=object)
    known = samples[group_col].notna().to_numpy()
    return np.where(known, np.array([f"group:{value}" for value in values], dtype=object), row_ids)


def _split_by_counts(samples: pd.DataFrame, counts: Mapping[str, int], seed: int, stratify_col: str) -> np.ndarray:
    unknown = sorted(set(counts) - set(SPLIT_NAMES[3]))
    if unknown or any(int(value) < 0 for value in counts.values()):
        raise ParameterError(f"counts must map train/val/test to non-negative integers, got {dict(counts)}.")
    needed = sum(int(value) for value in counts.values())
    rng = np.random.default_rng(seed)
    assignment = np.full(len(samples), None, dtype=object)
    for label, positions in _positions_by_class(samples, stratify_col):
        if len(positions) < needed:
            raise DataError(
                f"Class {label!r} has {len(positions)} images but the split counts {dict(counts)} "
                f"need {needed} per class; use fractions or smaller counts."
            )
        shuffled = rng.permutation(positions)
        start = 0
        for name in SPLIT_NAMES[3]:
            size = int(counts.get(name, 0))
            assignment[shuffled[start : start + size]] = name
            start += size
    return assignment


def _positions_by_class(samples: pd.DataFrame, stratify_col: str) -> list[tuple[object, np.ndarray]]:
    if stratify_col not in samples.columns:
        raise ParameterError(f"Cannot stratify: the sample table has no column {stratify_col!r}.")
    values = samples[stratify_col].to_numpy()
    return [(label, np.flatnonzero(values == label)) for label in pd.unique(values)]


def _split_by_fractions(
    samples: pd.DataFrame,
    groups: np.ndarray,
    names: tuple[str, ...],
    shares: np.ndarray,
    seed: int,
    stratify_col: str,
) -> np.ndarray:
    group_table = _group_table(samples, groups, stratify_col)
    rng = np.random.default_rng(seed)
    split_of_group: dict[object, str] = {}
    for label, label_groups in group_table.groupby("label", sort=False):
        required = [name for name, share in zip(names, shares) if share > 0]
        if len(label_groups) < len(required):
            unit = "images" if (label_groups["size"] == 1).all() else "groups"
            raise DataError(
                f"Class {label!r} has {len(label_groups)} {unit} ({label_groups['size'].sum()} images), "
                f"fewer than the {len(required)} splits {required} that need one each; "
                "add images, merge classes, or use fewer splits."
            )
        sizes = label_groups["size"].to_numpy()
        targets = shares * sizes.sum()
        # Single images fill the targets to within one image in any order; groups are
        # lumpy, so several random orders are tried and the closest to the targets kept.
        trials = 1 if (sizes == 1).all() else GROUP_ORDER_TRIALS
        best_choice, best_error = None, np.inf
        for _ in range(trials):
            order = rng.permutation(len(sizes))
            choice = np.empty(len(sizes), dtype=int)
            choice[order] = _fill_greedily(sizes[order], targets)
            error = np.abs(np.bincount(choice, weights=sizes, minlength=len(names)) - targets).max()
            if error < best_error:
                best_choice, best_error = choice, error
        split_of_group.update(zip(label_groups.index, (names[i] for i in best_choice)))
    return np.array([split_of_group[group] for group in groups], dtype=object)


def _fill_greedily(sizes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Give each group, in the order given, to the split furthest below its target.

    Returns:
        The split position chosen for each group.
    """
    filled = np.zeros(len(targets))
    open_splits = np.flatnonzero(targets > 0)
    choice = np.empty(len(sizes), dtype=int)
    for position, size in enumerate(sizes):
        # When the groups left are just enough for the still-empty splits, only those may take them.
        empty_splits = open_splits[filled[open_splits] == 0]
        candidates = empty_splits if len(empty_splits) >= len(sizes) - position else open_splits
        chosen = candidates[int(np.argmax(targets[candidates] - filled[candidates]))]
        choice[position] = chosen
        filled[chosen] += size
    return choice


def _group_table(samples: pd.DataFrame, groups: np.ndarray, stratify_col: str) -> pd.DataFrame:
    """One row per group: its size and its most frequent label (ties: first seen)."""
    if stratify_col not in samples.columns:
        raise ParameterError(f"Cannot stratify: the sample table has no column {stratify_col!r}.")
    frame = pd.DataFrame({"group": groups, "label": samples[stratify_col].to_numpy()})
    sizes = frame.groupby("group", sort=False).size()
    labels = frame.groupby("group", sort=False)["label"].agg(lambda values: values.value_counts().index[0])
    return pd.DataFrame({"size": sizes, "label": labels})


def k_folds(
    samples: pd.DataFrame,
    k: int,
    seed: int = 0,
    group_col: str = "group",
    stratify_col: str = "label",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold cross-validation indices, grouped when groups are known.

    Uses scikit-learn's ``StratifiedGroupKFold`` when ``group_col`` has values
    (rows without a group are groups of their own), else ``StratifiedKFold``;
    both shuffled with ``seed``.

    Args:
        samples: Sample table.
        k: Number of folds (at least 2).
        seed: Shuffle seed.
        group_col: Column of group ids.
        stratify_col: Column of classes to stratify by.

    Returns:
        ``k`` pairs ``(train_positions, test_positions)`` of integer positions
        (for ``samples.iloc``); every row is in exactly one test fold.

    Raises:
        ParameterError: ``k`` below 2.
        DataError: a class has fewer images (or groups) than folds.
    """
    if int(k) != k or k < 2:
        raise ParameterError(f"k must be an integer of at least 2, got {k!r}.")
    groups = _group_ids(samples, group_col)
    grouped = _has_groups(samples, group_col)
    group_table = _group_table(samples, groups, stratify_col)
    per_class = group_table.groupby("label", sort=False).size()
    too_few = per_class[per_class < k]
    if not too_few.empty:
        unit = "groups" if grouped else "images"
        details = ", ".join(f"{label!r}: {count}" for label, count in too_few.items())
        raise DataError(
            f"{k} folds need at least {k} {unit} per class; these classes have fewer ({details}). "
            "Use fewer folds or add data."
        )
    labels = samples[stratify_col].to_numpy()
    positions = np.arange(len(samples))
    if grouped:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(positions, labels, groups=groups)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(positions, labels)
    return [(np.asarray(train), np.asarray(test)) for train, test in folds]
