"""The tf.data pipeline: shapes, labels, augmentation, preprocessing, decode-once caching."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from common.data import pipeline, scaling
from common.data.folders import load_class_folders
from common.data.pipeline import PREPROCESS_MODULES, load_arrays, make_dataset
from common.errors import ParameterError

AUGMENT = {"rotation": 0.1, "shift": 0.1, "flip": "horizontal", "zoom": 0.1}


@pytest.fixture
def samples(make_class_folders):
    table, _ = load_class_folders(make_class_folders({"a": 5, "b": 4, "c": 3}, size=(40, 30)))
    return table


def batches(dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(images), np.concatenate(labels)


def test_shapes_dtypes_and_int_labels_in_order(samples):
    dataset = make_dataset(samples, image_size=16, batch_size=5, channels=3)
    shapes = [tuple(x.shape) for x, _ in dataset]
    assert shapes == [(5, 16, 16, 3), (5, 16, 16, 3), (2, 16, 16, 3)]
    images, labels = batches(dataset)
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert labels.dtype == np.int32 and labels.tolist() == samples["label_index"].tolist()
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey repeated


def test_greyscale_onehot_and_load_arrays_agree(samples):
    dataset = make_dataset(samples, 16, 4, channels=1, label_mode="onehot", n_classes=4)
    images, labels = batches(dataset)
    assert images.shape == (12, 16, 16, 1) and labels.shape == (12, 4) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.argmax(axis=1), samples["label_index"])
    arrays = load_arrays(samples, 16, channels=1)
    assert arrays.dtype == np.float32
    np.testing.assert_allclose(images, arrays, atol=1e-6)
    assert load_arrays(samples, 16, channels=3).shape == (12, 16, 16, 3)


def test_augmentation_changes_training_batches_only(samples):
    plain, _ = batches(make_dataset(samples, 24, 4, training=True, shuffle=False))
    training = make_dataset(samples, 24, 4, augment=AUGMENT, training=True, shuffle=False, seed=1)
    first_epoch, _ = batches(training)
    second_epoch, _ = batches(training)
    assert np.abs(first_epoch - plain).max() > 0.1
    assert np.abs(first_epoch - second_epoch).max() > 0.1  # new draws each epoch
    again, _ = batches(make_dataset(samples, 24, 4, augment=AUGMENT, training=True, shuffle=False, seed=1))
    np.testing.assert_array_equal(first_epoch, again)  # seeded
    evaluation, _ = batches(make_dataset(samples, 24, 4, augment=AUGMENT, training=False))
    np.testing.assert_array_equal(evaluation, plain)


def test_augmented_batches_keep_the_static_shape_so_one_train_step_serves_both(samples):
    augmented = make_dataset(samples, 24, 4, augment={**AUGMENT, "shear": 0.2}, training=True, channels=3)
    plain = make_dataset(samples, 24, 4, training=True, channels=3)
    assert augmented.element_spec == plain.element_spec
    assert tuple(augmented.element_spec[0].shape) == (None, 24, 24, 3)


def test_training_shuffles_but_keeps_image_label_pairs(samples):
    reference, _ = batches(make_dataset(samples, 12, 12, channels=1))
    images, labels = batches(make_dataset(samples, 12, 12, channels=1, training=True, seed=3))
    assert not np.array_equal(images, reference)
    for image, label in zip(images, labels):
        match = np.flatnonzero(np.abs(reference - image).reshape(len(reference), -1).max(axis=1) == 0)
        assert len(match) == 1 and samples["label_index"].iloc[match[0]] == label


@pytest.mark.parametrize("name", sorted(PREPROCESS_MODULES))
def test_each_named_preprocess_matches_its_keras_function(samples, name):
    images, _ = batches(make_dataset(samples.head(3), 8, 3, preprocess=name))
    rgb = load_arrays(samples.head(3), 8, channels=3) * 255.0
    expected = np.asarray(PREPROCESS_MODULES[name].preprocess_input(rgb.copy()))
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_each_scaling_rule_maps_zero_to_255_as_it_says(samples, channels):
    grey = load_arrays(samples, 8, channels=channels) * 255.0
    for rule, expected in ((scaling.UNIT, grey / 255.0), (scaling.SYMMETRIC, grey / 127.5 - 1.0)):
        images, _ = batches(make_dataset(samples, 8, 5, preprocess=rule, channels=channels))
        np.testing.assert_allclose(images, expected, atol=1e-5)
    # Each set is centred on its own mean: these samples, then their first five alone.
    for subset in (samples, samples.head(5)):
        images, _ = batches(make_dataset(subset, 8, 5, preprocess=scaling.SET_MEAN_REVERSED, channels=channels))
        own = load_arrays(subset, 8, channels=channels) * 255.0
        np.testing.assert_allclose(images, own - own.mean(), atol=1e-3)
        np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    shuffled, _ = batches(make_dataset(samples, 8, 5, preprocess=scaling.SET_MEAN_REVERSED, training=True, seed=2))
    np.testing.assert_allclose(shuffled.mean(), 0.0, atol=1e-3)  # the whole set's mean, not a batch's


def test_image_inputs_centre_the_files_given_on_their_own_mean(samples):
    paths = samples["path"].head(4)
    inputs = pipeline.image_inputs(paths, 8, 3, scaling.SET_MEAN_REVERSED)
    own = load_arrays(samples.head(4), 8, channels=3) * 255.0
    np.testing.assert_allclose(inputs, own - own.mean(), atol=1e-3)


def test_callable_preprocess_gets_zero_to_255(samples):
    images, _ = batches(make_dataset(samples.head(2), 8, 2, preprocess=lambda batch: batch - 100.0))
    np.testing.assert_allclose(images + 100.0, load_arrays(samples.head(2), 8, channels=3) * 255.0, atol=1e-3)


@pytest.mark.parametrize(
    "cache, preprocess, decodes_per_file",
    # The set-mean rule reads the split once more to measure its mean; with the cache, that pass fills it.
    [(True, None, 1), (False, None, 2), (True, scaling.SET_MEAN_REVERSED, 1), (False, scaling.SET_MEAN_REVERSED, 3)],
)
def test_each_file_is_decoded_once_across_epochs_with_cache(samples, monkeypatch, cache, preprocess, decodes_per_file):
    calls: list[str] = []
    lock = threading.Lock()
    original = pipeline.read_image

    def counting_read_image(path):
        with lock:
            calls.append(str(path))
        return original(path)

    monkeypatch.setattr(pipeline, "read_image", counting_read_image)
    dataset = make_dataset(samples, 8, 4, training=True, cache=cache, preprocess=preprocess)
    for _ in range(2):
        batches(dataset)
    assert sorted(calls) == sorted(samples["path"].tolist() * decodes_per_file)


def test_parameter_errors(samples):
    with pytest.raises(ParameterError, match="Unknown preprocess 'resnet18'"):
        make_dataset(samples, 8, 2, preprocess="resnet18")
    with pytest.raises(ParameterError, match="needs n_classes"):
        make_dataset(samples, 8, 2, label_mode="onehot")
    with pytest.raises(ParameterError, match=r"Unknown augmentation\(s\) \['sheer'\]"):
        make_dataset(samples, 8, 2, augment={"sheer": 0.1}, training=True)
    with pytest.raises(ParameterError, match="expects RGB"):
        make_dataset(samples, 8, 2, preprocess="vgg16", channels=1)
    with pytest.raises(ParameterError, match="channels"):
        load_arrays(samples, 8, channels=2)
