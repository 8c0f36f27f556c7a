"""Tiny functional models and hand-computed CAMs shared by the tests of common.explain."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

INPUT_2D = (16, 16, 1)
INPUT_3D = (8, 8, 6, 1)


def tiny_model(three_d=False, units=2, activation="softmax", pooled=False, seed=0):
    """Input -> conv -> [pool -> conv2] -> ReLU('relu') -> GAP -> Dense('head').

    With pooled=True the CAM layer has half the input resolution, so CAMs are upsampled.
    """
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv3D if three_d else keras.layers.Conv2D
    pool = keras.layers.MaxPooling3D if three_d else keras.layers.MaxPooling2D
    global_pool = keras.layers.GlobalAveragePooling3D if three_d else keras.layers.GlobalAveragePooling2D
    inputs = keras.Input(INPUT_3D if three_d else INPUT_2D)
    x = conv(4, 3, padding="same", name="conv")(inputs)
    if pooled:
        x = pool(2)(keras.layers.ReLU()(x))
        x = conv(3, 3, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = global_pool()(x)
    outputs = keras.layers.Dense(units, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs)


def random_images(model, n=4, seed=1):
    return np.random.default_rng(seed).random((n,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)


def hand_features_and_gradients(model, images, class_index, layer="relu"):
    """A layer's feature maps A and the gradients G of the logit (or +-logit of a sigmoid unit), as arrays."""
    head = model.get_layer("head")
    features = keras.Model(model.inputs, [model.get_layer(layer).output, head.input])
    with tf.GradientTape() as tape:
        activations, pooled = features(tf.constant(images), training=False)
        logits = tf.matmul(pooled, head.kernel) + head.bias
        score = logits[:, 0] * (2 * class_index - 1) if logits.shape[-1] == 1 else logits[:, class_index]
    return activations.numpy(), tape.gradient(score, activations).numpy()


def hand_gradcam(model, images, class_index, layer="relu"):
    """Grad-CAM by hand on the logit (or +-logit of a sigmoid unit), at feature-map resolution."""
    activations, gradients = hand_features_and_gradients(model, images, class_index, layer)
    spatial_axes = tuple(range(1, activations.ndim - 1))
    weights = gradients.mean(axis=spatial_axes, keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0)


def min_max(maps):
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    return (maps - low) / (high - low)
