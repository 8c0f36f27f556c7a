"""Tests of common.data.volume_sets on tiny chest-volume phantoms written in the test session."""

import shutil

import numpy as np
import pytest
from scipy import ndimage

from common.data import volume_sets
from common.errors import DataError, ParameterError
from tests.data.volume_phantoms import INPUT_SHAPE, LABEL_MAP, N_PER_CLASS

pytest_plugins = ["tests.data.volume_fixtures"]  # phantom_dir, samples


def test_sample_table_lists_every_series_with_label_group_and_mask(samples, phantom_dir):
    assert len(samples) == 2 * N_PER_CLASS
    assert samples["label"].value_counts().to_dict() == {"normal": N_PER_CLASS, "tumor": N_PER_CLASS}
    assert (samples["label_index"] == (samples["label"] == "tumor").astype(int)).all()
    assert samples["group"].is_unique
    for row in samples.itertuples():
        assert row.path.endswith(f"{row.class_folder}/{row.case}")
        assert row.mask_path == str(phantom_dir / "masks" / row.class_folder / f"{row.case}.npz")


def test_label_order_follows_the_label_map(phantom_dir):
    table = volume_sets.load_volume_samples(phantom_dir / "series", {"tumor": "tumor", "normal": "normal"})
    assert (table["label_index"] == (table["label"] == "normal").astype(int)).all()
    assert table["mask_path"].isna().all()


def test_bad_folders_are_named(phantom_dir, tmp_path):
    with pytest.raises(DataError, match="not in the label map"):
        volume_sets.load_volume_samples(phantom_dir / "series", {"normal": "normal"})
    with pytest.raises(DataError, match="masks missing"):
        volume_sets.load_volume_samples(phantom_dir / "series", LABEL_MAP, mask_root=tmp_path)
    one_class = tmp_path / "one"
    shutil.copytree(phantom_dir / "series" / "tumor", one_class / "tumor")
    with pytest.raises(DataError, match="at least two classes"):
        volume_sets.load_volume_samples(one_class)
    flat = tmp_path / "flat"
    case = next((phantom_dir / "series" / "normal").iterdir())
    shutil.copytree(case, flat / "normal")
    with pytest.raises(DataError, match="its own folder"):
        volume_sets.load_volume_samples(flat)


def test_volumes_and_masks_share_the_input_grid(samples):
    loaded = volume_sets.load_volumes(samples, INPUT_SHAPE, window=(-600, 1500))
    masks = volume_sets.load_masks(samples, INPUT_SHAPE)
    assert loaded.shape == (len(samples), *INPUT_SHAPE, 1) and loaded.dtype == np.float32
    assert loaded.min() >= 0.0 and loaded.max() <= 1.0
    assert masks.shape == (len(samples), *INPUT_SHAPE)
    is_tumour = (samples["label"] == "tumor").to_numpy()
    assert masks[is_tumour].reshape(N_PER_CLASS, -1).any(axis=1).all()
    assert not masks[~is_tumour].any()
    # The nodule is solid tissue in air-filled lung: inside the mask the voxels are
    # brighter than in the shell around it, which holds only if mask and slices line up.
    for volume, mask in zip(loaded[is_tumour, ..., 0], masks[is_tumour], strict=True):
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        assert volume[mask].mean() > volume[shell].mean() + 0.1


def test_bad_input_shape_and_mask_file(tmp_path, samples):
    with pytest.raises(ParameterError, match="input_shape"):
        volume_sets.load_volumes(samples, (16, 16))
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="key 'mask'"):
        volume_sets.read_mask(bad)


def test_training_batches_are_shuffled_and_rotated():
    rng = np.random.default_rng(0)
    inputs = rng.random((6, *INPUT_SHAPE, 1), dtype=np.float32)
    labels = np.arange(6) % 2
    plain = [(x.numpy(), y.numpy()) for x, y in volume_sets.volume_dataset(inputs, labels, 4)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in plain]), inputs)
    np.testing.assert_array_equal(np.concatenate([y for _, y in plain]), labels)
    augmented = np.concatenate(
        [
            x.numpy()
            for x, _ in volume_sets.volume_dataset(inputs, labels, 4, rotation_degrees=30.0, training=True, seed=1)
        ]
    )
    assert augmented.shape == inputs.shape
    # Shuffled and rotated: no augmented volume equals any input volume.
    assert not any(np.allclose(a, b) for a in augmented for b in inputs)
