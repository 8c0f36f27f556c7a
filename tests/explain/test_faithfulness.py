"""Tests of common.explain.faithfulness on models whose answer is known: a model that reads one pixel."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from common.errors import DataError, ParameterError
from common.explain import faithfulness
from common.explain.faithfulness import Perturbation

SIDE = 8
PIXEL = (2, 5)  # the one pixel the model reads
STEPS = 8


def one_pixel_model(units: int = 2, gain: float = 6.0) -> keras.Model:
    """A classifier whose class-1 logit is ``gain * (x[PIXEL] - 0.5)``; every other pixel is ignored.

    Softmax over [0, logit] (units=2) or a sigmoid of the logit (units=1).
    """
    inputs = keras.Input((SIDE, SIDE, 1))
    flat = keras.layers.Flatten()(inputs)
    head = keras.layers.Dense(units, activation="softmax" if units == 2 else "sigmoid", name="head")
    outputs = head(flat)
    kernel = np.zeros((SIDE * SIDE, units), np.float32)
    kernel[PIXEL[0] * SIDE + PIXEL[1], -1] = gain
    bias = np.zeros(units, np.float32)
    bias[-1] = -gain / 2
    head.set_weights([kernel, bias])
    return keras.Model(inputs, outputs)


def images_with_bright_pixel(n: int = 3) -> np.ndarray:
    """Dark images (0.1) with the read pixel bright (1.0): the model says class 1."""
    images = np.full((n, SIDE, SIDE, 1), 0.1, np.float32)
    images[:, PIXEL[0], PIXEL[1], 0] = 1.0
    return images


def map_peaked_at(position: tuple[int, int], n: int = 3) -> np.ndarray:
    """Maps in [0, 1] falling off with the distance from ``position``."""
    rows, cols = np.mgrid[:SIDE, :SIDE]
    distance = np.hypot(rows - position[0], cols - position[1])
    return np.broadcast_to(1.0 - distance / distance.max(), (n, SIDE, SIDE)).astype(np.float32)


def probability(model: keras.Model, value: float) -> float:
    """The model's class-1 probability when the read pixel holds ``value``."""
    image = np.full((1, SIDE, SIDE, 1), 0.1, np.float32)
    image[0, PIXEL[0], PIXEL[1], 0] = value
    return float(faithfulness.class_probability(model, image, np.array([1]))[0])


def test_a_curve_of_a_constant_probability_has_that_area():
    np.testing.assert_allclose(faithfulness.curve_auc(np.full((2, STEPS + 1), 0.3)), [0.3, 0.3])
    np.testing.assert_allclose(faithfulness.curve_auc([[1.0, 0.0]]), [0.5])
    with pytest.raises(DataError, match="at least one step"):
        faithfulness.curve_auc(np.ones((2, 1)))


@pytest.mark.parametrize("units", [2, 1], ids=["softmax", "sigmoid"])
def test_deleting_the_read_pixel_first_gives_the_smallest_possible_deletion_auc(units):
    model = one_pixel_model(units)
    images = images_with_bright_pixel()
    perfect = faithfulness.perturbation_curves(
        model, images, map_peaked_at(PIXEL), 1, "deletion", Perturbation(steps=STEPS)
    )
    # The pixel goes at step 1 and takes the image's mean (63 x 0.1 + 1.0) / 64.
    start, after = probability(model, 1.0), probability(model, (63 * 0.1 + 1.0) / 64)
    np.testing.assert_allclose(perfect[:, 0], start, rtol=1e-5)
    np.testing.assert_allclose(perfect[:, 1:], after, rtol=1e-5)
    minimal = (start + after) / 2 / STEPS + after * (STEPS - 1) / STEPS
    np.testing.assert_allclose(faithfulness.curve_auc(perfect), minimal, rtol=1e-5)
    # Any map that ranks the pixel later deletes it later: a larger area.
    for elsewhere in [(0, 0), (7, 7), (5, 2)]:
        curves = faithfulness.perturbation_curves(
            model, images, map_peaked_at(elsewhere), 1, "deletion", Perturbation(steps=STEPS)
        )
        assert (faithfulness.curve_auc(curves) > faithfulness.curve_auc(perfect) + 1e-3).all(), elsewhere


def test_inserting_the_read_pixel_first_gives_the_largest_insertion_auc():
    model = one_pixel_model()
    images = images_with_bright_pixel()
    setting = Perturbation(steps=STEPS, blur_sigma_px=1.0)
    perfect = faithfulness.curve_auc(
        faithfulness.perturbation_curves(model, images, map_peaked_at(PIXEL), 1, "insertion", setting)
    )
    worst = faithfulness.curve_auc(
        faithfulness.perturbation_curves(model, images, -map_peaked_at(PIXEL), 1, "insertion", setting)
    )
    curves = faithfulness.perturbation_curves(model, images, map_peaked_at(PIXEL), 1, "insertion", setting)
    assert curves[0, 0] < 0.2 < 0.9 < curves[0, 1]  # blurred, the pixel is dim; restored first, it decides
    np.testing.assert_allclose(curves[:, -1], probability(model, 1.0), rtol=1e-5)  # all restored: the image
    assert (perfect > worst + 0.3).all()


def test_curves_are_the_same_in_any_batching_and_in_3d():
    model = one_pixel_model()
    images = images_with_bright_pixel(5)
    maps = np.random.default_rng(0).random((5, SIDE, SIDE)).astype(np.float32)
    one = faithfulness.perturbation_curves(model, images, maps, 1, "deletion", Perturbation(steps=4, batch_size=5))
    many = faithfulness.perturbation_curves(model, images, maps, 1, "deletion", Perturbation(steps=4, batch_size=64))
    np.testing.assert_allclose(one, many, rtol=1e-6)
    inputs = keras.Input((4, 4, 2, 1))
    volume_model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    volumes = np.random.default_rng(1).random((2, 4, 4, 2, 1)).astype(np.float32)
    curves = faithfulness.perturbation_curves(
        volume_model, volumes, volumes[..., 0], [0, 1], "insertion", Perturbation(steps=4)
    )
    assert curves.shape == (2, 5) and ((curves >= 0) & (curves <= 1)).all()


def test_seeing_the_image_through_a_full_map_changes_nothing_and_through_an_empty_one_drops_to_the_mean():
    model = one_pixel_model()
    images = images_with_bright_pixel()
    drop, rose = faithfulness.confidence_change(model, images, np.ones((3, SIDE, SIDE)), 1)
    np.testing.assert_allclose(drop, 0.0, atol=1e-6)
    assert not rose.any()
    drop, rose = faithfulness.confidence_change(model, images, np.zeros((3, SIDE, SIDE)), 1)
    start, faded = probability(model, 1.0), probability(model, (63 * 0.1 + 1.0) / 64)
    np.testing.assert_allclose(drop, (start - faded) / start, rtol=1e-5)
    # Class 0 gains when the pixel fades: its probability rises, and the drop is zero.
    drop, rose = faithfulness.confidence_change(model, images, np.zeros((3, SIDE, SIDE)), 0)
    assert rose.all() and (drop == 0).all()


def test_scores_come_with_intervals_and_counts():
    model = one_pixel_model()
    images = images_with_bright_pixel(6)
    good = faithfulness.score_faithfulness(model, images, map_peaked_at(PIXEL, 6), 1, Perturbation(steps=STEPS))
    bad = faithfulness.score_faithfulness(model, images, map_peaked_at((7, 0), 6), 1, Perturbation(steps=STEPS))
    assert set(good) == {"deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"}
    for record in good.values():
        assert record["n"] == 6 and "ci95" in record
    assert good["deletion_auc"]["value"] < bad["deletion_auc"]["value"]
    assert good["insertion_auc"]["value"] > bad["insertion_auc"]["value"]
    assert good["average_drop"]["value"] < bad["average_drop"]["value"]
    low, high = good["increase_in_confidence"]["ci95"]
    assert 0 <= low < high <= 1  # Wilson: never a zero-width interval at 0 or 1


def test_bad_arguments_are_refused():
    model = one_pixel_model()
    images = images_with_bright_pixel()
    with pytest.raises(DataError, match="spatial shape"):
        faithfulness.perturbation_curves(model, images, np.ones((3, 4, 4)), 1, "deletion")
    with pytest.raises(ParameterError, match="mode"):
        faithfulness.perturbation_curves(model, images, np.ones((3, SIDE, SIDE)), 1, "erase")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="classes"):
        faithfulness.perturbation_curves(model, images, np.ones((3, SIDE, SIDE)), [1, 0], "deletion")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        faithfulness.confidence_change(model, images, np.full((3, SIDE, SIDE), 2.0), 1)
    with pytest.raises(ParameterError, match="steps"):
        Perturbation(steps=0)


def test_several_maps_scored_together_equal_each_map_alone_in_any_grouping():
    model = one_pixel_model()
    images = images_with_bright_pixel(3)
    maps = {"peak": map_peaked_at(PIXEL), "corner": map_peaked_at((0, 0)), "flat": np.full((3, SIDE, SIDE), 0.5)}
    setting = Perturbation(steps=4)
    together = faithfulness.faithfulness_of_maps(model, images, maps, 1, setting)
    one_per_call = faithfulness.faithfulness_of_maps(model, images, maps, 1, setting, max_bytes=1)
    for name, found in maps.items():
        alone = faithfulness.per_image_faithfulness(model, images, found, 1, setting)
        for metric, values in alone.items():
            np.testing.assert_allclose(together[name][metric], values, rtol=1e-6, err_msg=f"{name} {metric}")
            np.testing.assert_allclose(one_per_call[name][metric], values, rtol=1e-6, err_msg=f"{name} {metric}")
