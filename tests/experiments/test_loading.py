"""Tests of common.experiments.loading on tiny phantoms: class order, split, data record, masks, preview."""

import numpy as np

from common.experiments import loading


def test_phantom_samples_follow_the_registry_class_order_and_have_masks(tiny_params):
    loaded = loading.load_samples(tiny_params)
    samples = loaded.samples
    assert loaded.has_masks
    assert samples.groupby("label")["label_index"].first().to_dict() == {"normal": 0, "benign": 1, "malignant": 2}
    split = loading.split(tiny_params, samples)
    assert set(split["split"]) == {"train", "val", "test"}
    record = loading.data_record(loaded, split)
    assert record["n_images"] == 18 and sum(record["class_counts"]["total"].values()) == 18
    masks = loading.read_masks(samples, 16)
    assert masks.shape == (18, 16, 16)
    assert not masks[samples["label"].to_numpy() == "normal"].any()
    assert masks[samples["label"].to_numpy() == "malignant"].any(axis=(1, 2)).all()


def test_preview_shows_the_first_images_of_every_class_in_order(tiny_params):
    samples = loading.load_samples(tiny_params).samples
    shown = loading.preview(tiny_params, samples, 2, with_masks=True)
    first = samples.groupby("label", sort=False).head(2)
    assert shown.labels == first["label"].tolist() and len(shown.labels) == 6
    assert shown.images.shape == (6, tiny_params.image_size, tiny_params.image_size)
    assert 0 <= shown.images.min() and shown.images.max() <= 1
    np.testing.assert_array_equal(shown.masks, loading.read_masks(first, tiny_params.image_size))
    assert loading.preview(tiny_params, samples, 1, with_masks=False).masks is None
