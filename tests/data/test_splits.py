"""Stratified, grouped, exact-count splits and k folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.data.splits import k_folds, split_samples
from common.errors import DataError, ParameterError


def sample_table(counts: dict[str, int], group_size: int | None = None, seed: int = 0) -> pd.DataFrame:
    """A sample table without image files: ``counts`` rows per label, optionally in groups."""
    labels = [label for label, count in counts.items() for _ in range(count)]
    table = pd.DataFrame({"path": [f"img_{i}.png" for i in range(len(labels))], "label": labels})
    table["label_index"] = table["label"].map({label: i for i, label in enumerate(counts)})
    if group_size is None:
        table["group"] = None
    else:
        # Consecutive rows of one label form a group ("patient"), of varying size.
        sizes = np.random.default_rng(seed).integers(1, 2 * group_size, len(table))
        ids, current, left, previous = [], 0, 0, None
        for position, label in enumerate(labels):
            if left == 0 or label != previous:
                current, left = current + 1, int(sizes[position])
            ids.append(f"patient_{current}")
            left, previous = left - 1, label
        table["group"] = ids
    return table


def test_fractions_are_respected_per_class_within_rounding():
    table = sample_table({"benign": 120, "malignant": 561, "normal": 416})
    split = split_samples(table, (0.7, 0.15, 0.15), seed=1)
    assert len(split) == len(table) and split.index.equals(table.index)
    for label, count in table["label"].value_counts().items():
        sizes = split[split["label"] == label]["split"].value_counts()
        for name, share in zip(("train", "val", "test"), (0.7, 0.15, 0.15)):
            assert abs(sizes[name] - share * count) <= 1, (label, name)


def test_two_fractions_give_train_and_test_only():
    split = split_samples(sample_table({"a": 50, "b": 30}), (0.8, 0.2))
    assert set(split["split"]) == {"train", "test"}
    assert split["split"].value_counts().to_dict() == {"train": 64, "test": 16}


def test_same_seed_same_split_other_seed_other_split():
    table = sample_table({"a": 40, "b": 40})
    first = split_samples(table, seed=7)["split"]
    assert first.equals(split_samples(table, seed=7)["split"])
    assert not first.equals(split_samples(table, seed=8)["split"])


def test_no_group_crosses_splits_and_classes_stay_stratified():
    table = sample_table({"benign": 120, "malignant": 560, "normal": 420}, group_size=8)
    assert table.groupby("group")["label"].nunique().max() == 1
    split = split_samples(table, (0.7, 0.15, 0.15), seed=3)
    assert split.groupby("group")["split"].nunique().max() == 1
    shares = pd.crosstab(split["label"], split["split"], normalize="index")
    np.testing.assert_allclose(shares[["train", "val", "test"]].to_numpy(), [[0.7, 0.15, 0.15]] * 3, atol=0.03)


def test_rows_without_group_are_their_own_groups():
    table = sample_table({"a": 30, "b": 30}, group_size=4)
    table.loc[table.index[::3], "group"] = None
    split = split_samples(table, seed=0)
    grouped = split[split["group"].notna()]
    assert grouped.groupby("group")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"}


def test_counts_mode_takes_exact_numbers_per_class():
    table = sample_table({"cancer": 1020, "pneumonia": 1014})
    split = split_samples(table, counts={"train": 714, "val": 150, "test": 150}, seed=0)
    table_of_counts = pd.crosstab(split["label"], split["split"])
    assert table_of_counts.loc[:, ["train", "val", "test"]].to_numpy().tolist() == [[714, 150, 150]] * 2
    assert len(split) == 2028  # six surplus cancer images left out


def test_counts_mode_errors():
    with pytest.raises(DataError, match=r"'b' has 20 images .* need 30 per class"):
        split_samples(sample_table({"a": 40, "b": 20}), counts={"train": 20, "val": 5, "test": 5})
    with pytest.raises(ParameterError, match="cannot keep groups whole"):
        split_samples(sample_table({"a": 40, "b": 40}, group_size=3), counts={"train": 20, "test": 5})
    with pytest.raises(ParameterError, match="counts must map"):
        split_samples(sample_table({"a": 40, "b": 40}), counts={"training": 20})


def test_too_few_images_for_every_split_is_an_error_with_numbers():
    with pytest.raises(DataError, match=r"Class 'rare' has 2 images .*fewer than the 3 splits"):
        split_samples(sample_table({"common": 30, "rare": 2}), (0.7, 0.15, 0.15))
    grouped = sample_table({"a": 40, "b": 6}, group_size=3)
    grouped.loc[grouped["label"] == "b", "group"] = "one_patient"
    with pytest.raises(DataError, match=r"Class 'b' has 1 groups \(6 images\)"):
        split_samples(grouped, (0.7, 0.15, 0.15))
    with pytest.raises(ParameterError, match="summing to 1"):
        split_samples(sample_table({"a": 5, "b": 5}), (0.7, 0.2, 0.2))


def test_small_classes_still_reach_every_split():
    split = split_samples(sample_table({"a": 50, "b": 3}), (0.8, 0.1, 0.1), seed=5)
    assert split[split["label"] == "b"]["split"].value_counts().to_dict() == {"train": 1, "val": 1, "test": 1}


def test_k_folds_cover_every_row_once_stratified():
    table = sample_table({"a": 30, "b": 20})
    folds = k_folds(table, 5, seed=0)
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(len(table)))
    for train, test in folds:
        assert not set(train) & set(test)
        assert table.iloc[test]["label"].value_counts().to_dict() == {"a": 6, "b": 4}


def test_k_folds_grouped_and_errors():
    table = sample_table({"a": 60, "b": 60}, group_size=4)
    for train, test in k_folds(table, 3, seed=2):
        assert not set(table.iloc[train]["group"]) & set(table.iloc[test]["group"])
    assert [test.tolist() for _, test in k_folds(table, 3, seed=2)] == [
        test.tolist() for _, test in k_folds(table, 3, seed=2)
    ]
    with pytest.raises(DataError, match=r"5 folds need at least 5 images per class.*'b': 3"):
        k_folds(sample_table({"a": 10, "b": 3}), 5)
    with pytest.raises(ParameterError, match="at least 2"):
        k_folds(table, 1)
