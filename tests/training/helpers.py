"""Tiny models and data shared by the training tests."""

import keras
import numpy as np
import tensorflow as tf


def tiny_model(n_inputs=8, dropout=0.0):
    inputs = keras.Input((n_inputs,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def tiny_data(n=32, n_inputs=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_inputs)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


def batches(x, y, shuffle=False):
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x))  # seeded by set_seed's global seed
    return dataset.batch(8)
