"""Tests of common.explain.cams: the explainer's batching, layers, checks and helpers on tiny models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from common.errors import ParameterError
from common.explain import cams, methods
from tests.explain.helpers import INPUT_2D, min_max, random_images, tiny_model


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_compute_cam_shape_range_and_batching(method, three_d):
    model = tiny_model(three_d=three_d, pooled=True)
    images = random_images(model, n=3)
    classes = [0, 1, 1]
    batched = cams.compute_cam(model, images, classes, method=method, batch_size=2, max_channels=2)
    one_by_one = np.concatenate(
        [cams.compute_cam(model, images[i : i + 1], classes[i], method=method, max_channels=2) for i in range(3)]
    )
    assert batched.shape == images.shape[:-1]
    assert batched.dtype == np.float32
    assert batched.min() >= 0.0 and batched.max() <= 1.0
    assert np.isclose(batched.reshape(3, -1).max(axis=1), 1.0).any()
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
@pytest.mark.parametrize("three_d", [False, True])
def test_several_layers_at_once_equal_each_layer_alone(method, three_d):
    model = tiny_model(three_d=three_d, pooled=True, seed=4)
    images = random_images(model, n=3)
    explainer = cams.CamExplainer(model, method)
    together = explainer.cams_at_layers(images, [0, 1, 1], ["conv", "relu", "conv2", "relu"])
    assert list(together) == ["conv", "relu", "conv2"]  # in order, a repeat once
    for layer, maps in together.items():
        alone = cams.CamExplainer(model, method).cams(images, [0, 1, 1], layer)
        np.testing.assert_allclose(maps, alone, atol=1e-5, err_msg=layer)
    if method != "scorecam":  # one gradient step for the three layers
        assert list(explainer.algorithm.layer_steps) == [("conv", "relu", "conv2")]
    with pytest.raises(ParameterError, match="no layer"):
        explainer.cams_at_layers(images, 0, [])
    with pytest.raises(ParameterError, match="no layer 'nope'"):
        explainer.cams_at_layers(images, 0, ["relu", "nope"])


def test_mean_cam_is_the_renormalised_mean():
    first, second = np.array([[0.0, 1.0]]), np.array([[0.0, 0.5]])
    np.testing.assert_allclose(cams.mean_cam([first, second]), [[0.0, 1.0]])
    np.testing.assert_allclose(cams.mean_cam(iter([first])), first)


def test_compute_cam_leaves_the_model_untouched():
    model = tiny_model()
    images = random_images(model)
    before = model.predict(images, verbose=0)
    for method in methods.METHODS:
        cams.compute_cam(model, images, 0, method=method)
    np.testing.assert_allclose(model.predict(images, verbose=0), before, rtol=1e-6)
    assert model.get_layer("head").activation is keras.activations.softmax


def test_bad_arguments_raise_parameter_error():
    model = tiny_model()
    images = random_images(model)
    with pytest.raises(ParameterError, match="unknown CAM method"):
        cams.compute_cam(model, images, 0, method="lime")
    with pytest.raises(ParameterError, match="class_indices"):
        cams.compute_cam(model, images, 2)
    with pytest.raises(ParameterError, match="no layer"):
        cams.compute_cam(model, images, 0, layer="missing")
    sequential = keras.Sequential([keras.Input(INPUT_2D), keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
    with pytest.raises(ParameterError, match="Sequential"):
        cams.compute_cam(sequential, images, 0)


def test_layer_cams_and_group_average():
    model = tiny_model(pooled=True)
    images = random_images(model, n=3)
    per_layer = cams.layer_cams(model, images, 1, ["conv", "conv2"], method="gradcam")
    assert set(per_layer) == {"conv", "conv2"}
    assert all(cam.shape == (3, 16, 16) for cam in per_layer.values())
    averaged = cams.group_average_cam(model, images, 1, ["conv", "conv2"])
    np.testing.assert_allclose(averaged, min_max((per_layer["conv"] + per_layer["conv2"]) / 2), atol=1e-5)


def test_upsampling_keeps_a_coarse_peak_over_the_block_its_cell_saw():
    coarse = np.zeros((1, 3, 3), np.float32)
    coarse[0, 0, 0] = 1.0  # the top-left cell covers rows and columns 0..31 of a 96 px image
    fine = cams.upsample_cams(coarse, (96, 96))
    assert fine.shape == (1, 96, 96)
    row, col = np.unravel_index(fine[0].argmax(), (96, 96))
    assert row < 32 and col < 32
    # cell-centred: the value sits at the block's centre (15.5) and its half-maximum region
    # ends at the block's edge (31.5); corner-aligned zoom would end it at pixel 23.75
    assert fine[0, 15, 15] == pytest.approx(1.0, abs=0.02)
    assert fine[0, 15, 30] > 0.5 > fine[0, 15, 33]
