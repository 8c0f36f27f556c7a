"""Patient groups from file names and DICOM headers, and splits that keep them whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.config import registry
from common.data import folders, manifest, splits
from common.data.patient_groups import GroupRule, describe, with_patient_groups
from common.errors import DataError
from common.experiments import loading

RULE = {
    "name": "test",
    "groups": {
        "field": "patient",
        "patterns": ["^(?P<group>[^/]+)/", "^(?P<group>.+)_[^_/]+$"],
        "dicom_tag": "PatientID",
    },
}


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _dicom(path: Path, patient: str) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.PatientID = patient
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Rows, dataset.Columns = 8, 8
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.SamplesPerPixel, dataset.PixelRepresentation = 1, 0
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.PixelData = np.arange(64, dtype=np.uint16).reshape(8, 8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Cancer slices named <patient>_<slice> (TCIA ids hold underscores), pneumonia in case folders, one DICOM."""
    for patient in ("Lung_Dx-A0001", "Lung_Dx-A0002", "Lung_Dx-B0003"):
        for slice_number in range(3):
            _png(tmp_path / "cancer" / f"{patient}_{slice_number}.png", 40 + slice_number)
    _png(tmp_path / "cancer" / "loose.png", 10)
    for case in ("1", "2", "3"):
        for index in range(2):
            _png(tmp_path / "pneumonia" / case / f"figure_{index}.png", 90 + index)
    _dicom(tmp_path / "cancer" / "slice.dcm", "Lung_Dx-A0001")
    return tmp_path


def test_groups_come_from_names_folders_and_dicom_headers(data: Path):
    samples, _ = folders.load_class_folders(data)
    grouped = with_patient_groups(samples, data, GroupRule.from_manifest(RULE))
    by_name = dict(zip(grouped["path"].map(lambda p: Path(p).relative_to(data).as_posix()), grouped["group"]))
    assert by_name["cancer/Lung_Dx-A0001_0.png"] == by_name["cancer/Lung_Dx-A0001_2.png"] == "patient:Lung_Dx-A0001"
    assert by_name["cancer/slice.dcm"] == "patient:Lung_Dx-A0001"  # the header, not the file name
    assert by_name["pneumonia/1/figure_0.png"] == by_name["pneumonia/1/figure_1.png"] == "patient:1"
    assert pd.isna(by_name["cancer/loose.png"])  # no rule names it: its own group
    assert grouped["group"].nunique() == 6
    assert "16 of 17 images grouped into 6 patient groups" in describe(grouped, GroupRule.from_manifest(RULE))


def test_grouped_split_keeps_every_patient_on_one_side(data: Path):
    samples, _ = folders.load_class_folders(data)
    grouped = with_patient_groups(samples, data, GroupRule.from_manifest(RULE))
    for seed in range(5):
        table = splits.split_samples(grouped, (0.5, 0.5), seed=seed)
        named = table[table["group"].notna()]
        assert (named.groupby("group")["split"].nunique() == 1).all()


def test_without_a_rule_nothing_changes(data: Path):
    samples, _ = folders.load_class_folders(data)
    assert GroupRule.from_manifest({"name": "x"}) is None
    assert with_patient_groups(samples, data, None)["group"].isna().all()
    assert describe(samples, None).startswith("no patient groups")


@pytest.mark.parametrize(
    ("pattern", "message"), [("^(?P<group>[", "is invalid"), ("^(.+)_", "needs a named group (?P<group>...)")]
)
def test_a_bad_pattern_is_named(pattern: str, message: str):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        GroupRule.from_manifest({"name": "m", "groups": {"patterns": [pattern]}})


def test_the_shipped_manifest_groups_the_cancer_slices(data: Path):
    """Lung-PET-CT-Dx ids and numbered case folders are groups; other names with an underscore are not."""
    _png(data / "pneumonia" / "scan_1.png", 5)
    _png(data / "pneumonia" / "scan_2.png", 6)
    rule = GroupRule.from_manifest(manifest.load_manifest("ct_pneumonia_lung_pet_ct_dx"))
    samples, _ = folders.load_class_folders(data)
    grouped = with_patient_groups(samples, data, rule)
    assert grouped.loc[grouped["path"].str.endswith("scan_1.png"), "group"].isna().all()
    assert set(grouped["group"].dropna()) == {
        "patient:Lung_Dx-A0001",
        "patient:Lung_Dx-A0002",
        "patient:Lung_Dx-B0003",
        "patient:1",
        "patient:2",
        "patient:3",
    }


def test_nine_models_real_data_split_keeps_patients_whole(data: Path):
    """The paper's per-class counts cannot keep groups whole: their proportions are used instead."""
    params = registry.resolve("nine-models", "paper", None, data)
    assert params.split_counts  # the paper's 714 / 150 / 150
    loaded = loading.load_samples(params)
    assert loaded.samples["group"].notna().sum() == 16
    table = loading.split(params, loaded.samples)
    assert len(table) == len(loaded.samples)
    named = table[table["group"].notna()]
    assert (named.groupby("group")["split"].nunique() == 1).all()
