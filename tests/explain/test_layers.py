"""Tests of common.explain.layers on tiny models and one small ResNet50 without weights."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

from common.explain import layers
from tests.explain.helpers import INPUT_2D, tiny_model


def test_last_conv_layer_rule_on_tiny_models():
    assert layers.last_conv_layer(tiny_model()) == "relu"
    assert layers.last_conv_layer(tiny_model(three_d=True, pooled=True)) == "relu"
    inputs = keras.Input(INPUT_2D)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="last_conv")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    plain = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert layers.last_conv_layer(plain) == "last_conv"


def test_last_conv_layer_of_resnet50_with_upsampling_head():
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    x = keras.layers.UpSampling2D(4)(base.output)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(base.inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert layers.last_conv_layer(model) == "conv5_block3_out"
    # The stage outputs the resnet50-gradcam experiment lists by hand, found from shapes;
    # the UpSampling2D head's finer grid is not among them.
    assert layers.finer_layers(model) == ["conv4_block6_out", "conv3_block4_out", "conv2_block3_out"]
    assert layers.finer_layers(model, finest_stride=16) == ["conv4_block6_out"]


@pytest.mark.parametrize("three_d", [False, True])
def test_finer_layers_take_the_widest_layer_of_each_scale(three_d):
    conv, pool, pad = (
        (keras.layers.Conv3D, keras.layers.MaxPooling3D, keras.layers.ZeroPadding3D)
        if three_d
        else (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.ZeroPadding2D)
    )
    inputs = keras.Input((32, 32, 32, 1) if three_d else (32, 32, 1))
    x = conv(4, 3, padding="same", name="full")(inputs)  # 32: one cell per pixel, finer than kept
    x = pool(4)(x)
    stage = conv(16, 3, padding="same", name="stage_8")(x)  # 8: one cell per 4 pixels
    branch = conv(2, 1, name="narrow_branch_8")(stage)  # later, narrower, same grid
    x = pad(1, name="padding_10")(branch)  # not a feature map
    x = conv(8, 3, strides=2, name="stage_4")(x)  # (10 - 3) // 2 + 1 = 4
    x = conv(8, 3, padding="same", strides=2, name="last")(x)  # 2: the CAM layer
    x = keras.layers.UpSampling3D(4)(x) if three_d else keras.layers.UpSampling2D(4)(x)
    x = keras.layers.GlobalAveragePooling3D()(x) if three_d else keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert layers.last_conv_layer(model) == "last"
    assert layers.finer_layers(model) == ["stage_4", "stage_8"]
    assert layers.finer_layers(model, finest_stride=8) == ["stage_4"]
    assert layers.finer_layers(model, finest_stride=32) == []
