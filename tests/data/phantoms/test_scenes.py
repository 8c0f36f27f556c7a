"""Tests of common.data.phantoms.scenes: the organ scenes drawn on their own and through render_phantom."""

import numpy as np
import pytest

from common.data.phantoms import render_phantom
from common.data.phantoms.geometry import Grid
from common.data.phantoms.scenes import (
    brain_scene,
    breast_scene,
    chest_scene,
    kidney_scene,
)


def test_organs_look_different():
    means = {
        organ: np.mean(
            [render_phantom("multi_organ", f"{organ}_no_tumor", i, (64, 64)).image for i in range(3)], axis=0
        )
        for organ in ("brain", "breast", "kidney", "lung")
    }
    organs = list(means)
    for a in range(len(organs)):
        for b in range(a + 1, len(organs)):
            assert np.abs(means[organs[a]] - means[organs[b]]).mean() > 0.05, (organs[a], organs[b])


@pytest.mark.parametrize(
    "scene, lesion, shape",
    [
        (chest_scene, "malignant_nodule", (40, 40)),
        (chest_scene, "volume_nodule", (32, 32, 6)),
        (brain_scene, "brain_tumour", (40, 40)),
        (breast_scene, "breast_mass", (40, 40)),
        (kidney_scene, "kidney_tumour", (40, 40)),
    ],
)
def test_scenes_depend_only_on_their_generator(scene, lesion, shape):
    grid = Grid.for_shape(shape)
    first = scene(grid, np.random.default_rng(7), lesion)
    again = scene(grid, np.random.default_rng(7), lesion)
    other = scene(grid, np.random.default_rng(8), lesion)
    assert first.image.dtype == np.float32 and first.image.shape == shape
    assert first.mask.dtype == first.region.dtype == bool
    assert first.mask.shape == first.region.shape == shape
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first.image, other.image)


def test_chest_scene_is_in_hounsfield_units():
    phantom = chest_scene(Grid.for_shape((64, 64)), np.random.default_rng(0), None)
    assert not phantom.mask.any()
    assert np.median(phantom.image[phantom.region]) < -700  # aerated lung
    assert np.median(phantom.image[0]) < -900  # air above the body
    assert phantom.image.max() > 200  # bone
