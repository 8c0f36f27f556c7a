"""Shortcut audit: a class saved at another size or by another scanner is flagged with its subgroup,
classes that differ only by noise are not, groups stay in one fold, and DICOM files and series are read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from common.config import registry
from common.data import folders, shortcut_features, shortcut_models, shortcuts
from common.errors import DataError
from tests.conftest import write_class_folders

N_PER_CLASS = 14  # above the registry's min_subgroup_size of 10
SETTINGS = registry.section("shortcut_audit")


def _samples(images) -> pd.DataFrame:
    return folders.load_class_folders(images)[0]


def _score(audit: shortcuts.ShortcutAudit, part: str, classifier: str) -> shortcuts.ClassifierScore:
    return next(s for s in audit.scores if (s.feature_set, s.classifier) == (part, classifier))


@pytest.fixture(scope="module")
def size_shortcut(tmp_path_factory):
    """Class a at 24 x 20 px, class b at 30 x 20 px: the same noise otherwise."""
    root = tmp_path_factory.mktemp("sizes")
    write_class_folders(root, {"a": N_PER_CLASS}, size=(24, 20), seed=1)
    images = write_class_folders(root, {"b": N_PER_CLASS}, size=(30, 20), seed=2)
    return shortcuts.audit_samples(_samples(images))


@pytest.fixture(scope="module")
def noise_only(tmp_path_factory):
    """Two classes of random images of one size and format (JPEG, so the file sizes vary)."""
    counts = {"a": N_PER_CLASS, "b": N_PER_CLASS}
    images = write_class_folders(tmp_path_factory.mktemp("noise"), counts, suffix=".jpg", seed=3)
    return shortcuts.audit_samples(_samples(images))


def test_a_class_saved_at_another_size_is_flagged_with_its_subgroups(size_shortcut):
    for classifier in shortcuts.CLASSIFIERS:
        estimate = _score(size_shortcut, "metadata", classifier).balanced_accuracy
        assert estimate.value == 1.0 and estimate.low > size_shortcut.level, classifier
    found = {(group.feature, group.value, group.label, group.n) for group in size_shortcut.subgroups}
    assert {("size", "30x20", "b", N_PER_CLASS), ("size", "24x20", "a", N_PER_CLASS)} <= found
    assert size_shortcut.flagged
    assert any("at 30 x 20: 100% b" in text for text in size_shortcut.warnings)
    assert any(text.startswith("Acquisition metadata alone predicts the class") for text in size_shortcut.warnings)
    top = _score(size_shortcut, "metadata", "random forest").top_features
    assert top[0][0] in {"size", "width", "aspect"}


def test_classes_differing_only_by_noise_are_not_flagged(noise_only):
    assert noise_only.chance == 0.5
    for score in noise_only.scores:
        if score.feature_set == "metadata":  # one size and format: only the file size varies, a part of its own
            assert score.status == "no metadata feature varies between the samples"
            continue
        assert score.status == "ok" and score.balanced_accuracy.contains(0.5), (score.feature_set, score.classifier)
    assert noise_only.subgroups == () and noise_only.warnings == () and not noise_only.flagged
    assert noise_only.notes == ()


def test_file_size_that_follows_the_content_is_a_note_not_a_warning(tmp_path):
    """Flat images compress to little, textured ones to much: file size predicts the class, but no shortcut."""
    rng = np.random.default_rng(0)
    for index in range(N_PER_CLASS):
        for name, pixels in (("flat", np.full((32, 32), 90 + index % 3)), ("textured", rng.integers(0, 255, (32, 32)))):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / name / f"{index}.png")
    audit = shortcuts.audit_samples(_samples(tmp_path))
    assert _score(audit, "file_size", "logistic regression").balanced_accuracy.value == 1.0
    assert not audit.flagged and audit.warnings == ()
    assert len(audit.notes) >= 1 and audit.notes[0].startswith("File size alone predicts the class")


def test_record_is_json_ready_with_both_parts_and_classifiers(size_shortcut):
    record = size_shortcut.record()
    json.dumps(record, allow_nan=False)  # raises on anything JSON cannot hold
    assert set(record["metadata"]) == set(record["intensity"]) == {"random_forest", "logistic_regression"}
    score = record["metadata"]["random_forest"]
    assert score["balanced_accuracy"]["unit"] == "images" and score["balanced_accuracy"]["n"] == 2 * N_PER_CLASS
    assert score["folds"] == SETTINGS["cv_folds"] and len(score["top_features"]) <= SETTINGS["top_features"]
    assert record["flagged"] is True and record["subgroups"][0]["sentence"]
    assert "may be real signal" in record["intensity_caveat"]


def test_tables_have_one_row_per_part_and_classifier(size_shortcut):
    table = size_shortcut.table()
    assert list(table.index) == [
        (part, classifier) for part in shortcuts.FEATURE_SETS for classifier in shortcuts.CLASSIFIERS
    ]
    assert table.loc[("metadata", "random forest"), "balanced accuracy [95% CI]"].startswith("1.00 [")
    assert set(size_shortcut.subgroups_table()["value"]) == {"24x20", "30x20"}


def test_the_verdict_puts_every_warning_in_bold_or_says_nothing_was_found(size_shortcut, noise_only):
    flagged = size_shortcut.verdict().split("\n\n")
    warnings = [line for line in flagged if line.startswith("**Warning: possible shortcut.**")]
    assert len(warnings) == len(size_shortcut.warnings) >= 2
    assert any("24 x 20" in line for line in warnings) and any("30 x 20" in line for line in warnings)
    assert noise_only.verdict().startswith("No shortcut found: no metadata classifier's interval lies above")
    assert "**Warning" not in noise_only.verdict()


def test_too_few_samples_are_recorded_not_raised(tmp_path):
    images = write_class_folders(tmp_path, {"a": 3, "b": 1})
    audit = shortcuts.audit_samples(_samples(images))
    for score in audit.scores:
        assert score.status.startswith("too few samples: class 'b' has 1 images")
        assert not score.balanced_accuracy.is_defined and score.folds == 0
    assert not audit.flagged


def test_a_single_class_is_a_data_error(tmp_path):
    samples = _samples(write_class_folders(tmp_path, {"a": 3, "b": 3})).assign(label="a")
    with pytest.raises(DataError, match="at least two classes"):
        shortcuts.audit_samples(samples)


def test_grouped_cross_validation_keeps_each_group_in_one_fold(tmp_path):
    # Twelve groups of three identical copies, labelled at random per group: image-level folds put
    # copies of a test image into training and the forest recalls them; grouped folds cannot.
    rng = np.random.default_rng(5)
    images = write_class_folders(tmp_path, {"a": 6, "b": 6}, seed=6)
    samples = _samples(images)
    copies = samples.loc[samples.index.repeat(3)].reset_index(drop=True)
    copies["group"] = np.repeat(np.arange(12), 3)
    copies["label"] = np.repeat(rng.permutation(["a", "b"] * 6), 3)
    grouped = shortcuts.audit_samples(copies)
    leaky = shortcuts.audit_samples(copies.drop(columns="group"))
    intensity_forest = ("intensity", "random forest")
    assert _score(leaky, *intensity_forest).balanced_accuracy.value > 0.9
    assert _score(grouped, *intensity_forest).balanced_accuracy.contains(0.5)
    assert grouped.grouped and _score(grouped, *intensity_forest).unit == "groups"
    assert "12 groups" in _score(grouped, *intensity_forest).balanced_accuracy.method


def test_balanced_accuracy_is_the_mean_recall_with_a_bootstrap_interval():
    labels = np.array(["a"] * 8 + ["b"] * 2)
    predicted = np.array(["a"] * 4 + ["b"] * 4 + ["b"] * 2)  # recall a 0.5, b 1.0
    estimate = shortcut_models.balanced_accuracy_estimate(labels, predicted, None, 0, 200, 0.95)
    assert estimate.value == pytest.approx(0.75) and estimate.low < 0.75 < estimate.high <= 1.0
    perfect = shortcut_models.balanced_accuracy_estimate(labels, labels, None, 0, 200, 0.95)
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)


def _write_dicom(path, pixels: np.ndarray, manufacturer: str, kernel: str, instance: int = 1) -> None:
    """A tiny CT slice with the given scanner tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.Manufacturer, ds.ConvolutionKernel = "CT", manufacturer, kernel
    ds.InstanceNumber, ds.SliceThickness, ds.PixelSpacing = instance, "1.25", ["0.7", "0.7"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_dicom_scanner_tags_are_metadata_and_a_scanner_subgroup_is_named(tmp_path):
    rng = np.random.default_rng(7)
    for label, manufacturer in (("normal", "Vendor A"), ("tumour", "Vendor B")):
        for index in range(12):
            pixels = rng.integers(0, 2000, (16, 16))
            _write_dicom(tmp_path / label / f"{index:02d}.dcm", pixels, manufacturer, "B30f")
    audit = shortcuts.audit_samples(_samples(tmp_path))
    assert ("manufacturer", "Vendor B", "tumour", 12) in {(g.feature, g.value, g.label, g.n) for g in audit.subgroups}
    assert _score(audit, "metadata", "random forest").balanced_accuracy.value == 1.0 and audit.flagged
    features = shortcut_features.sample_features(_samples(tmp_path)["path"]).metadata.iloc[0]
    assert (features["format"], features["bit_depth"], features["size"]) == ("DICOM", "12", "16x16")
    assert (features["kernel"], features["slice_thickness"], features["pixel_spacing"]) == ("B30f", "1.25", "0.7x0.7")


def test_a_series_folder_is_read_from_its_first_header_and_middle_slice(tmp_path):
    # Five slices whose name order (instances 5, 3, 1, 4, 2) is not their InstanceNumber order;
    # only instance 3 is bright top left, so reading the middle file by name would miss it.
    folder = tmp_path / "series"
    for instance in range(1, 6):
        pixels = np.zeros((20, 20), dtype=np.uint16)
        pixels[:2, :2] = 3000 if instance == 3 else 0
        pixels[-2:, -2:] = 3000
        _write_dicom(folder / f"{instance * 7 % 5}.dcm", pixels, "Vendor S", "B30f", instance)
    features = shortcut_features.sample_features([folder])
    assert features.metadata.loc[0, "slices"] == 5 and features.metadata.loc[0, "manufacturer"] == "Vendor S"
    assert features.intensity.loc[0, "corner_top_left"] == 255.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no .dcm files"):
        shortcut_features.sample_features([tmp_path / "empty"])


def test_missing_dicom_tags_are_a_missing_category(tmp_path):
    path = tmp_path / "x.dcm"
    _write_dicom(path, np.zeros((4, 4)), "", "")
    described = shortcut_features.file_metadata(path)
    assert described["manufacturer"] == described["kernel"] == described["model"] == shortcut_features.MISSING


def test_intensity_statistics_of_a_known_image():
    pixels = np.zeros((20, 20), dtype=np.float32)
    pixels[5:15, 5:15] = 255.0
    stats = shortcut_features.intensity_statistics(pixels, border_fraction=0.1, corner_fraction=0.1)
    assert stats["mean"] == pytest.approx(255 / 4) and stats["border_mean"] == 0.0
    assert stats["share_at_255"] == pytest.approx(0.25) and stats["share_at_0"] == pytest.approx(0.75)
    assert stats["corner_top_left"] == stats["corner_bottom_right"] == 0.0


def test_real_iqoth_copy_names_the_two_image_size_subgroups(iqoth_dir):
    audit = shortcuts.audit_samples(folders.load_class_folders(iqoth_dir)[0])
    sizes = {(group.value, group.n, group.purity) for group in audit.subgroups if group.feature == "size"}
    assert {("623x512", 31, 1.0), ("801x512", 28, 1.0)} <= sizes
    assert all("Malignant" in group.label for group in audit.subgroups if group.feature == "size")
    assert audit.flagged and audit.runtime_s < 30
