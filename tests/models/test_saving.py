"""Tests of common.models.saving: Keras safe mode and its errors."""

import keras
import pytest

from common.errors import DataError
from common.models import saving


def test_load_model_safe_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(DataError, match="Lambda") as caught:
        saving.load_model_safe(path)
    assert str(path) in str(caught.value)
    with pytest.raises(DataError, match="does not exist"):
        saving.load_model_safe(tmp_path / "missing.keras")
