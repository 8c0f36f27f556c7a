"""Tests of the phantoms' lesion_scale (smaller, fainter lesions) and start_index (later indices of a set)."""

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from common.data.phantoms import (
    HU_INTERCEPT,
    MARKER_NAME,
    ensure_phantoms,
    make_chest_slices,
    make_chest_volumes,
    make_multi_organ,
    render_phantom,
)
from common.errors import ParameterError
from common.evaluation.contrast_detail import lesion_properties
from tests.data.phantoms.helpers import file_bytes, read_png

# Digests of the pixels as written (8-bit PNG values, or the DICOM's stored uint16) and of the mask, made
# with the renderers before lesion_scale existed (seed 7): the default scale must keep them.
BEFORE_LESION_SCALE = [
    ("chest", "benign", 0, (48, 48), "b4b7894aa801188b"),
    ("chest", "pneumonia", 1, (48, 48), "afc73b13c44c9f1b"),
    ("multi_organ", "brain_tumor", 0, (48, 48), "9fe7f6462e58ea0b"),
    ("multi_organ", "breast_tumor", 1, (48, 48), "61615ed14ce838ff"),
    ("multi_organ", "kidney_tumor", 2, (48, 48), "995dc0db611ce1a4"),
    ("chest_volumes", "tumor", 0, (24, 24, 6), "baa8988e8de15312"),
]
# ensure_phantoms("chest", root, n_per_class=1, size=24)'s folder before lesion_scale and start_index existed.
DEFAULT_CHEST_FOLDER = "chest-eca3c0e3a357"
TINY_VOLUME = (16, 16, 4)


def _written_digest(kind: str, phantom) -> str:
    if kind == "chest_volumes":
        pixels = np.clip(np.rint(phantom.image - HU_INTERCEPT), 0, 4095).astype(np.uint16)
    else:
        pixels = np.rint(phantom.image * 255).astype(np.uint8)
    return hashlib.sha256(pixels.tobytes() + np.packbits(phantom.mask).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("kind, class_name, index, shape, digest", BEFORE_LESION_SCALE)
def test_unit_scale_gives_the_images_made_before_it_existed(kind, class_name, index, shape, digest):
    default = render_phantom(kind, class_name, index, shape, seed=7)
    assert _written_digest(kind, default) == digest
    for scale in [(1.0, 1.0), (1, 1), [np.float32(1.0), np.int64(1)]]:
        scaled = render_phantom(kind, class_name, index, shape, seed=7, lesion_scale=scale)
        for default_array, scaled_array in zip(default, scaled):
            assert scaled_array.dtype == default_array.dtype
            assert scaled_array.tobytes() == default_array.tobytes()  # bit for bit


def _mean_area(class_name: str, scale) -> float:
    return float(
        np.mean([render_phantom("chest", class_name, i, (96, 96), lesion_scale=scale).mask.sum() for i in range(6)])
    )


@pytest.mark.parametrize("class_name", ["benign", "malignant"])
def test_size_factor_scales_the_radius(class_name):
    # Half the radius: a quarter of the area (the outline and the margin are relative to the radius).
    ratio = _mean_area(class_name, (0.5, 1.0)) / _mean_area(class_name, (1.0, 1.0))
    assert 0.18 < ratio < 0.33
    ratio = _mean_area(class_name, (0.8, 1.0)) / _mean_area(class_name, (1.0, 1.0))
    assert 0.5 < ratio < 0.78  # 0.64 expected


@pytest.mark.parametrize(
    "kind, class_name, shape",
    [
        ("chest", "benign", (64, 64)),
        ("chest", "pneumonia", (64, 64)),
        ("multi_organ", "kidney_tumor", (64, 64)),
        ("multi_organ", "breast_tumor", (64, 64)),
        ("chest_volumes", "tumor", TINY_VOLUME),
    ],
)
def test_contrast_factor_moves_the_lesion_linearly_towards_the_tissue_beneath(kind, class_name, shape):
    # Same anatomy, lesion and noise at every contrast factor; blur, window and noise are linear, so the
    # image at factor c is image(0) + c * (image(1) - image(0)) wherever no clipping intervenes.
    for index in range(2):
        images = {c: render_phantom(kind, class_name, index, shape, lesion_scale=(1.0, c)) for c in (0.0, 0.5, 1.0)}
        assert np.array_equal(images[0.0].mask, images[1.0].mask) and np.array_equal(images[0.5].mask, images[1.0].mask)
        full, none, half = (images[c].image.astype(float) for c in (1.0, 0.0, 0.5))
        if kind == "chest_volumes":
            unclipped = (np.minimum(full, none) > HU_INTERCEPT) & (np.maximum(full, none) < HU_INTERCEPT + 4095)
        else:
            unclipped = (np.minimum(full, none) > 0) & (np.maximum(full, none) < 1)
        scale = np.abs(full - none).max()
        assert scale > 0  # the lesion changes the image
        assert np.abs(half - (none + 0.5 * (full - none)))[unclipped].max() < 1e-4 * max(scale, 1.0)
        # Invisible at factor 0: the lesion's pixels look like the lesion-free tissue around them.
        changed = np.abs(full - none) > 1e-6 * scale
        assert changed[images[1.0].mask].mean() > 0.9


def test_contrast_factor_leaves_the_image_away_from_the_lesion_bit_for_bit():
    for index in range(3):
        default = render_phantom("chest", "malignant", index, (64, 64))
        faint = render_phantom("chest", "malignant", index, (64, 64), lesion_scale=(1.0, 0.5))
        # The scanner blur (0.6 px, truncated at 3 sigma, one axis after the other) carries the lesion at
        # most 2 px out along each axis: a 5 x 5 square around each lesion pixel.
        far = ~ndimage.binary_dilation(default.mask, structure=np.ones((3, 3), bool), iterations=2)
        assert np.array_equal(faint.image[far], default.image[far])
        assert not np.array_equal(faint.image[default.mask], default.image[default.mask])


def test_contrast_factor_halves_the_measured_contrast():
    masks, full, half = [], [], []
    for class_name in ("benign", "malignant"):
        for index in range(4):
            default = render_phantom("chest", class_name, index, (96, 96))
            faint = render_phantom("chest", class_name, index, (96, 96), lesion_scale=(1.0, 0.5))
            masks.append(default.mask)
            full.append(default.image)
            half.append(faint.image)
    ratio = (
        lesion_properties(half, masks, ring_px=3)["contrast"] / lesion_properties(full, masks, ring_px=3)["contrast"]
    )
    assert 0.35 < ratio.median() < 0.65


def test_scale_does_not_touch_lesion_free_images():
    for kind, class_name, shape in [("chest", "normal", (32, 32)), ("chest_volumes", "normal", TINY_VOLUME)]:
        default = render_phantom(kind, class_name, 0, shape)
        scaled = render_phantom(kind, class_name, 0, shape, lesion_scale=(0.5, 0.3))
        assert default.image.tobytes() == scaled.image.tobytes() and not scaled.mask.any()


@pytest.mark.parametrize("scale", [(0.0, 1.0), (-1.0, 1.0), (1.0, -0.1), (1.0, float("nan")), (1.0,), "big", None])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ParameterError, match="lesion_scale"):
        render_phantom("chest", "benign", 0, (32, 32), lesion_scale=scale)


def test_start_index_reproduces_the_indices_of_a_set_starting_at_zero(tmp_path):
    whole = file_bytes(make_chest_slices(tmp_path / "whole", n_per_class=4, size=24, classes=("benign", "normal")))
    later = file_bytes(
        make_chest_slices(tmp_path / "later", n_per_class=2, size=24, classes=("benign", "normal"), start_index=2)
    )
    assert sorted(later) == sorted(name for name in whole if name.endswith(("_0002.png", "_0003.png")))
    assert all(later[name] == whole[name] for name in later)

    organs = file_bytes(make_multi_organ(tmp_path / "organs", n_per_class=1, size=24, start_index=5))
    assert "images/lung_tumor/lung_tumor_0005.png" in organs and len(organs) == 16


def test_start_index_reproduces_volumes_with_their_uids_and_file_names(tmp_path):
    whole = file_bytes(make_chest_volumes(tmp_path / "whole", n_per_class=2, shape=TINY_VOLUME))
    later = file_bytes(make_chest_volumes(tmp_path / "later", n_per_class=1, shape=TINY_VOLUME, start_index=1))
    assert later and all(name in whole and later[name] == whole[name] for name in later)
    assert all("_0001" in name for name in later)


def test_scaled_lesion_series_get_their_own_uids(tmp_path):
    default = make_chest_volumes(tmp_path / "default", n_per_class=1, shape=TINY_VOLUME)
    scaled = make_chest_volumes(tmp_path / "scaled", n_per_class=1, shape=TINY_VOLUME, lesion_scale=(0.6, 0.5))

    def names(root, case):
        return sorted(path.name for path in (root / "series" / case.split("_")[0] / case).iterdir())

    assert names(default, "normal_0000") == names(scaled, "normal_0000")  # the same images, the same UIDs
    assert set(names(default, "tumor_0000")).isdisjoint(names(scaled, "tumor_0000"))


@pytest.mark.parametrize("start_index", [-1, 1.5, True])
def test_bad_start_index_is_refused(tmp_path, start_index):
    with pytest.raises(ParameterError, match="start_index"):
        make_chest_slices(tmp_path, n_per_class=1, size=24, start_index=start_index)


def test_cache_keeps_default_folders_and_keys_the_new_arguments(tmp_path):
    default = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    assert default.name == DEFAULT_CHEST_FOLDER  # folders made before the new arguments are still found
    assert "lesion_scale" not in json.loads((default / MARKER_NAME).read_text())["parameters"]
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, lesion_scale=[1, 1], start_index=0) == default

    hard = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, lesion_scale=(0.6, 0.5))
    later = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, start_index=3)
    assert len({default, hard, later}) == 3
    assert json.loads((hard / MARKER_NAME).read_text())["parameters"]["lesion_scale"] == [0.6, 0.5]
    assert json.loads((later / MARKER_NAME).read_text())["parameters"]["start_index"] == 3
    assert sorted(p.name for p in (later / "images" / "benign").iterdir()) == ["benign_0003.png"]
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, lesion_scale=[np.float64(0.6), 0.5]) == hard

    # The stratum's files are the scaled renderings: the same index, a smaller lesion.
    hard_phantom = render_phantom("chest", "malignant", 0, (24, 24), lesion_scale=(0.6, 0.5))
    assert np.array_equal(read_png(hard / "masks/malignant/malignant_0000.png") > 0, hard_phantom.mask)
    assert 0 < hard_phantom.mask.sum() < render_phantom("chest", "malignant", 0, (24, 24)).mask.sum()
