"""Input pipelines: sample table -> ``tf.data.Dataset`` of (image, label) batches.

Images are read from their paths, so a data set larger than memory still works
until ``cache`` is asked for. Order of the stages, and why:

1. decode each file with :func:`common.data.folders.read_image` (every format the study
   reads, one code path) and resize it (bilinear) to ``image_size`` square, in
   parallel;
2. ``cache()`` in memory (greyscale, 0..255), so files are decoded once per run,
   not once per epoch;
3. shuffle (training only; reshuffled every epoch), batch;
4. augmentation of training batches only, in parallel, one seed per batch
   (:mod:`common.data.augment`);
5. channel repeat and preprocessing (``[0, 1]`` scaling, a
   ``keras.applications`` ``preprocess_input`` or a rule of
   :mod:`common.data.scaling`), then prefetch. A rule that centres each split
   on its own mean measures it over the split's decoded images first (with
   ``cache``, the pass that fills the cache, so no file is read twice).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from common.data import augment as augment_module
from common.data import scaling
from common.data.folders import read_image
from common.errors import ParameterError

# Name -> keras.applications module whose preprocess_input expects 0..255 RGB.
# "resnet" is the ResNet101/152 family (same function as "resnet50").
PREPROCESS_MODULES = {
    "resnet50": keras.applications.resnet50,
    "resnet": keras.applications.resnet,
    "densenet": keras.applications.densenet,
    "inception_v3": keras.applications.inception_v3,
    "inception_resnet_v2": keras.applications.inception_resnet_v2,
    "mobilenet_v2": keras.applications.mobilenet_v2,
    "vgg16": keras.applications.vgg16,
    "vgg19": keras.applications.vgg19,
    "xception": keras.applications.xception,
    "efficientnet": keras.applications.efficientnet,
}

LABEL_MODES = ("int", "onehot")


def read_resized(path: str, image_size: int) -> np.ndarray:
    """Read one image (see :func:`common.data.folders.read_image`) and resize it bilinearly.

    Returns:
        float32 array ``(image_size, image_size)`` on a 0..255 scale.
    """
    image = read_image(path)
    if image.shape != (image_size, image_size):
        image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
    return image.astype(np.float32, copy=False)


def load_arrays(samples: pd.DataFrame, image_size: int, channels: int = 1) -> np.ndarray:
    """Load a small sample table into memory, scaled to [0, 1] like ``preprocess=None``.

    Meant for CAMs and figures; training uses :func:`make_dataset`.

    Args:
        samples: Sample table with a ``path`` column.
        image_size: Side of the square output.
        channels: 1 keeps greyscale, 3 repeats it.

    Returns:
        float32 array ``(N, image_size, image_size, channels)``.
    """
    _check_channels(channels)
    if samples.empty:
        return np.zeros((0, image_size, image_size, channels), dtype=np.float32)
    images = np.stack([read_resized(path, image_size) for path in samples["path"]])[..., np.newaxis] / 255.0
    return np.repeat(images, channels, axis=-1).astype(np.float32)


def preprocess_function(
    preprocess: str | Callable | None, set_mean: np.ndarray | None = None
) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function applied to 0..255 image batches: ``None`` scales to [0, 1].

    Args:
        preprocess: ``None``, a key of :data:`PREPROCESS_MODULES`, a rule of
            :data:`common.data.scaling.RULES`, or a callable.
        set_mean: The set's per-channel mean, for the rule that needs it
            (:func:`common.data.scaling.set_mean`).

    Raises:
        ParameterError: unknown name, or a set-mean rule without its mean.
    """
    if preprocess is None:
        return lambda images: images / 255.0
    if callable(preprocess):
        return preprocess
    if preprocess in scaling.RULES:
        return scaling.scaling_function(preprocess, set_mean)
    if preprocess not in PREPROCESS_MODULES:
        raise ParameterError(
            f"Unknown preprocess {preprocess!r}; choose one of {', '.join([*PREPROCESS_MODULES, *scaling.RULES])}, "
            "None or a function."
        )
    return PREPROCESS_MODULES[preprocess].preprocess_input


def finish_batch(
    images, channels: int, preprocess: str | Callable | None, set_mean: np.ndarray | None = None
) -> tf.Tensor:
    """The last stage of :func:`make_dataset`: channel repeat, then preprocessing.

    Args:
        images: Greyscale batch ``(B, S, S, 1)`` on a 0..255 scale.
        channels: 1 keeps greyscale, 3 repeats it.
        preprocess: As in :func:`preprocess_function`.
        set_mean: As in :func:`preprocess_function`.

    Returns:
        float32 tensor ``(B, S, S, channels)``.
    """
    if channels == 3:
        images = tf.repeat(images, 3, axis=-1)
    return tf.cast(preprocess_function(preprocess, set_mean)(images), tf.float32)


def image_inputs(paths, image_size: int, channels: int = 3, preprocess: str | Callable | None = None) -> np.ndarray:
    """Model inputs of image files, made exactly as :func:`make_dataset` makes them (no augmentation).

    For predicting on files outside a sample table (``camstudy predict``, the app). A
    set-mean rule (:mod:`common.data.scaling`) centres them on these files' own mean.

    Args:
        paths: Image files (see :func:`common.data.folders.read_image`).
        image_size: Side of the square model input.
        channels: 1 keeps greyscale, 3 repeats it.
        preprocess: As in :func:`make_dataset`.

    Returns:
        float32 array ``(N, image_size, image_size, channels)``.

    Raises:
        DataError: a file is missing or not a readable image (the message names it).
        ParameterError: bad channels or preprocess name.
    """
    _check_channels(channels)
    paths = list(paths)
    if not paths:
        return np.zeros((0, image_size, image_size, channels), dtype=np.float32)
    images = np.stack([read_resized(str(path), image_size) for path in paths])[..., np.newaxis]
    mean = scaling.set_mean([images], channels) if scaling.needs_set_mean(preprocess) else None
    return finish_batch(tf.constant(images), channels, preprocess, mean).numpy()


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ParameterError(f"channels must be 1 (greyscale) or 3 (repeated greyscale), got {channels!r}.")


def _check_dataset_options(
    channels: int, label_mode: str, n_classes: int | None, preprocess: str | Callable | None
) -> None:
    """Raise ParameterError for options :func:`make_dataset` cannot combine."""
    _check_channels(channels)
    if label_mode not in LABEL_MODES:
        raise ParameterError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}.")
    if label_mode == "onehot" and n_classes is None:
        raise ParameterError("label_mode='onehot' needs n_classes (the whole data set's, not this subset's).")
    if isinstance(preprocess, str) and preprocess in PREPROCESS_MODULES and channels != 3:
        raise ParameterError(f"preprocess={preprocess!r} expects RGB input; use channels=3.")


def make_dataset(
    samples: pd.DataFrame,
    image_size: int,
    batch_size: int,
    preprocess: str | Callable | None = None,
    augment: Mapping[str, Any] | None = None,
    training: bool = False,
    channels: int = 3,
    label_mode: str = "int",
    n_classes: int | None = None,
    seed: int = 0,
    cache: bool = True,
    shuffle: bool | None = None,
) -> tf.data.Dataset:
    """Build the ``tf.data`` pipeline of a sample table.

    Args:
        samples: Sample table with ``path`` and ``label_index`` columns.
        image_size: Side of the square model input.
        batch_size: Images per batch (the last batch may be smaller).
        preprocess: ``None`` (scale to [0, 1]), a :data:`PREPROCESS_MODULES` name
            (needs ``channels=3``), a :data:`common.data.scaling.RULES` name (a
            set-mean rule centres these samples on their own mean), or a callable
            on 0..255 batches.
        augment: e.g. ``{"rotation": 0.05, "shift": 0.1, "flip": "horizontal",
            "zoom": 0.1}``; applied only when ``training``.
        training: Shuffle (unless ``shuffle`` says otherwise) and augment.
        channels: 1 keeps greyscale; 3 repeats the grey channel (ImageNet models).
        label_mode: ``"int"`` (int32 class index) or ``"onehot"`` (float32).
        n_classes: Number of classes of the whole data set; required for one-hot.
        seed: Seed of shuffling and augmentation.
        cache: Keep decoded, resized images in memory after the first epoch.
        shuffle: Override shuffling; ``None`` means shuffle when training.

    Returns:
        Dataset of ``(images (B, S, S, C) float32, labels)``.

    Raises:
        ParameterError: bad channels, label mode, preprocess name or augmentation.
    """
    _check_dataset_options(channels, label_mode, n_classes, preprocess)
    augment_batch = augment_module.augmenter(augment) if training else None
    shuffle = training if shuffle is None else shuffle

    paths = samples["path"].astype(str).tolist()
    labels = samples["label_index"].to_numpy(dtype=np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(
            lambda raw_path: read_resized(raw_path.decode("utf-8"), image_size), [path], tf.float32
        )
        image = tf.ensure_shape(image[..., tf.newaxis], (image_size, image_size, 1))
        return image, label

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    # The set's own mean, over its images before augmentation (a rule of common.data.scaling).
    mean = (
        scaling.set_mean(dataset.map(lambda image, _: image), channels) if scaling.needs_set_mean(preprocess) else None
    )
    preprocess_batch = preprocess_function(preprocess, mean)
    if shuffle:
        dataset = dataset.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def finish(batch: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, label = batch
        if augment_batch is not None:
            images = augment_batch(images, batch_seed)
        images = finish_batch(images, channels, preprocess_batch)
        if label_mode == "onehot":
            label = tf.one_hot(label, n_classes, dtype=tf.float32)
        return images, label

    # Each batch is augmented from its own seed (unused without augmentation), so the map
    # runs in parallel and a seeded run still repeats (common.data.augment).
    dataset = augment_module.with_batch_seeds(dataset, seed).map(
        finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
