"""Tests of common.data.phantoms.writers: the DICOM CT series and masks of chest volumes."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from common.data.phantoms import make_chest_volumes, render_phantom
from tests.data.phantoms.helpers import VOLUME_SHAPE, file_bytes


@pytest.fixture(scope="module")
def volume_dir(tmp_path_factory):
    return make_chest_volumes(tmp_path_factory.mktemp("volumes"), n_per_class=2, shape=VOLUME_SHAPE, seed=3)


def read_series(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]


def test_volume_dicom_files_are_identical_across_runs(tmp_path, volume_dir):
    again = make_chest_volumes(tmp_path, n_per_class=2, shape=VOLUME_SHAPE, seed=3)
    assert file_bytes(again) == file_bytes(volume_dir)


def test_dicom_series_are_complete_valid_ct(volume_dir):
    series_uids, patient_ids = set(), set()
    for class_name in ("normal", "tumor"):
        case_dirs = sorted((volume_dir / "series" / class_name).iterdir())
        assert [p.name for p in case_dirs] == [f"{class_name}_0000", f"{class_name}_0001"]
        for case_dir in case_dirs:
            slices = read_series(case_dir)
            assert len(slices) == VOLUME_SHAPE[2]
            assert all(ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian for ds in slices)
            assert {ds.Modality for ds in slices} == {"CT"}
            assert len({ds.PatientID for ds in slices}) == 1 and slices[0].PatientID.startswith("PH")
            # No header names the class (the shortcut audit found it there once).
            assert class_name not in str(slices[0].PatientID) + str(slices[0].PatientName)
            assert class_name not in slices[0].SeriesDescription
            patient_ids.add(slices[0].PatientID)
            assert len({ds.StudyInstanceUID for ds in slices}) == 1
            assert len({ds.SeriesInstanceUID for ds in slices}) == 1
            assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
            series_uids.add(slices[0].SeriesInstanceUID)
            assert sorted(int(ds.InstanceNumber) for ds in slices) == list(range(1, VOLUME_SHAPE[2] + 1))
            assert all((ds.Rows, ds.Columns) == VOLUME_SHAPE[:2] for ds in slices)
    assert len(series_uids) == 4
    assert len(patient_ids) == 4 and len({len(p) for p in patient_ids}) == 1


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
        slices = sorted(
            read_series(volume_dir / "series" / class_name / f"{class_name}_0001"),
            key=lambda ds: int(ds.InstanceNumber),
        )
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
