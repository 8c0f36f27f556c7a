"""Input scaling rules: each on a known input, the set's mean, the channel reversal, bad names."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from common.data import scaling
from common.errors import DataError, ParameterError

# Two 1 x 2 images, channels (red, green, blue) distinct, on the 0..255 scale.
IMAGES = np.array([[[[0, 51, 255], [255, 102, 0]]], [[[127.5, 153, 51], [127.5, 204, 102]]]], np.float32)


def test_unit_and_symmetric_map_the_0_to_255_range_onto_theirs():
    np.testing.assert_allclose(scaling.scaling_function(scaling.UNIT)(tf.constant(IMAGES)), IMAGES / 255.0)
    symmetric = scaling.scaling_function(scaling.SYMMETRIC)(tf.constant(IMAGES)).numpy()
    np.testing.assert_allclose(symmetric[0, 0, 0], [-1.0, -0.6, 1.0], atol=1e-6)
    np.testing.assert_allclose(symmetric[1, 0, 0, 0], 0.0, atol=1e-6)


def test_set_mean_reversed_centres_each_channel_then_reverses_their_order():
    mean = scaling.set_mean([IMAGES[:1], IMAGES[1:]], channels=3)  # batches of one set
    np.testing.assert_allclose(mean, [127.5, 127.5, 102.0])
    scaled = scaling.scaling_function(scaling.SET_MEAN_REVERSED, mean)(tf.constant(IMAGES)).numpy()
    np.testing.assert_allclose(scaled[0, 0, 0], [255 - 102.0, 51 - 127.5, 0 - 127.5])  # (blue, green, red) - mean
    np.testing.assert_allclose(scaled.mean(axis=(0, 1, 2)), 0.0, atol=1e-6)


def test_a_grey_sets_mean_is_repeated_for_three_channel_input():
    grey = np.array([[[[10.0], [30.0]]]], np.float32)
    np.testing.assert_allclose(scaling.set_mean([grey], channels=3), [20.0, 20.0, 20.0])
    np.testing.assert_allclose(scaling.set_mean(tf.data.Dataset.from_tensor_slices(grey), channels=1), [20.0])


def test_bad_rules_and_sets_are_refused():
    with pytest.raises(ParameterError, match="Unknown input scaling 'zscore'"):
        scaling.scaling_function("zscore")
    with pytest.raises(ParameterError, match="needs the set's per-channel mean"):
        scaling.scaling_function(scaling.SET_MEAN_REVERSED)
    with pytest.raises(DataError, match="empty set"):
        scaling.set_mean([], channels=3)
    with pytest.raises(DataError, match="2-channel"):
        scaling.set_mean([np.zeros((1, 2, 2, 2))], channels=3)
    assert scaling.needs_set_mean(scaling.SET_MEAN_REVERSED) and not scaling.needs_set_mean("resnet50")
