"""Tests of common.data.dicom: tiny synthetic series written here, and the CT files shipped with pydicom."""

import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    JPEG2000,
    MPEG2MPML,
    UID,
    AllTransferSyntaxes,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    generate_uid,
)

from common.config import registry
from common.data.dicom import (
    LUNG_WINDOW,
    find_series,
    load_series,
    load_slice,
)
from common.data.folders import read_image
from common.errors import DataError, ParameterError

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SLOPE, INTERCEPT = 2.0, -1024.0
PIXEL_SPACING = (0.7, 0.8)
# HU of each slice in the order written; the slice position goes down as the index goes up.
SLICE_HU = (-1000.0, -500.0, 0.0, 40.0, 400.0)
SLICE_Z = (10.0, 7.5, 5.0, 2.5, 0.0)
# Written file name of each slice: a shuffle, so name order is neither position nor instance order.
FILE_ORDER = (3, 0, 4, 1, 2)


def slice_hu(base_hu, rows=8, columns=6):
    """HU image of one slice: its base HU plus 2 HU per column, so rows and columns cannot swap."""
    return np.full((rows, columns), base_hu, dtype=np.float64) + 2.0 * np.arange(columns)


def write_slice(path, hu, series_uid, instance=None, position=None, orientation=AXIAL):
    """Write one CT slice (Explicit VR Little Endian, int16) holding ``hu`` after rescaling."""
    stored = (np.asarray(hu) - INTERCEPT) / SLOPE
    assert np.array_equal(stored, np.round(stored)), "test HU must be representable with SLOPE"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = "CT"
    if instance is not None:
        dataset.InstanceNumber = instance
    if position is not None:
        dataset.ImagePositionPatient = list(position)
        dataset.ImageOrientationPatient = list(orientation)
    dataset.PixelSpacing = list(PIXEL_SPACING)
    dataset.SliceThickness = 2.5
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope, dataset.RescaleIntercept = SLOPE, INTERCEPT
    dataset.PixelData = stored.astype("<i2").tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder,
    series_uid="1.2.826.0.1.3680043.8.498.10",
    positions=SLICE_Z,
    hu=SLICE_HU,
    orientation=AXIAL,
    geometry=True,
    shapes=None,
):
    """Write slices at ``positions`` (z, or full xyz triples) under shuffled names; return folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (position, base_hu) in enumerate(zip(positions, hu)):
        xyz = (0.0, 0.0, position) if np.isscalar(position) else position
        rows, columns = (8, 6) if shapes is None else shapes[index]
        name = f"{series_uid[-2:]}_{FILE_ORDER[index % len(FILE_ORDER)]}{index // len(FILE_ORDER)}.dcm"
        write_slice(
            folder / name,
            slice_hu(base_hu, rows, columns),
            series_uid,
            instance=index + 1,
            position=xyz if geometry else None,
            orientation=orientation,
        )
    return folder


def pydicom_test_files(pattern):
    """Files of pydicom's test data matching ``pattern``, sorted by name."""
    files = sorted(pydicom.data.get_testdata_files(pattern))
    if not files:
        pytest.skip(f"pydicom test data {pattern} not installed")
    return files


def series_copy(files, folder):
    """Copy ``files`` into ``folder`` (a series folder of its own) and return it."""
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / Path(path).name)
    return folder


def test_synthetic_series_sorted_by_position_in_hounsfield_units(tmp_path):
    folder = write_series(tmp_path / "case")
    volume, info = load_series(folder, normalise=False)
    assert volume.dtype == np.float32 and volume.shape == (8, 6, 5)
    # Written with z falling, so ascending position is the reverse of the write order.
    for k, base_hu in enumerate(reversed(SLICE_HU)):
        np.testing.assert_array_equal(volume[:, :, k], slice_hu(base_hu))
    assert info["sorted_by"] == "ImagePositionPatient"
    assert info["slice_positions"] == sorted(SLICE_Z)
    assert info["n_slices"] == 5 and info["source_shape"] == (8, 6, 5)
    assert info["spacing"] == pytest.approx((0.7, 0.8, 2.5))
    assert info["uniform_spacing"] is True and info["spacing_gaps"] == [2.5]


def test_oblique_series_sorted_along_the_slice_normal_not_z(tmp_path):
    # Coronal slices: normal = row cosine x column cosine = (0, 1, 0). The in-plane z offset
    # runs against y, so sorting on z alone would reverse the stack.
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    positions = [(0.0, y, -y) for y in (3.0, 0.0, 6.0, 9.0)]
    folder = write_series(tmp_path / "coronal", positions=positions, hu=(10.0, 0.0, 20.0, 30.0), orientation=coronal)
    volume, info = load_series(folder, normalise=False)
    assert [float(volume[0, 0, k]) for k in range(4)] == [0.0, 10.0, 20.0, 30.0]
    assert info["slice_positions"] == [0.0, 3.0, 6.0, 9.0]


def test_real_ct_series_stored_in_descending_z_is_sorted_ascending(tmp_path):
    files = pydicom_test_files("dicomdirtests/98892001/CT5N/*")
    folder = series_copy(files, tmp_path / "CT5N")
    volume, info = load_series(folder, normalise=False)
    z_of_file = {Path(f).name: float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files}
    expected_names = sorted(z_of_file, key=z_of_file.get)
    assert [Path(f).name for f in info["files"]] == expected_names
    # Instance numbers rise as z falls in this series, so the ascending sort reverses them.
    instances = [int(pydicom.dcmread(f).InstanceNumber) for f in info["files"]]
    assert instances == sorted(instances, reverse=True)
    assert info["slice_positions"] == pytest.approx(sorted(z_of_file.values()))
    assert volume.shape == (16, 16, 5)
    for k, path in enumerate(info["files"]):
        np.testing.assert_array_equal(volume[:, :, k], load_slice(path))
    assert info["uniform_spacing"] is True
    assert info["spacing"] == pytest.approx((0.488281, 0.488281, 2.5))


def test_real_ct_series_with_uneven_spacing_is_reported_and_warned(tmp_path):
    folder = series_copy(pydicom_test_files("dicomdirtests/77654033/CT2/*"), tmp_path / "CT2")
    with pytest.warns(UserWarning, match="non-uniform slice spacing"):
        volume, info = load_series(folder)
    assert info["uniform_spacing"] is False
    assert info["spacing_gaps"] == pytest.approx([1.25, 202.5])
    assert info["spacing"][2] == pytest.approx(1.25)
    assert volume.shape == (16, 16, 4)


def test_load_slice_of_ct_small_gives_plausible_hounsfield_units():
    image = load_slice(pydicom.data.get_testdata_file("CT_small.dcm"))
    assert image.shape == (128, 128) and image.dtype == np.float32
    # Air is near -1000 HU and bone a few hundred to ~2000 HU; raw stored values are all >= 0.
    assert -1100 <= image.min() < -500
    assert 500 < image.max() <= 3100


def test_folder_without_files_or_without_dicom_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files"):
        load_series(tmp_path / "empty")
    text_only = tmp_path / "text"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("not an image")
    with pytest.raises(DataError, match="readme.txt.*not a DICOM file"):
        load_series(text_only)
    with pytest.raises(DataError, match="not a folder"):
        load_series(tmp_path / "missing")


@pytest.mark.parametrize("content", [b"", b"plain text notes\n"], ids=["zero-byte", "text"])
def test_non_dicom_file_among_slices_is_named(tmp_path, content):
    folder = write_series(tmp_path / "case")
    (folder / "notes.txt").write_bytes(content)
    with pytest.raises(DataError, match="notes.txt: not a DICOM file"):
        load_series(folder)


def test_truncated_pixel_data_is_named(tmp_path):
    folder = write_series(tmp_path / "case")
    broken = sorted(folder.iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:-20])
    with pytest.raises(DataError, match=f"{broken.name}: cannot read the pixel data"):
        load_series(folder)


def test_mixed_series_needs_a_series_uid(tmp_path):
    first, second = "1.2.826.0.1.3680043.8.498.21", "1.2.826.0.1.3680043.8.498.22"
    write_series(tmp_path / "case", series_uid=first, positions=SLICE_Z[:3], hu=SLICE_HU[:3])
    write_series(tmp_path / "case" / "second", series_uid=second, positions=SLICE_Z[:2], hu=(100.0, 200.0))
    with pytest.raises(DataError, match="mixed series: pass series_uid") as raised:
        load_series(tmp_path / "case")
    assert f"{first} (3 files)" in str(raised.value) and f"{second} (2 files)" in str(raised.value)
    volume, info = load_series(tmp_path / "case", series_uid=second, normalise=False)
    assert info["series_uid"] == second and volume.shape == (8, 6, 2)
    assert float(volume[0, 0, 0]) == 200.0  # z = 7.5 comes after z = 10 was written, but sorts first
    with pytest.raises(DataError, match="not found"):
        load_series(tmp_path / "case", series_uid="1.2.3")


def test_mismatched_slice_shapes_name_shapes_and_files(tmp_path):
    folder = write_series(tmp_path / "case", positions=SLICE_Z[:3], hu=SLICE_HU[:3], shapes=[(8, 6), (8, 6), (6, 6)])
    odd_file = f"10_{FILE_ORDER[2]}0.dcm"  # third slice of the default series uid (...10)
    with pytest.raises(DataError, match=r"different shapes.*8x6: 2 files.*6x6: 1 files \(" + odd_file):
        load_series(folder)


def test_missing_geometry_falls_back_to_instance_number_with_warning(tmp_path):
    folder = write_series(tmp_path / "case", geometry=False)
    with pytest.warns(UserWarning, match="ordered by InstanceNumber"):
        volume, info = load_series(folder, normalise=False)
    assert info["sorted_by"] == "InstanceNumber"
    assert info["slice_positions"] is None and info["uniform_spacing"] is None
    assert info["spacing"] == pytest.approx((0.7, 0.8, 2.5))
    assert [float(volume[0, 0, k]) for k in range(5)] == list(SLICE_HU)


def test_slices_that_cannot_be_ordered_fail(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    for k in range(2):
        write_slice(folder / f"{k}.dcm", slice_hu(0.0), "1.2.826.0.1.3680043.8.498.30")
    with pytest.raises(DataError, match="cannot order the slices"):
        load_series(folder)


def test_duplicate_positions_and_mixed_orientations_fail(tmp_path):
    duplicated = write_series(tmp_path / "dup", positions=(0.0, 2.5, 2.5), hu=(0.0, 10.0, 20.0))
    with pytest.raises(DataError, match="same position 2.50 mm"):
        load_series(duplicated)
    tilted = write_series(tmp_path / "tilt", positions=(0.0, 2.5), hu=(0.0, 10.0))
    write_slice(
        tilted / "scout.dcm",
        slice_hu(0.0),
        "1.2.826.0.1.3680043.8.498.10",
        instance=9,
        position=(0.0, 0.0, 0.0),
        orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    )
    with pytest.raises(DataError, match="different ImageOrientationPatient.*scout.dcm"):
        load_series(tilted)


def test_dicomdir_index_is_ignored(tmp_path):
    folder = write_series(tmp_path / "case")
    shutil.copy(pydicom.data.get_testdata_file("DICOMDIR"), folder / "DICOMDIR")
    _, info = load_series(folder)
    assert info["n_slices"] == 5
    index_only = tmp_path / "index_only"
    index_only.mkdir()
    shutil.copy(pydicom.data.get_testdata_file("DICOMDIR"), index_only / "DICOMDIR")
    assert find_series(tmp_path) == [folder]


def test_resample_window_and_normalise_shapes_and_ranges(tmp_path):
    folder = write_series(tmp_path / "case")
    volume, _ = load_series(folder, depth=3, size=4)
    assert volume.shape == (4, 4, 3) and volume.dtype == np.float32
    assert volume.min() == 0.0 and volume.max() == 1.0
    volume, _ = load_series(folder, depth=7, size=(4, 2))
    assert volume.shape == (4, 2, 7)
    windowed, info = load_series(folder, window=LUNG_WINDOW, normalise=False)
    low, high = LUNG_WINDOW[0] - LUNG_WINDOW[1] / 2, LUNG_WINDOW[0] + LUNG_WINDOW[1] / 2
    assert windowed.min() == -1000.0 and windowed.max() == high  # 400 HU slice clipped to 150
    assert low <= windowed.min() and info["window"] == LUNG_WINDOW


def test_depth_resampling_follows_slice_positions(tmp_path):
    # HU = 10 per mm of z at uneven positions: linear interpolation along z must reproduce it.
    z = (0.0, 1.0, 2.0, 10.0)
    folder = write_series(tmp_path / "case", positions=z, hu=[10.0 * v for v in z])
    with pytest.warns(UserWarning, match="non-uniform"):
        volume, _ = load_series(folder, depth=11, normalise=False)
    np.testing.assert_allclose(volume[0, 0, :], 10.0 * np.arange(11), atol=1e-4)


def test_load_series_with_sobel_stays_in_unit_range(tmp_path):
    volume, info = load_series(write_series(tmp_path / "case"), size=6, depth=4, sobel=True)
    assert volume.shape == (6, 6, 4) and info["sobel"] is True
    assert volume.min() == pytest.approx(0.0) and volume.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "parameters, match",
    [
        ({"depth": 0}, "depth"),
        ({"size": (4,)}, "size"),
        ({"size": -2}, "size"),
        ({"window": (-600, 0)}, "width must be positive"),
        ({"window": "lung"}, "window"),
        ({"sobel_weight": -0.1}, "sobel_weight"),
    ],
)
def test_bad_parameters_raise_parameter_error(tmp_path, parameters, match):
    folder = write_series(tmp_path / "case")
    with pytest.raises(ParameterError, match=match):
        load_series(folder, **parameters)


def test_find_series_lists_case_folders(tmp_path):
    first = write_series(tmp_path / "tumour" / "case_b")
    second = write_series(tmp_path / "normal" / "case_a", series_uid="1.2.826.0.1.3680043.8.498.40")
    (tmp_path / "normal" / "notes").mkdir()
    (tmp_path / "normal" / "notes" / "readme.txt").write_text("not DICOM")
    assert find_series(tmp_path) == sorted([first, second])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no DICOM files"):
        find_series(tmp_path / "nothing")
    with pytest.raises(DataError, match="not a folder"):
        find_series(tmp_path / "absent")


def test_load_slice_rejects_non_dicom(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="image.png: not a DICOM file"):
        load_slice(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean slice reads without warnings
        written = write_slice(tmp_path / "one.dcm", slice_hu(40.0), "1.2.826.0.1.3680043.8.498.50")
        np.testing.assert_array_equal(load_slice(written), slice_hu(40.0))


@pytest.mark.parametrize(
    "tag, value, message",
    [
        ("Rows", None, "the DICOM tag Rows is missing"),
        ("PixelSpacing", "0.7\\abc", "the DICOM tag PixelSpacing holds"),
        ("ImagePositionPatient", "1\\2", "the DICOM tag ImagePositionPatient holds"),
    ],
)
def test_a_missing_or_damaged_header_tag_names_the_file_and_the_tag(tmp_path, tag, value, message):
    folder = write_series(tmp_path / "case")
    damaged = sorted(folder.iterdir())[1]
    dataset = pydicom.dcmread(damaged)
    if value is None:
        delattr(dataset, tag)
    else:  # stored as text, as a broken exporter writes it, so pydicom keeps the damaged value
        dataset[tag] = pydicom.DataElement(dataset[tag].tag, "LO", value)
    dataset.save_as(damaged)
    with pytest.raises(DataError, match=message) as raised:
        load_series(folder)
    assert damaged.name in str(raised.value)


# --- compressed pixel data ---------------------------------------------------------------


def write_compressed_slice(path, hu, syntax, codestream=None):
    """One CT slice whose pixel data is encapsulated as ``syntax``: by default a lossless JPEG 2000
    codestream of the stored values (unsigned 16-bit), made by Pillow."""
    write_slice(path, hu, "1.2.826.0.1.3680043.8.498.60", instance=1, position=(0.0, 0.0, 0.0))
    dataset = pydicom.dcmread(path)
    stored = dataset.pixel_array.astype(np.uint16)
    if codestream is None:
        buffer = io.BytesIO()
        Image.fromarray(stored).save(buffer, "JPEG2000", no_jp2=True)  # lossless (reversible) by default
        codestream = buffer.getvalue()
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.PixelRepresentation = 0
    dataset.PixelData = encapsulate([codestream])
    dataset["PixelData"].VR = "OB"
    dataset.save_as(path, enforce_file_format=True)
    return path


def without_decoder(monkeypatch, syntax):
    """Make pydicom find no decoder plugin for ``syntax``, as on a machine without its packages."""
    monkeypatch.setattr(get_decoder(syntax), "_available", {})


def test_jpeg_2000_slice_decodes_to_hounsfield_units(tmp_path):
    assert get_decoder(JPEG2000).is_available  # Pillow's OpenJPEG decodes it
    path = write_compressed_slice(tmp_path / "j2k.dcm", slice_hu(40.0), JPEG2000)
    np.testing.assert_array_equal(load_slice(path), slice_hu(40.0))


def test_compressed_slice_without_its_decoder_names_the_syntax_and_the_packages(tmp_path, monkeypatch):
    path = write_compressed_slice(tmp_path / "j2k.dcm", slice_hu(40.0), JPEG2000)
    without_decoder(monkeypatch, JPEG2000)
    expected = (
        f"{path}: the pixel data is compressed as JPEG 2000 Image Compression (transfer syntax "
        "1.2.840.10008.1.2.4.91) and no decoder for it is installed; install one ('pip install pylibjpeg "
        "pylibjpeg-openjpeg' or 'pip install pillow' or 'pip install python-gdcm') or convert the file to an "
        "uncompressed transfer syntax"
    )
    with pytest.raises(DataError) as raised:
        load_slice(path)
    assert str(raised.value) == expected
    with pytest.raises(DataError) as raised:
        read_image(path)
    assert str(raised.value) == f"{path}: not a readable image ({expected.removeprefix(f'{path}: ')})"
    with pytest.raises(DataError, match="j2k.dcm: the pixel data is compressed as JPEG 2000 Image Compression"):
        load_series(tmp_path)


def test_jpeg_ls_without_pyjpegls_or_pylibjpeg_names_them(tmp_path, monkeypatch):
    without_decoder(monkeypatch, JPEGLSLossless)  # none of them is installed here; this keeps it so
    path = write_compressed_slice(tmp_path / "jls.dcm", slice_hu(0.0), JPEGLSLossless, codestream=b"\xff\xd8" * 8)
    with pytest.raises(
        DataError,
        match=r"compressed as JPEG-LS Lossless Image Compression \(transfer syntax "
        r"1\.2\.840\.10008\.1\.2\.4\.80\) and no decoder .*'pip install pyjpegls'",
    ):
        load_slice(path)


def test_damaged_compressed_data_is_not_taken_for_a_missing_decoder(tmp_path):
    path = write_compressed_slice(tmp_path / "j2k.dcm", slice_hu(40.0), JPEG2000, codestream=b"\x00" * 64)
    with pytest.raises(DataError) as raised:
        load_slice(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: cannot read the pixel data (JPEG 2000 Image Compression, transfer syntax ")
    assert "truncated or damaged" in message and "no decoder" not in message and "pip install" not in message


def test_a_syntax_pydicom_cannot_decode_is_named(tmp_path):
    path = write_compressed_slice(tmp_path / "video.dcm", slice_hu(0.0), MPEG2MPML, codestream=b"\x00" * 16)
    with pytest.raises(DataError, match=r"compressed as MPEG2 Main Profile / Main Level .*which pydicom cannot decode"):
        load_slice(path)


def test_registry_names_a_package_for_every_syntax_pydicom_needs_one_for():
    """The registry's dicom_decoders list the same syntaxes and plugins as the installed pydicom."""
    decoders = registry.section("dicom_decoders")
    needing_packages = {}
    for syntax in AllTransferSyntaxes:
        if not UID(syntax).is_compressed:
            continue
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            continue
        plugins = set(decoder.available_plugins) | {dep.split(" - ")[0] for dep in decoder.missing_dependencies}
        if "pydicom" not in plugins:  # RLE Lossless: decoded by pydicom itself
            needing_packages[str(syntax)] = plugins
    assert set(decoders) == set(needing_packages)
    for syntax, groups in decoders.items():
        assert {group[0].removeprefix("python-") for group in groups} == needing_packages[syntax], syntax
