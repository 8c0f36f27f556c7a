"""Tests of common.models.cnns: the papers' own 2D and 3D CNNs."""

import keras
import numpy as np

from common import models


def test_multi_organ_cnn_matches_the_paper_summary():
    model = models.build_multi_organ_cnn()
    total, trainable = models.count_params(model)
    assert total == trainable == 3_305_096
    # The paper's summary (seed 003) prints 3,305,098: it counts the compiled
    # Adam's two scalar variables (iteration, learning rate) as well.
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    assert total + len(model.optimizer.variables) == 3_305_098
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert model.output.shape == (None, 8)
    assert model.get_layer("flatten_1").output.shape == (None, 25088)


def test_cnn3d_layers_and_shapes():
    model = models.build_cnn3d()
    assert model.output.shape == (None, 2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == (
        ["InputLayer"]
        + ["Conv3D", "MaxPooling3D", "BatchNormalization"] * 4
        + ["Conv3D", "Conv3D", "MaxPooling3D", "Flatten", "Dense"]
    )
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == [32, 64, 128, 128, 256, 512]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 4 + [(1, 1, 1)] * 2
    # 'same' padding: each pooling halves every axis, 64x64x32 -> 4x4x2 -> 2x2x1.
    assert model.get_layer("conv3d_6").output.shape == (None, 4, 4, 2, 512)

    paper = models.build_cnn3d((512, 512, 64, 1))
    assert paper.get_layer("conv3d_6").output.shape == (None, 32, 32, 4, 512)

    small = models.build_cnn3d(width=0.25, hidden_units=16, dropout=0.2)
    convs = [layer for layer in small.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == [8, 16, 32, 32, 64, 128]
    assert small.get_layer("dense_1").units == 16
    assert len([layer for layer in small.layers if isinstance(layer, keras.layers.Dropout)]) == 2


def test_plain_cnn():
    model = models.build_plain_cnn((64, 64, 3), 2)
    assert model.output.shape == (None, 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128]
    assert model.get_layer("conv2d_3").output.shape == (None, 16, 16, 128)
    probabilities = model(np.zeros((2, 64, 64, 3), dtype="float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
