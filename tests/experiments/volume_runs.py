"""The tiny model and settings of the cross-validation and volumes tests (fixtures in
:mod:`tests.experiments.volume_fixtures`)."""

import dataclasses

import keras

from common.config import registry
from tests.data.volume_phantoms import INPUT_SHAPE


def tiny_model():
    """One Conv3D layer and a softmax: a model a fold trains in a second."""
    inputs = keras.Input((*INPUT_SHAPE, 1))
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu", name="conv3d_1")(inputs)
    pooled = keras.layers.GlobalAveragePooling3D()(features)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(pooled))


def tiny_params():
    """The experiment's classes (normal, tumor; positive tumor) with a tiny loop's settings."""
    return dataclasses.replace(
        registry.resolve("gradcam-3d", "smoke"),
        seed=0,
        k_folds=2,
        val_fraction=0.34,
        epochs=1,
        patience=1,
        batch_size=4,
        learning_rate=1e-3,
        augment_rotation=5.0,
        n_resamples=200,
        n_explain=6,
        cam_methods=["gradcam"],
        cam_fraction=0.5,
        explain_only_correct=True,
    )
