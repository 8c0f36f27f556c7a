"""Tests of common.experiments.cross_validation on tiny chest-volume phantoms written in the test session."""

import numpy as np
import pytest

from common.errors import DataError, ParameterError
from common.experiments import cross_validation
from tests.experiments.volume_runs import tiny_params

# fixtures: phantom_dir, samples; inputs, masks, cv_dir, cv
pytest_plugins = ["tests.data.volume_fixtures", "tests.experiments.volume_fixtures"]


def test_validation_is_carved_from_the_training_fold_per_class(samples):
    train_positions = np.arange(len(samples))
    fit, val = cross_validation.carve_validation(samples, train_positions, 0.3, seed=0)
    assert set(fit).isdisjoint(val) and sorted([*fit, *val]) == list(train_positions)
    for part in (fit, val):
        assert set(samples["label"].iloc[part]) == {"normal", "tumor"}
    with pytest.raises(ParameterError, match="val_fraction"):
        cross_validation.carve_validation(samples, train_positions, 1.0)


def test_k_fold_loop_tests_every_volume_once(cv, samples, cv_dir):
    assert len(cv.folds) == 2
    assert sorted(np.concatenate([f.test_positions for f in cv.folds])) == list(range(len(samples)))
    for fold in cv.folds:
        assert set(fold.val_positions).isdisjoint(fold.test_positions)
        assert set(fold.fit_positions).isdisjoint(fold.test_positions)
        assert (cv_dir / f"fold_{fold.fold}" / "history.csv").is_file()
    entry, per_fold = cv.record()
    assert entry["accuracy"]["folds"] == [f["metrics"]["accuracy"]["value"] for f in per_fold]
    assert entry["accuracy"]["value"] == pytest.approx(np.mean(entry["accuracy"]["folds"]))
    assert sum(map(sum, entry["confusion_matrix"])) == len(samples)
    np.testing.assert_allclose(cv.out_of_fold_probabilities().sum(axis=1), 1.0, rtol=1e-5)


def test_fold_table_and_histories_have_a_row_per_fold(cv):
    table = cv.fold_table(["accuracy"])
    assert list(table.index) == [1, 2]
    assert list(table.columns) == ["n_fit", "n_val", "n_test", "epochs", "seconds", "accuracy"]
    assert table["accuracy"].tolist() == [f.metrics["accuracy"]["value"] for f in cv.folds]
    assert list(cv.histories()) == ["fold 1", "fold 2"]


def test_samples_are_owned_by_their_test_fold(cv):
    owner = cv.fold_of()
    models = cv.fold_models(np.arange(len(owner)))
    np.testing.assert_array_equal(models.owners, owner)
    assert all(models.models[f.fold] is f.model for f in cv.folds)
    second = cv.folds[1]
    positions = np.concatenate([second.test_positions, cv.folds[0].test_positions])
    fold, tested = cv.tested_by_first_fold(positions, limit=2)
    assert fold is second
    np.testing.assert_array_equal(tested, second.test_positions[:2])


def test_volumes_and_samples_must_match(samples, inputs):
    with pytest.raises(DataError, match="same table"):
        cross_validation.cross_validate(tiny_params(), samples, inputs[:-1])


def test_identical_folds_get_the_pooled_interval_instead_of_a_point():
    import numpy as np
    import pandas as pd

    from common.config import registry
    from common.experiments.cross_validation import with_pooled_intervals

    params = registry.resolve("gradcam-3d", "smoke")
    labels = np.array([0, 1] * 15)
    samples = pd.DataFrame({"label_index": labels, "group": np.arange(30)})
    perfect = np.eye(2)[labels]
    summary = {
        "accuracy": {"value": 1.0, "ci95": [1.0, 1.0], "folds": [1.0, 1.0, 1.0]},
        "f1": {"value": 1.0, "ci95": [1.0, 1.0], "folds": [1.0, 1.0, 1.0]},
    }
    fixed = with_pooled_intervals(params, summary, samples, perfect)
    low, high = fixed["accuracy"]["ci95"]
    # 30 of 30 right, 30 singleton groups: Wilson's lower end is 0.886, not 1.
    assert low == pytest.approx(0.8865, abs=1e-3) and high == 1.0
    assert fixed["accuracy"]["folds"] == [1.0, 1.0, 1.0] and "pooled" in fixed["accuracy"]["ci_method"]
    assert fixed["f1"] == summary["f1"]  # not a proportion: left as the folds give it
