"""Tests of common.data.phantoms.lesions: where lesions lie and how large they are."""

import numpy as np
import pytest

from common.data.phantoms import render_phantom
from common.data.phantoms.geometry import Grid
from common.data.phantoms.lesions import LESION_STYLES, LesionStyle, lesion_rho
from tests.data.phantoms.helpers import CHEST_CLASSES, LESION_FREE, MULTI_ORGAN_CLASSES


@pytest.mark.parametrize("kind, classes", [("chest", CHEST_CLASSES), ("multi_organ", MULTI_ORGAN_CLASSES)])
def test_lesions_lie_inside_the_organ_region(kind, classes):
    for class_name in classes:
        for index in range(4):
            phantom = render_phantom(kind, class_name, index, (64, 64))
            assert phantom.region.any()
            assert phantom.mask.any() == (class_name not in LESION_FREE), (class_name, index)
            assert not (phantom.mask & ~phantom.region).any(), (class_name, index)


def test_benign_nodules_are_smaller_than_malignant_ones():
    def area(class_name):
        return np.mean([render_phantom("chest", class_name, i, (96, 96)).mask.sum() for i in range(8)])

    benign_area = area("benign")
    # Diameter of at least ~5% of the width keeps a benign nodule visible at 64-96 px.
    assert benign_area > np.pi * (0.025 * 96) ** 2
    assert area("malignant") > 2 * benign_area


def test_lesion_without_lobes_or_spicules_is_a_ball():
    grid = Grid.for_shape((32, 32, 8))
    style = LesionStyle((0.2, 0.2), 0.0, (0, 0), (0.0, 0.0), (0.0, 0.0), 0.0)
    coords = grid.axes()
    rho = lesion_rho(coords, (0.1, -0.2, 0.0), 0.2, style, np.random.default_rng(0))
    distance = np.sqrt((coords[0] - 0.1) ** 2 + (coords[1] + 0.2) ** 2 + coords[2] ** 2)
    assert rho.shape == grid.shape
    assert np.allclose(rho, distance / 0.2)


def test_lesion_styles_keep_solid_nodules_inside_the_lung():
    for name in ("benign_nodule", "malignant_nodule", "lung_nodule", "volume_nodule"):
        style = LESION_STYLES[name]
        assert style.margin > 1 and not style.diffuse and not style.exophytic, name
    assert LESION_STYLES["pneumonia"].diffuse and LESION_STYLES["kidney_tumour"].exophytic
    # Benign nodules are smaller than malignant ones over their whole radius ranges.
    assert LESION_STYLES["benign_nodule"].radius[1] < LESION_STYLES["malignant_nodule"].radius[0]
