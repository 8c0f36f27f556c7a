"""Tests of common.explain.forward: eager for a few batches, model.predict beyond, the same outputs either way."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings

import keras
import numpy as np
import pytest

from common.explain import forward
from tests.explain.helpers import random_images, tiny_model


@pytest.mark.parametrize("n", [0, 1, 5, 8])
def test_few_images_run_eagerly_and_match_predict(monkeypatch, n):
    model = tiny_model(units=3, pooled=True, seed=2)
    images = random_images(model, n=max(n, 1))[:n]
    expected = model.predict(images, batch_size=2, verbose=0) if n else np.zeros((0, 3), np.float32)

    def refuse(*args, **kwargs):
        raise AssertionError("model.predict called for at most EAGER_BATCHES batches")

    monkeypatch.setattr(model, "predict", refuse)
    found = forward.outputs(model, images, batch_size=2)  # 8 images = 4 batches: still eager
    assert found.shape == (n, 3)
    np.testing.assert_allclose(found, expected, atol=1e-6)


def test_many_images_go_through_predict(monkeypatch):
    model = tiny_model(units=3, pooled=True, seed=2)
    images = random_images(model, n=9)  # five batches of 2
    expected = np.asarray(model(images, training=False))
    calls = []
    real = model.predict
    monkeypatch.setattr(model, "predict", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_allclose(forward.outputs(model, images, batch_size=2), expected, atol=1e-6)
    assert calls == [1]


@pytest.mark.parametrize("n", [3, 9])
def test_a_view_built_from_a_list_of_inputs_runs_without_a_warning(n):
    """Keras warns when a model made from ``model.inputs`` (a list) gets a bare array; no page may show it."""
    model = tiny_model(units=3, pooled=True, seed=2)
    view = keras.Model(model.inputs, model.get_layer("relu").output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forward.outputs(view, random_images(model, n=n), batch_size=2)  # eager, then through predict
    assert not [str(w.message) for w in caught if "structure" in str(w.message)]
