"""The explanation code's forward passes: eager when they are few, through a traced graph when many.

Keras' ``model.predict`` traces the model into a graph on its first call on a
model, which costs seconds for a deep network on a CPU and pays off only over
many batches. The explanation code makes small calls on freshly loaded models
(Score-CAM's masked copies, the faithfulness curves of a few images, each again
on the randomised copy of the sanity check), so up to :data:`EAGER_BATCHES`
batches run eagerly. Measured on 2 cores, untrained models at 64-75 px, 420
images (one nine-models benchmark's curves): DenseNet121 7.2 s through
``predict`` on a fresh model, 4.8 s eagerly in batches of 128 (5.2 s in
batches of 64); VGG19 10.3 and 6.5 s; InceptionResNetV2 11.4 and 6.5 s;
ResNet101 7.9 and 6.6 s.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

EAGER_BATCHES = 4
"""Calls of at most this many batches run eagerly; larger ones through ``model.predict``."""


def outputs(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's outputs (N, ...) on ``images`` in inference mode, eagerly or traced (:data:`EAGER_BATCHES`).

    Args:
        model: Any Keras model with one input and one output.
        images: Its inputs (N, ...).
        batch_size: Images per forward pass.
    """
    if not len(images):
        return np.zeros((0, *model.output.shape[1:]), np.float32)
    with warnings.catch_warnings():
        # A model built from a list of one input warns when given the bare array (and names a path).
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        if len(images) > EAGER_BATCHES * batch_size:
            return np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
        chunks = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
        return np.concatenate([np.asarray(model(chunk, training=False)) for chunk in chunks])
