"""Fixtures of the experiments' tests: a tiny phantom run of the iqoth experiment."""

import pytest

from common.config import registry
from common.experiments import loading


@pytest.fixture
def tiny_params(tmp_path, monkeypatch):
    """iqoth's smoke parameters on 6 phantoms per class of 32 px, generated under ``tmp_path``."""
    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    return registry.resolve("iqoth", "smoke", {"n_per_class": 6, "phantom_size": 32})


@pytest.fixture
def two_layer_model():
    """A seeded model with a fine (stride 1) and a coarse (stride 4) conv layer, 3 classes, on 3 channels."""

    def build(size: int):
        import keras

        keras.utils.set_random_seed(0)
        inputs = keras.Input((size, size, 3))
        fine = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="fine")(inputs)
        coarse = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu", name="coarse")(fine)
        pooled = keras.layers.GlobalAveragePooling2D()(coarse)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))

    return build
