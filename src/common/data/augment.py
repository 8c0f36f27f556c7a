"""Random geometric augmentation of image batches, drawn from a seed per batch.

An augmentation dict such as ``{"rotation": 0.05, "shift": 0.1, "flip":
"horizontal", "zoom": 0.1}`` becomes one random affine transform per image:

* ``rotation``: a fraction of a full turn, either way (0.05 = up to 18 degrees);
* ``shift``: a fraction of the image's height and width, either way;
* ``flip``: ``"horizontal"``, ``"vertical"`` or ``"horizontal_and_vertical"``,
  each axis mirrored with probability 1/2;
* ``zoom``: a fraction of the image size, either way (0.1 = scale 0.9 to 1.1);
* ``zoom_axes``: ``"together"`` (the default: one scale for both axes) or
  ``"independent"`` (a scale drawn for each axis, as Keras' legacy
  ``ImageDataGenerator`` draws ``zx`` and ``zy``);
* ``shear``: a shear factor, either way: each column moves sideways by up to
  ``shear`` times its row's distance from the centre (Keras' ``RandomShear``
  counts its ``x_factor`` so; the legacy ``ImageDataGenerator``'s
  ``shear_range`` is an angle in degrees, whose tangent is this factor);
* ``fill``: what the gaps the transform opens are filled with: ``"constant"``
  (the default: 0, the black background of a CT slice) or ``"nearest"`` (the
  nearest edge pixel repeated).

Why not Keras' random layers: they draw from one stateful seed generator, so
batches augmented in parallel by ``tf.data`` would draw in whatever order they
finish and a seeded run would not repeat; mapped one batch at a time instead,
they cost training throughput on a CPU (see :mod:`common.bench`). Here every
draw is a stateless function of the batch's own seed, so the map can run in
parallel and stay repeatable. All changes are composed into one transform
and the image is resampled once (bilinear), not once per change. A dict
without ``shear`` and ``zoom_axes`` draws exactly what it drew before those
two existed: their draws come from seeds of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from common.errors import ParameterError

KINDS = ("rotation", "shift", "flip", "zoom", "zoom_axes", "shear", "fill")
FLIP_MODES = {"horizontal": (True, False), "vertical": (False, True), "horizontal_and_vertical": (True, True)}
ZOOM_AXES = ("together", "independent")
# fill -> the fill_mode of ImageProjectiveTransformV3.
FILL_MODES = {"constant": "CONSTANT", "nearest": "NEAREST"}
# Fraction-valued kinds: each must lie in (0, 1).
FRACTIONS = ("rotation", "shift", "zoom", "shear")


def check_augment(augment: Mapping[str, Any] | None) -> dict[str, Any]:
    """The augmentation dict without its falsy entries, validated.

    Raises:
        ParameterError: An unknown key, a rotation, shift, zoom or shear outside (0, 1), or an
            unknown flip, zoom-axes or fill mode.
    """
    augment = {name: value for name, value in (augment or {}).items() if value}
    unknown = sorted(set(augment) - set(KINDS))
    if unknown:
        raise ParameterError(f"Unknown augmentation(s) {unknown}; known: {', '.join(KINDS)}.")
    for name, modes in (("flip", FLIP_MODES), ("zoom_axes", ZOOM_AXES), ("fill", FILL_MODES)):
        if name in augment and augment[name] not in modes:
            raise ParameterError(f"{name}={augment[name]!r}: use one of {', '.join(modes)}.")
    for name in FRACTIONS:
        if name in augment and not 0 < float(augment[name]) < 1:
            raise ParameterError(f"{name}={augment[name]!r} must be a fraction between 0 and 1.")
    return augment


def _uniform(seed: tf.Tensor, n: tf.Tensor, bound: float) -> tf.Tensor:
    return tf.random.stateless_uniform([n], seed, minval=-bound, maxval=bound)


def _mirror(seed: tf.Tensor, n: tf.Tensor, active: bool) -> tf.Tensor:
    """-1 (mirror) or +1 per image, each with probability 1/2 when ``active``."""
    if not active:
        return tf.ones([n])
    return tf.where(tf.random.stateless_uniform([n], seed) < 0.5, -1.0, 1.0)


def affine_transforms(
    augment: Mapping[str, Any], seed: tf.Tensor, n: tf.Tensor, height: tf.Tensor, width: tf.Tensor
) -> tf.Tensor:
    """``(n, 8)`` projective transforms, output pixel -> input pixel, one per image.

    Args:
        augment: A checked augmentation dict (:func:`check_augment`).
        seed: Shape ``(2,)`` integer seed of this batch.
        n: Number of images.
        height, width: Image size in pixels.

    Returns:
        Rows ``[a0, a1, a2, b0, b1, b2, 0, 0]``: the input point sampled for output
        point ``(x, y)`` is ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    # The draws added later (shear, a second zoom) split a seed folded from the batch's own,
    # so the five above, and what a dict without them draws, are what they always were.
    later_seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 1), num=2)
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    angle = _uniform(seeds[0], n, 2 * math.pi * float(augment.get("rotation", 0.0)))
    shift = float(augment.get("shift", 0.0))
    shift_x, shift_y = _uniform(seeds[1], n, shift) * width, _uniform(seeds[2], n, shift) * height
    zoom = float(augment.get("zoom", 0.0))
    scale = 1.0 + _uniform(seeds[3], n, zoom)
    independent = augment.get("zoom_axes") == "independent"
    scale_y_only = 1.0 + _uniform(later_seeds[0], n, zoom) if independent and zoom else scale
    shear = float(augment.get("shear", 0.0))
    shear_factor = _uniform(later_seeds[1], n, shear) if shear else None
    flip_x, flip_y = FLIP_MODES.get(augment.get("flip"), (False, False))
    mirror_seeds = tf.random.experimental.stateless_split(seeds[4], num=2)
    scale_x = scale * _mirror(mirror_seeds[0], n, flip_x)
    scale_y = scale_y_only * _mirror(mirror_seeds[1], n, flip_y)
    # input = centre + R(angle) H(shear) diag(scale_x, scale_y) (output - centre) + shift,
    # H = [[1, shear], [0, 1]]: each row's columns move sideways in proportion to the row.
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1, b0, b1 = cos * scale_x, -sin * scale_y, sin * scale_x, cos * scale_y
    if shear_factor is not None:
        a1, b1 = (cos * shear_factor - sin) * scale_y, (sin * shear_factor + cos) * scale_y
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    zeros = tf.zeros([n])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def random_affine(images: tf.Tensor, seed: tf.Tensor, augment: Mapping[str, Any]) -> tf.Tensor:
    """Augment a batch ``(B, H, W, C)``; the same ``seed`` gives the same result.

    Args:
        images: Float batch; every channel of an image moves together (a volume's
            slices as channels turn about its axis).
        seed: Shape ``(2,)`` integer seed of this batch.
        augment: Augmentation dict (see the module docstring).
    """
    augment = check_augment(augment)
    if not augment:
        return images
    shape = tf.shape(images)
    transforms = affine_transforms(augment, seed, shape[0], shape[1], shape[2])
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=FILL_MODES[augment.get("fill", "constant")],
    )
    # The raw op forgets the static shape, (None, None, None, None): give it back, so a run
    # with augmentation feeds its model batches of the same spec as one without, and Keras
    # traces one train step for both (unknown sides also made the benchmark train two graphs).
    return tf.ensure_shape(moved, images.shape)


def with_batch_seeds(dataset: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Pair each element of ``dataset`` with a ``(2,)`` seed, new ones every epoch.

    The seeds come from ``tf.data.Dataset.random`` re-randomised per iteration:
    a rerun with the same ``seed`` sees the same seeds, epoch by epoch.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, seeds))


def augmenter(augment: Mapping[str, Any] | None) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None:
    """``(images, seed) -> images`` for a dict, or None when it asks for nothing.

    Raises:
        ParameterError: See :func:`check_augment`.
    """
    augment = check_augment(augment)
    if not augment:
        return None
    return lambda images, seed: random_affine(images, seed, augment)


def describe(augment: Mapping[str, Any] | None) -> str:
    """The augmentation in words, in degrees where ``ImageDataGenerator`` counts so; ``"none"`` for none.

    Example: ``"rotation ±10°, shift ±0.2, zoom ±0.2 per axis, shear ±0.15°, flips horizontal_and_vertical,
    fill nearest"``.

    Raises:
        ParameterError: See :func:`check_augment`.
    """
    augment = check_augment(augment)
    parts = []
    if "rotation" in augment:
        parts.append(f"rotation ±{360 * float(augment['rotation']):.3g}°")
    if "shift" in augment:
        parts.append(f"shift ±{float(augment['shift']):.3g}")
    if "zoom" in augment:
        per_axis = " per axis" if augment.get("zoom_axes") == "independent" else ""
        parts.append(f"zoom ±{float(augment['zoom']):.3g}{per_axis}")
    if "shear" in augment:
        parts.append(f"shear ±{math.degrees(math.atan(float(augment['shear']))):.3g}°")
    if "flip" in augment:
        parts.append(f"flips {augment['flip']}")
    if augment.get("fill", "constant") != "constant":
        parts.append(f"fill {augment['fill']}")
    return ", ".join(parts) or "none"
