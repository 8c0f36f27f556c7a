"""Input scalings by rule: the ones a model's inputs get besides ``keras.applications``' ``preprocess_input``.

Each rule maps a batch on a 0..255 scale to the model's input scale:

* ``"unit"``: ``x / 255``, to [0, 1];
* ``"symmetric"``: ``x / 127.5 - 1``, to [-1, 1];
* ``"set_mean_reversed"``: minus the per-channel mean of the set the image
  belongs to, then the channel order reversed. "The set" is the split being
  fed (training, validation or test), each centred on its own images' mean, so
  no split's statistics reach another; a model's inputs then depend on which
  other images share its split, which is why this is a rule of its own.

The nine-models authors' code scales its inputs with these three rules, one per
architecture (the registry's ``nine_models`` section, ``authors_scaling``).
The pipeline (:mod:`common.data.pipeline`) accepts a rule's name wherever it
accepts a ``preprocess`` name; for ``"set_mean_reversed"`` it first measures
the split's mean with :func:`set_mean`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from common.errors import DataError, ParameterError

UNIT = "unit"
SYMMETRIC = "symmetric"
SET_MEAN_REVERSED = "set_mean_reversed"
RULES = (UNIT, SYMMETRIC, SET_MEAN_REVERSED)


def needs_set_mean(preprocess: object) -> bool:
    """Whether ``preprocess`` names the rule that needs the set's mean (:func:`set_mean`)."""
    return preprocess == SET_MEAN_REVERSED


def set_mean(batches, channels: int) -> np.ndarray:
    """Per-channel mean over every pixel of every image of a set.

    Args:
        batches: Iterable of image batches or single images, channels last, on
            the 0..255 scale (a ``tf.data.Dataset`` of images, or arrays).
        channels: Channels of the model input; a greyscale set (one channel)
            repeated to three has its one mean in each.

    Returns:
        float64 array ``(channels,)``.

    Raises:
        DataError: The set has no pixel.
    """
    total, count = None, 0
    for images in batches:
        array = np.asarray(images, dtype=np.float64)
        pixels = array.reshape(-1, array.shape[-1])
        total = pixels.sum(axis=0) if total is None else total + pixels.sum(axis=0)
        count += len(pixels)
    if total is None or count == 0:
        raise DataError("Cannot centre an empty set on its mean: it has no image.")
    mean = total / count
    if len(mean) == channels:
        return mean
    if len(mean) == 1:
        return np.repeat(mean, channels)
    raise DataError(f"A set of {len(mean)}-channel images cannot be centred for {channels}-channel input.")


def scaling_function(rule: str, mean: np.ndarray | None = None) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function a rule applies to batches ``(B, H, W, C)`` on the 0..255 scale.

    Args:
        rule: One of :data:`RULES`.
        mean: The set's per-channel mean (:func:`set_mean`); needed by
            ``"set_mean_reversed"`` only.

    Raises:
        ParameterError: An unknown rule, or ``"set_mean_reversed"`` without a mean.
    """
    if rule == UNIT:
        return lambda images: images / 255.0
    if rule == SYMMETRIC:
        return lambda images: images / 127.5 - 1.0
    if rule == SET_MEAN_REVERSED:
        if mean is None:
            raise ParameterError(f"The {rule!r} scaling needs the set's per-channel mean (scaling.set_mean).")
        centre = tf.constant(np.asarray(mean, dtype=np.float32))
        return lambda images: tf.reverse(images - centre, axis=[-1])
    raise ParameterError(f"Unknown input scaling {rule!r}; choose one of {', '.join(RULES)}.")
