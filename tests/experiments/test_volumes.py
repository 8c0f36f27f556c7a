"""Tests of common.experiments.volumes on tiny chest-volume phantoms written in the test session."""

import dataclasses
import shutil

import keras
import numpy as np
import pytest
from scipy import ndimage

from common.config import registry
from common.data import phantoms
from common.experiments import volumes
from common.errors import DataError, ParameterError

N_PER_CLASS = 4
PHANTOM_SHAPE = (24, 24, 8)
INPUT_SHAPE = (16, 16, 8)
LABEL_MAP = {"normal": "normal", "tumor": "tumor"}


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    """Four normal and four tumour DICOM series with their masks."""
    return phantoms.make_chest_volumes(tmp_path_factory.mktemp("volumes"), N_PER_CLASS, PHANTOM_SHAPE)


@pytest.fixture(scope="module")
def samples(phantom_dir):
    return volumes.load_volume_samples(phantom_dir / "series", LABEL_MAP, mask_root=phantom_dir / "masks")


def test_sample_table_lists_every_series_with_label_group_and_mask(samples, phantom_dir):
    assert len(samples) == 2 * N_PER_CLASS
    assert samples["label"].value_counts().to_dict() == {"normal": N_PER_CLASS, "tumor": N_PER_CLASS}
    assert (samples["label_index"] == (samples["label"] == "tumor").astype(int)).all()
    assert samples["group"].is_unique
    for row in samples.itertuples():
        assert row.path.endswith(f"{row.class_folder}/{row.case}")
        assert row.mask_path == str(phantom_dir / "masks" / row.class_folder / f"{row.case}.npz")


def test_label_order_follows_the_label_map(phantom_dir):
    table = volumes.load_volume_samples(phantom_dir / "series", {"tumor": "tumor", "normal": "normal"})
    assert (table["label_index"] == (table["label"] == "normal").astype(int)).all()
    assert table["mask_path"].isna().all()


def test_bad_folders_are_named(phantom_dir, tmp_path):
    with pytest.raises(DataError, match="not in the label map"):
        volumes.load_volume_samples(phantom_dir / "series", {"normal": "normal"})
    with pytest.raises(DataError, match="masks missing"):
        volumes.load_volume_samples(phantom_dir / "series", LABEL_MAP, mask_root=tmp_path)
    one_class = tmp_path / "one"
    shutil.copytree(phantom_dir / "series" / "tumor", one_class / "tumor")
    with pytest.raises(DataError, match="at least two classes"):
        volumes.load_volume_samples(one_class)
    flat = tmp_path / "flat"
    case = next((phantom_dir / "series" / "normal").iterdir())
    shutil.copytree(case, flat / "normal")
    with pytest.raises(DataError, match="its own folder"):
        volumes.load_volume_samples(flat)


def test_volumes_and_masks_share_the_input_grid(samples):
    loaded = volumes.load_volumes(samples, INPUT_SHAPE, window=(-600, 1500))
    masks = volumes.load_masks(samples, INPUT_SHAPE)
    assert loaded.shape == (len(samples), *INPUT_SHAPE, 1) and loaded.dtype == np.float32
    assert loaded.min() >= 0.0 and loaded.max() <= 1.0
    assert masks.shape == (len(samples), *INPUT_SHAPE)
    is_tumour = (samples["label"] == "tumor").to_numpy()
    assert masks[is_tumour].reshape(N_PER_CLASS, -1).any(axis=1).all()
    assert not masks[~is_tumour].any()
    # The nodule is solid tissue in air-filled lung: inside the mask the voxels are
    # brighter than in the shell around it, which holds only if mask and slices line up.
    for volume, mask in zip(loaded[is_tumour, ..., 0], masks[is_tumour]):
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        assert volume[mask].mean() > volume[shell].mean() + 0.1


def test_bad_input_shape_and_mask_file(tmp_path, samples):
    with pytest.raises(ParameterError, match="input_shape"):
        volumes.load_volumes(samples, (16, 16))
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="key 'mask'"):
        volumes.read_mask(bad)


def test_training_batches_are_shuffled_and_rotated():
    rng = np.random.default_rng(0)
    inputs = rng.random((6, *INPUT_SHAPE, 1), dtype=np.float32)
    labels = np.arange(6) % 2
    plain = [(x.numpy(), y.numpy()) for x, y in volumes.volume_dataset(inputs, labels, 4)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in plain]), inputs)
    np.testing.assert_array_equal(np.concatenate([y for _, y in plain]), labels)
    augmented = np.concatenate([x.numpy() for x, _ in volumes.volume_dataset(
        inputs, labels, 4, rotation_degrees=30.0, training=True, seed=1)])
    assert augmented.shape == inputs.shape
    # Shuffled and rotated: no augmented volume equals any input volume.
    assert not any(np.allclose(a, b) for a in augmented for b in inputs)


def test_validation_is_carved_from_the_training_fold_per_class(samples):
    train_positions = np.arange(len(samples))
    fit, val = volumes.carve_validation(samples, train_positions, 0.3, seed=0)
    assert set(fit).isdisjoint(val) and sorted([*fit, *val]) == list(train_positions)
    for part in (fit, val):
        assert set(samples["label"].iloc[part]) == {"normal", "tumor"}
    with pytest.raises(ParameterError, match="val_fraction"):
        volumes.carve_validation(samples, train_positions, 1.0)


def tiny_model():
    inputs = keras.Input((*INPUT_SHAPE, 1))
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu", name="conv3d_1")(inputs)
    pooled = keras.layers.GlobalAveragePooling3D()(features)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(pooled))


def test_k_fold_loop_tests_every_volume_once_and_explains_out_of_fold(samples, tmp_path):
    inputs = volumes.load_volumes(samples, INPUT_SHAPE)
    masks = volumes.load_masks(samples, INPUT_SHAPE)
    # The experiment's classes (normal, tumor; positive tumor) with a tiny loop's settings.
    params = dataclasses.replace(
        registry.resolve("gradcam-3d", "smoke"), seed=0, k_folds=2, val_fraction=0.34, epochs=1, patience=1,
        batch_size=4, learning_rate=1e-3, augment_rotation=5.0, n_resamples=200, n_explain=6,
        cam_methods=["gradcam"], cam_fraction=0.5, explain_only_correct=True)
    cv = volumes.cross_validate(params, samples, inputs, tiny_model, out_dir=tmp_path)
    assert len(cv.folds) == 2
    assert sorted(np.concatenate([f.test_positions for f in cv.folds])) == list(range(len(samples)))
    for fold in cv.folds:
        assert set(fold.val_positions).isdisjoint(fold.test_positions)
        assert set(fold.fit_positions).isdisjoint(fold.test_positions)
        assert (tmp_path / f"fold_{fold.fold}" / "history.csv").is_file()
    entry, per_fold = cv.record()
    assert entry["accuracy"]["folds"] == [f["metrics"]["accuracy"]["value"] for f in per_fold]
    assert entry["accuracy"]["value"] == pytest.approx(np.mean(entry["accuracy"]["folds"]))
    assert sum(map(sum, entry["confusion_matrix"])) == len(samples)
    np.testing.assert_allclose(cv.out_of_fold_probabilities().sum(axis=1), 1.0, rtol=1e-5)

    # Explanations: pretend every test volume but the first tumour was predicted right,
    # so which volumes get explained, and by which fold's model, is known.
    truth = samples["label_index"].to_numpy()
    tumours = np.flatnonzero(truth == 1)
    for fold in cv.folds:
        fold.probabilities = np.eye(2, dtype=np.float32)[truth[fold.test_positions]]
        fold.probabilities[fold.test_positions == tumours[0]] = [1.0, 0.0]
    explained = volumes.explain_folds(params, cv, inputs, samples, masks)
    np.testing.assert_array_equal(explained["positions"], tumours[1:])
    cams = explained["cams"]["gradcam"]
    assert cams.shape == (len(tumours) - 1, *INPUT_SHAPE) and 0 <= cams.min() and cams.max() <= 1
    assert explained["scores"]["gradcam"]["energy_share"]["n"] == len(tumours) - 1
    one = volumes.fold_cam(cv, inputs, int(tumours[1]), 1)
    np.testing.assert_allclose(one, cams[0], atol=1e-5)
    assert volumes.example_volume(cv, samples, "tumor") == tumours[1]
