"""Tests of the deterministic phantom data sets (tiny sizes, written to tmp_path)."""

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian

from common.errors import ParameterError
from common.data.phantoms import (
    MARKER_NAME,
    PHANTOM_KINDS,
    PhantomKind,
    ensure_phantoms,
    make_chest_slices,
    make_chest_volumes,
    make_multi_organ,
    render_phantom,
)

CHEST_CLASSES = ("normal", "benign", "malignant", "pneumonia")
MULTI_ORGAN_CLASSES = ("brain_tumor", "brain_no_tumor", "breast_tumor", "breast_no_tumor",
                       "kidney_tumor", "kidney_no_tumor", "lung_tumor", "lung_no_tumor")
LESION_FREE = {"normal", "brain_no_tumor", "breast_no_tumor", "kidney_no_tumor", "lung_no_tumor"}
VOLUME_SHAPE = (32, 32, 8)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


@pytest.fixture(scope="module")
def chest_dir(tmp_path_factory):
    return make_chest_slices(tmp_path_factory.mktemp("chest"), n_per_class=3, size=48)


@pytest.fixture(scope="module")
def volume_dir(tmp_path_factory):
    return make_chest_volumes(tmp_path_factory.mktemp("volumes"), n_per_class=2, shape=VOLUME_SHAPE, seed=3)


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
    assert np.array_equal(read_png(chest_dir / "images/malignant/malignant_0002.png"),
                          np.rint(phantom.image * 255).astype(np.uint8))
    assert np.array_equal(read_png(chest_dir / "masks/malignant/malignant_0002.png") > 0, phantom.mask)


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


def test_multi_organ_layout(tmp_path):
    out = make_multi_organ(tmp_path, n_per_class=1, size=32)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(MULTI_ORGAN_CLASSES)
    for class_name in MULTI_ORGAN_CLASSES:
        mask = read_png(out / "masks" / class_name / f"{class_name}_0000.png")
        assert read_png(out / "images" / class_name / f"{class_name}_0000.png").shape == (32, 32)
        assert mask.any() == (class_name not in LESION_FREE)


def test_organs_look_different():
    means = {organ: np.mean([render_phantom("multi_organ", f"{organ}_no_tumor", i, (64, 64)).image for i in range(3)],
                            axis=0)
             for organ in ("brain", "breast", "kidney", "lung")}
    organs = list(means)
    for a in range(len(organs)):
        for b in range(a + 1, len(organs)):
            assert np.abs(means[organs[a]] - means[organs[b]]).mean() > 0.05, (organs[a], organs[b])


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


def test_volume_dicom_files_are_identical_across_runs(tmp_path, volume_dir):
    again = make_chest_volumes(tmp_path, n_per_class=2, shape=VOLUME_SHAPE, seed=3)
    assert file_bytes(again) == file_bytes(volume_dir)


def read_series(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]


def test_dicom_series_are_complete_valid_ct(volume_dir):
    series_uids = set()
    for class_name in ("normal", "tumor"):
        case_dirs = sorted((volume_dir / "series" / class_name).iterdir())
        assert [p.name for p in case_dirs] == [f"{class_name}_0000", f"{class_name}_0001"]
        for case_dir in case_dirs:
            slices = read_series(case_dir)
            assert len(slices) == VOLUME_SHAPE[2]
            assert all(ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian for ds in slices)
            assert {ds.Modality for ds in slices} == {"CT"}
            assert {ds.PatientID for ds in slices} == {case_dir.name}
            assert len({ds.StudyInstanceUID for ds in slices}) == 1
            assert len({ds.SeriesInstanceUID for ds in slices}) == 1
            assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
            series_uids.add(slices[0].SeriesInstanceUID)
            assert sorted(int(ds.InstanceNumber) for ds in slices) == list(range(1, VOLUME_SHAPE[2] + 1))
            assert all((ds.Rows, ds.Columns) == VOLUME_SHAPE[:2] for ds in slices)
    assert len(series_uids) == 4


def test_dicom_file_names_are_not_in_slice_order(volume_dir):
    shuffled = 0
    for case_dir in sorted((volume_dir / "series").glob("*/*")):
        instance_numbers = [int(ds.InstanceNumber) for ds in read_series(case_dir)]
        shuffled += instance_numbers != sorted(instance_numbers)
    assert shuffled == 4


def test_dicom_positions_follow_instance_number(volume_dir):
    slices = sorted(read_series(volume_dir / "series/tumor/tumor_0000"), key=lambda ds: int(ds.InstanceNumber))
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in slices])
    spacing = float(slices[0].SpacingBetweenSlices)
    assert spacing > 0
    assert np.allclose(np.diff(z), spacing, atol=1e-3)  # z increases with InstanceNumber
    assert np.allclose([float(v) for v in slices[0].ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
    assert len({tuple(float(v) for v in ds.ImagePositionPatient[:2]) for ds in slices}) == 1


def test_dicom_rescale_recovers_the_rendered_hu_and_mask(volume_dir):
    for class_name in ("normal", "tumor"):
        phantom = render_phantom("chest_volumes", class_name, 1, VOLUME_SHAPE, seed=3)
        slices = sorted(read_series(volume_dir / "series" / class_name / f"{class_name}_0001"),
                        key=lambda ds: int(ds.InstanceNumber))
        hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices], axis=-1)
        assert hu.shape == VOLUME_SHAPE
        assert np.abs(hu - phantom.image).max() <= 1.0
        assert hu.min() >= -1024 and np.median(hu[phantom.region]) < -700  # lungs hold air

        with np.load(volume_dir / "masks" / class_name / f"{class_name}_0001.npz", allow_pickle=False) as stored:
            mask = stored["mask"]
        assert mask.dtype == np.uint8 and mask.shape == VOLUME_SHAPE
        assert np.array_equal(mask > 0, phantom.mask)
        assert mask.any() == (class_name == "tumor")
        if class_name == "tumor":
            assert not (phantom.mask & ~phantom.region).any()
            # A soft-tissue nodule in aerated lung (its rim blurs into the lung at this tiny size).
            assert np.median(hu[phantom.mask]) > np.median(hu[phantom.region & ~phantom.mask]) + 400


def test_ensure_phantoms_generates_once_and_reuses(tmp_path):
    folder = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    marker = folder / MARKER_NAME
    record = json.loads(marker.read_text())
    assert folder.parent == tmp_path and folder.name.startswith("chest-")
    assert record["kind"] == "chest" and record["parameters"]["size"] == 24
    image = folder / "images/benign/benign_0000.png"
    stamps = (marker.stat().st_mtime_ns, image.stat().st_mtime_ns)
    # Spelling out a default names the same data set.
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, seed=0) == folder
    assert (marker.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, seed=1) != folder
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ensure_phantoms_redoes_a_folder_without_marker(tmp_path):
    folder = ensure_phantoms("multi_organ", tmp_path, n_per_class=1, size=24)
    (folder / MARKER_NAME).unlink()
    (folder / "images/brain_tumor/brain_tumor_0000.png").unlink()
    assert ensure_phantoms("multi_organ", tmp_path, n_per_class=1, size=24) == folder
    assert (folder / MARKER_NAME).is_file()
    assert (folder / "images/brain_tumor/brain_tumor_0000.png").is_file()


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail_halfway(out_dir, n_per_class, size=128, seed=0):
        make_chest_slices(out_dir, n_per_class, size, seed, classes=("normal",))
        raise KeyboardInterrupt

    monkeypatch.setitem(PHANTOM_KINDS, "chest", PhantomKind(fail_halfway, PHANTOM_KINDS["chest"].scenes))
    with pytest.raises(KeyboardInterrupt):
        ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("call", [
    lambda root: ensure_phantoms("ct_scans", root),
    lambda root: ensure_phantoms("chest", root, n_per_class=1, colour=True),
    lambda root: make_chest_slices(root, 0),
    lambda root: make_chest_slices(root, 1, size=8),
    lambda root: make_chest_slices(root, 1, classes=("normal", "covid")),
    lambda root: make_chest_volumes(root, 1, shape=(32, 32)),
    lambda root: render_phantom("multi_organ", "liver_tumor", 0, (32, 32)),
])
def test_bad_parameters_raise_parameter_error(tmp_path, call):
    with pytest.raises(ParameterError):
        call(tmp_path)
