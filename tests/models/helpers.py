"""Checks shared by the model tests: which layers form a model's head, and its layer kinds."""

import keras

from common import models


def backbone_layers(model):
    """The layers of a :func:`common.models.build_backbone_model` model that are not its head."""
    return [layer for layer in model.layers if not models.is_head_layer(layer)]


def head_layers(model):
    """The head layers of such a model, the softmax ``predictions`` last."""
    return [layer for layer in model.layers if models.is_head_layer(layer)]


def assert_head_matches(model, spec_layers, n_classes):
    """The head layers of ``model`` are the spec's, in order, then the softmax."""
    built = head_layers(model)
    assert [type(layer) for layer in built] == [models.LAYER_TYPES[entry["layer"]] for entry in spec_layers] + [
        keras.layers.Dense
    ]
    for layer, entry in zip(built, spec_layers):
        if entry["layer"] == "dense":
            assert layer.units == entry["units"]
        if entry["layer"] == "dropout":
            assert layer.rate == entry["rate"]
    output = built[-1]
    assert output.name == "predictions"
    assert output.units == n_classes
    assert output.activation is keras.activations.softmax
