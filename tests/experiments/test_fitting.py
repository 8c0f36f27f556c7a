"""Tests of common.experiments.fitting: a frozen fit result with the run's class weights."""

import dataclasses

import pytest

from common.experiments import fitting, loading


def test_fit_and_evaluate_returns_a_frozen_result_with_balanced_class_weights(tiny_params):
    import keras

    params = dataclasses.replace(tiny_params, epochs=1, n_resamples=20)
    samples = loading.split(params, loading.load_samples(params).samples)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((params.image_size, params.image_size, params.channels))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(params.classes), activation="softmax")(pooled))
    result = fitting.fit_and_evaluate(params, model, samples, None)
    test = samples[samples["split"] == "test"]
    assert isinstance(result, fitting.FitResult)
    assert len(result.history) == 1 and set(result.datasets) == {"train", "val", "test"}
    assert result.probabilities.shape == (len(test), len(params.classes)) and len(result.test) == len(test)
    assert list(result.test.index) == list(range(len(test))) and "accuracy" in result.scores
    assert params.class_weights and set(result.class_weight) == {0, 1, 2}  # iqoth weighs its classes
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.scores = {}
