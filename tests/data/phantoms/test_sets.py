"""Tests of common.data.phantoms.sets: the kinds registry, rendering and the 2D makers (tiny sizes)."""

import numpy as np
import pytest

from common.data.phantoms import (
    PHANTOM_KINDS,
    make_chest_slices,
    make_chest_volumes,
    make_multi_organ,
    render_phantom,
)
from common.errors import ParameterError
from tests.data.phantoms.helpers import (
    CHEST_CLASSES,
    LESION_FREE,
    MULTI_ORGAN_CLASSES,
    file_bytes,
    read_png,
)


@pytest.fixture(scope="module")
def chest_dir(tmp_path_factory):
    return make_chest_slices(tmp_path_factory.mktemp("chest"), n_per_class=3, size=48)


def test_registry_lists_the_kinds_and_class_orders():
    assert set(PHANTOM_KINDS) == {"chest", "multi_organ", "chest_volumes"}
    assert PHANTOM_KINDS["chest"].classes == CHEST_CLASSES
    assert PHANTOM_KINDS["multi_organ"].classes == MULTI_ORGAN_CLASSES
    assert PHANTOM_KINDS["chest_volumes"].classes == ("normal", "tumor")


def test_chest_layout_counts_and_masks(chest_dir):
    for class_name in CHEST_CLASSES:
        images = sorted((chest_dir / "images" / class_name).iterdir())
        masks = sorted((chest_dir / "masks" / class_name).iterdir())
        assert [p.name for p in images] == [f"{class_name}_{i:04d}.png" for i in range(3)]
        assert [p.name for p in masks] == [p.name for p in images]
        for image_path, mask_path in zip(images, masks):
            image, mask = read_png(image_path), read_png(mask_path)
            assert image.shape == mask.shape == (48, 48)
            assert image.std() > 10  # an actual picture, not a flat field
            assert set(np.unique(mask)) <= {0, 255}
            assert mask.any() == (class_name != "normal"), mask_path


def test_written_files_match_rendered_phantoms(chest_dir):
    phantom = render_phantom("chest", "malignant", 2, (48, 48))
    assert np.array_equal(
        read_png(chest_dir / "images/malignant/malignant_0002.png"), np.rint(phantom.image * 255).astype(np.uint8)
    )
    assert np.array_equal(read_png(chest_dir / "masks/malignant/malignant_0002.png") > 0, phantom.mask)


def test_multi_organ_layout(tmp_path):
    out = make_multi_organ(tmp_path, n_per_class=1, size=32)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(MULTI_ORGAN_CLASSES)
    for class_name in MULTI_ORGAN_CLASSES:
        mask = read_png(out / "masks" / class_name / f"{class_name}_0000.png")
        assert read_png(out / "images" / class_name / f"{class_name}_0000.png").shape == (32, 32)
        assert mask.any() == (class_name not in LESION_FREE)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path, chest_dir):
    again = file_bytes(make_chest_slices(tmp_path / "again", n_per_class=3, size=48))
    assert again == file_bytes(chest_dir)
    # An image does not depend on how many images are drawn, nor on which classes.
    fewer = file_bytes(make_chest_slices(tmp_path / "fewer", n_per_class=2, size=48, classes=("benign",)))
    assert fewer and all(again[name] == content for name, content in fewer.items())
    other = file_bytes(make_chest_slices(tmp_path / "other", n_per_class=3, size=48, seed=1))
    assert other.keys() == again.keys()
    changed = [name for name in again if name.startswith("images") and again[name] != other[name]]
    assert len(changed) == 12


@pytest.mark.parametrize(
    "call",
    [
        lambda root: make_chest_slices(root, 0),
        lambda root: make_chest_slices(root, 1, size=8),
        lambda root: make_chest_slices(root, 1, classes=("normal", "covid")),
        lambda root: make_chest_volumes(root, 1, shape=(32, 32)),
        lambda root: render_phantom("multi_organ", "liver_tumor", 0, (32, 32)),
    ],
)
def test_bad_parameters_raise_parameter_error(tmp_path, call):
    with pytest.raises(ParameterError):
        call(tmp_path)
