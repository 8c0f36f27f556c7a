"""Reading images of every supported kind, and loading class-folder data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from common.data import folders
from common.data.folders import SAMPLE_COLUMNS, class_counts, class_names, load_class_folders, read_image
from common.errors import DataError, ParameterError

IQOTH_LABEL_MAP = {"Bengin cases": "benign", "Malignant cases": "malignant", "Normal cases": "normal"}


@pytest.fixture
def rgb_pixels() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def write_dicom(
    path: Path, stored: np.ndarray, slope: float, intercept: float, photometric: str = "MONOCHROME2"
) -> Path:
    """A minimal single-slice CT DICOM with signed 16-bit stored values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope = slope
    dataset.RescaleIntercept = intercept
    dataset.PixelData = stored.astype(np.int16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


# --- read_image: formats and modes -------------------------------------------


def test_eight_bit_greyscale_keeps_values(tmp_path):
    pixels = np.arange(200, dtype=np.uint8).reshape(10, 20)
    for suffix in (".png", ".bmp", ".tif"):
        Image.fromarray(pixels).save(tmp_path / f"grey{suffix}")
        image = read_image(tmp_path / f"grey{suffix}")
        assert image.dtype == np.float32 and image.shape == (10, 20)
        np.testing.assert_array_equal(image, pixels)


def test_sixteen_bit_png_and_tiff_scale_by_full_range(tmp_path):
    pixels = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    for name in ("deep.png", "deep.tif"):
        Image.fromarray(pixels).save(tmp_path / name)
        np.testing.assert_allclose(read_image(tmp_path / name), [[0, 1, 32768 * 255 / 65535, 255]], rtol=1e-6)


def test_thirty_two_bit_integer_tiff_within_sixteen_bits_scales_like_sixteen_bit(tmp_path):
    pixels = np.array([[0, 65535], [257, 514]], dtype=np.int32)
    Image.fromarray(pixels).save(tmp_path / "int32.tif")
    assert Image.open(tmp_path / "int32.tif").mode == "I"
    np.testing.assert_allclose(read_image(tmp_path / "int32.tif"), [[0, 255], [1, 2]], rtol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_colour_and_palette_modes_become_luminance(tmp_path, rgb_pixels, mode):
    source = Image.fromarray(rgb_pixels)
    converted = source.convert(mode)
    converted.save(tmp_path / "colour.png")
    expected = np.asarray(converted.convert("L"), dtype=np.float32)
    np.testing.assert_array_equal(read_image(tmp_path / "colour.png"), expected)


def test_alpha_is_dropped_not_composited(tmp_path, rgb_pixels):
    rgba = np.dstack([rgb_pixels, np.zeros(rgb_pixels.shape[:2], np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    Image.fromarray(rgb_pixels).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_image(tmp_path / "transparent.png"), read_image(tmp_path / "opaque.png"))


def test_cmyk_and_rgb_jpeg_decode(tmp_path, rgb_pixels):
    Image.fromarray(rgb_pixels).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb_pixels).save(tmp_path / "rgb.JPEG", quality=95)
    for name in ("cmyk.jpg", "rgb.JPEG"):
        image = read_image(tmp_path / name)
        assert image.shape == (12, 16) and 0 <= image.min() and image.max() <= 255
        assert image.std() > 10  # real content, not a blank decode


def test_dicom_applies_rescale_then_min_max(tmp_path):
    stored = np.array([[0, 100], [200, 400]], dtype=np.int16)
    image = read_image(write_dicom(tmp_path / "slice.dcm", stored, slope=2.0, intercept=-1024.0))
    # HU = 2 * stored - 1024 is linear in stored, so min-max gives stored / 400 * 255.
    np.testing.assert_allclose(image, stored / 400 * 255, rtol=1e-6)
    inverted = read_image(write_dicom(tmp_path / "inv.dcm", stored, 1.0, 0.0, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 255 - stored / 400 * 255, rtol=1e-6)


# --- read_image: errors -------------------------------------------------------


def test_zero_byte_file_is_named_in_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png.*0 bytes"):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_fails_on_full_decode(tmp_path, rgb_pixels, suffix):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(np.tile(rgb_pixels, (8, 8, 1))).save(whole)
    data = whole.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"cut\{suffix}.*truncated"):
        read_image(tmp_path / f"cut{suffix}")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_text_file_with_image_suffix_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("not pixels")
    with pytest.raises(DataError, match=r"notes\.png: not a readable image"):
        read_image(tmp_path / "notes.png")


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "scan.gif").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match=r"scan\.gif: unknown image suffix"):
        read_image(tmp_path / "scan.gif")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "absent.png")


# --- load_class_folders -------------------------------------------------------


def test_sample_table_follows_label_map_order(make_class_folders):
    root = make_class_folders({"Normal": 3, "Sick": 2}, size=(24, 20))
    samples, skipped = load_class_folders(root, {"Sick": "disease", "Normal": "healthy"})
    assert skipped == []
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
    assert class_names(samples) == ["disease", "healthy"]
    assert samples.groupby("label")["label_index"].first().to_dict() == {"disease": 0, "healthy": 1}
    assert (samples["width"] == 24).all() and (samples["height"] == 20).all()
    assert samples["group"].isna().all() and samples["mask_path"].isna().all()
    assert samples["label"].value_counts().to_dict() == {"healthy": 3, "disease": 2}


def test_no_label_map_uses_sorted_folder_names_and_maps_can_merge(make_class_folders):
    root = make_class_folders({"b": 2, "a": 2, "c": 1})
    samples, _ = load_class_folders(root)
    assert class_names(samples) == ["a", "b", "c"]
    merged, _ = load_class_folders(root, {"c": "normal", "a": "lesion", "b": "lesion"})
    assert class_names(merged) == ["normal", "lesion"]
    assert merged["label"].value_counts().to_dict() == {"lesion": 4, "normal": 1}


def test_root_files_hidden_files_and_other_suffixes_are_ignored(make_class_folders):
    root = make_class_folders({"x": 2, "y": 2})
    (root / "README.txt").write_text("release notes")
    (root / ".cache").mkdir()
    (root / "x" / ".DS_Store").write_bytes(b"\0")
    (root / "x" / "labels.csv").write_text("a,b")
    nested = root / "y" / "part2"
    nested.mkdir()
    Image.fromarray(np.full((20, 24), 9, np.uint8)).save(nested / "deep.png")
    samples, skipped = load_class_folders(root)
    assert skipped == []
    assert samples["class_folder"].value_counts().to_dict() == {"x": 2, "y": 3}


def test_bad_file_errors_or_is_skipped_with_reason(make_class_folders):
    root = make_class_folders({"x": 3, "y": 2})
    (root / "x" / "fake.jpg").write_text("hello")
    (root / "y" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"fake\.jpg.*on_bad_file='skip'"):
        load_class_folders(root)
    samples, skipped = load_class_folders(root, on_bad_file="skip")
    assert len(samples) == 5
    assert sorted(Path(entry["path"]).name for entry in skipped) == ["empty.png", "fake.jpg"]
    assert all(entry["reason"] for entry in skipped)
    with pytest.raises(ParameterError, match="on_bad_file"):
        load_class_folders(root, on_bad_file="ignore")


def test_masks_are_paired_by_class_folder_and_stem(make_class_folders):
    root = make_class_folders({"a": 2, "b": 2}, with_masks=True)
    samples, _ = load_class_folders(root, mask_root=root.parent / "masks")
    for path, mask in zip(samples["path"], samples["mask_path"]):
        assert Path(mask).stem == Path(path).stem and Path(mask).parent.name == Path(path).parent.name
        assert Path(mask).is_file()
    Path(samples["mask_path"].iloc[0]).unlink()
    with pytest.raises(DataError, match="Mask .* not found"):
        load_class_folders(root, mask_root=root.parent / "masks")


def test_folder_errors_name_the_problem(make_class_folders, tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_class_folders(tmp_path / "nowhere")
    root = make_class_folders({"a": 2, "b": 2})
    with pytest.raises(DataError, match=r"\['b'\] are not in the label map; known folders: \['a', 'z'\]"):
        load_class_folders(root, {"a": "A", "z": "Z"})
    with pytest.raises(DataError, match="no class folder for label 'C'"):
        load_class_folders(root, {"a": "A", "b": "B", "c": "C"})
    with pytest.raises(DataError, match="only one class"):
        load_class_folders(root, {"a": "same", "b": "same"})
    (root / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class holds no images"):
        load_class_folders(root)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "notes.txt").write_text("no class folders here")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_class_folders(bare)


def test_class_counts_with_and_without_split(make_class_folders):
    samples, _ = load_class_folders(make_class_folders({"a": 3, "b": 2}))
    assert class_counts(samples).to_dict() == {"total": {"a": 3, "b": 2}}
    samples["split"] = ["test", "train", "train", "val", "train"]
    table = class_counts(samples)
    assert list(table.columns) == ["train", "val", "test", "total"]
    assert table.loc["a"].tolist() == [2, 0, 1, 3] and table.loc["b"].tolist() == [1, 1, 0, 2]


# --- the real release -----------------------------------------------------------


def test_real_iqoth_loads_every_slice(iqoth_dir):
    samples, skipped = load_class_folders(iqoth_dir, IQOTH_LABEL_MAP)
    assert skipped == []
    assert class_counts(samples)["total"].to_dict() == {"benign": 120, "malignant": 561, "normal": 416}
    assert isinstance(samples, pd.DataFrame) and samples["path"].is_unique
    assert (samples["height"] >= 331).all() and samples["width"].max() == 801


def test_an_image_above_the_pixel_limit_is_refused_naming_its_size(tmp_path, monkeypatch):
    limits = {"max_image_pixels": 100 * 100}
    monkeypatch.setattr(folders.registry, "section", lambda name: limits)
    Image.new("L", (100, 100)).save(tmp_path / "fits.png")
    Image.new("L", (101, 100)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "fits.png").shape == (100, 100)
    with pytest.raises(DataError, match=r"big.png: the image is 101 x 100 = 10,100 pixels, above the limit of 10,000"):
        read_image(tmp_path / "big.png")
