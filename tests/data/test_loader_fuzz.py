"""Hostile files for the image loader (issue 29): each one loads, or fails with a DataError naming it.

Hypothesis makes the files: random bytes under every image suffix, valid files
cut short or with bytes overwritten, headers declaring huge sizes, tiny images
in every mode Pillow writes, and DICOM files with odd headers. Whatever the
file, :func:`common.data.folders.read_image` returns a finite float32 (H, W)
array on 0..255 or raises :class:`DataError` whose message holds the path;
:func:`common.data.dicom.load_slice` returns a finite float32 (Rows, Columns)
array or raises the same. No other exception and no warning may come out.

The runs are repeatable (``derandomize``, no example database) and short: each
test draws at most :data:`EXAMPLES` examples and each example has
:data:`DEADLINE` to finish.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
)

from common.data import dicom, folders
from common.errors import DataError

EXAMPLES = 200
DEADLINE = timedelta(seconds=2)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RASTER_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".tif": "TIFF"}
SUFFIXES = (*RASTER_FORMATS, ".dcm")
# First bytes of each format, so random tails get past format detection into the decoders.
MAGIC = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".bmp": b"BM",
    ".tif": b"II*\x00",
    ".dcm": b"\x00" * 128 + b"DICM",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for every example of the module (hypothesis runs a test's examples in one fixture scope)."""
    return tmp_path_factory.mktemp("fuzz")


@contextmanager
def no_warnings() -> Iterator[None]:
    """Fail when the code inside lets any warning out."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]


def check_read_image(path: Path) -> None:
    """read_image gives a finite float32 (H, W) array on 0..255, or a DataError naming ``path``."""
    with no_warnings():
        try:
            image = folders.read_image(path)
        except DataError as error:
            assert str(path) in str(error)
            return
    assert image.dtype == np.float32 and image.ndim == 2 and image.size > 0
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 255


def check_load_slice(path: Path) -> None:
    """load_slice gives a finite float32 (Rows, Columns) array, or a DataError naming ``path``."""
    with no_warnings():
        try:
            values = dicom.load_slice(path)
        except DataError as error:
            assert str(path) in str(error)
            return
    assert values.dtype == np.float32 and values.ndim == 2 and np.isfinite(values).all()


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


# --- valid files to break ------------------------------------------------------------


@functools.cache
def valid_file(suffix: str) -> bytes:
    """A small valid image file of each suffix: 12 x 16 pixels of noise."""
    pixels = np.random.default_rng(7).integers(0, 256, (12, 16), dtype=np.uint8)
    if suffix == ".dcm":
        return dicom_bytes(dicom_dataset(pixels.astype(np.int16)))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, RASTER_FORMATS[suffix])
    return buffer.getvalue()


def dicom_dataset(stored: np.ndarray, syntax: str = ExplicitVRLittleEndian) -> pydicom.Dataset:
    """A single-slice CT dataset with signed 16-bit stored values, slope 2 and intercept -1024."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.29"  # fixed, so the file's bytes are too
    meta.TransferSyntaxUID = syntax
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope, dataset.RescaleIntercept = 2, -1024
    dataset.PixelSpacing = [0.7, 0.7]
    dataset.PixelData = stored.astype("<i2").tobytes()
    return dataset


def dicom_bytes(dataset: pydicom.Dataset) -> bytes:
    """The dataset as a file; values are written as given, valid or not (pydicom only warns then)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --- (a) random bytes, (b) broken valid files --------------------------------------------


@FUZZ
@given(suffix=st.sampled_from(SUFFIXES), magic=st.booleans(), tail=st.binary(max_size=4096))
def test_random_bytes_load_or_fail_with_a_data_error(folder, suffix, magic, tail):
    content = (MAGIC[suffix] if magic else b"") + tail
    path = write(folder, f"random{suffix}", content)
    if content:
        check_read_image(path)
    if suffix == ".dcm":
        check_load_slice(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_valid_files_cut_anywhere_fail_with_a_data_error(folder, suffix):
    """Every cut, not a sample: a DICOM cut inside an element's header once raised struct.error."""
    content = valid_file(suffix)
    for length in range(1, len(content)):
        path = write(folder, f"cut{suffix}", content[:length])
        check_read_image(path)
        if suffix == ".dcm":
            check_load_slice(path)


# Byte changes that once escaped as other exceptions: a TIFF tag's type set to 1 (Pillow's
# TypeError "Missing dimensions"), the VR of the DICOM file meta's TransferSyntaxUID
# damaged (pydicom's NotImplementedError "Unknown Value Representation").
TIFF_TAG_TYPE_OFFSET = 118
DICOM_SYNTAX_VR_OFFSET = valid_file(".dcm").index(b"\x02\x00\x10\x00UI") + 5


@FUZZ
@given(
    suffix=st.sampled_from(SUFFIXES),
    changes=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=8),
)
@example(suffix=".tif", changes=[(TIFF_TAG_TYPE_OFFSET, 1)])
@example(suffix=".dcm", changes=[(DICOM_SYNTAX_VR_OFFSET, 0)])
def test_valid_files_with_overwritten_bytes_load_or_fail_with_a_data_error(folder, suffix, changes):
    content = bytearray(valid_file(suffix))
    for offset, value in changes:
        content[offset % len(content)] = value
    path = write(folder, f"changed{suffix}", bytes(content))
    check_read_image(path)
    if suffix == ".dcm":
        check_load_slice(path)


# --- (c) headers declaring huge sizes --------------------------------------------------------

SIDES = st.one_of(st.integers(0, 70000), st.sampled_from([60000, 65535, 2**31 - 1, 2**32 - 1]))


def png_with_size(width: int, height: int) -> bytes:
    """The valid PNG with its IHDR width and height replaced (and the chunk's CRC recomputed)."""
    content = bytearray(valid_file(".png"))
    # signature (8) + length (4) + b"IHDR" (4), then width and height as big-endian 32-bit ints.
    content[16:24] = struct.pack(">II", width, height)
    content[29:33] = struct.pack(">I", zlib.crc32(bytes(content[12:29])))
    return bytes(content)


def bmp_with_size(width: int, height: int) -> bytes:
    """The valid BMP with its info header's (signed) width and height replaced."""
    content = bytearray(valid_file(".bmp"))
    content[18:26] = struct.pack("<ii", width % 2**31, height % 2**31)
    return bytes(content)


def jpeg_with_size(width: int, height: int) -> bytes:
    """The valid JPEG with its start-of-frame height and width (16-bit) replaced."""
    content = bytearray(valid_file(".jpg"))
    sof = content.index(b"\xff\xc0")
    content[sof + 5 : sof + 9] = struct.pack(">HH", height % 2**16, width % 2**16)
    return bytes(content)


def dicom_with_size(width: int, height: int) -> bytes:
    dataset = dicom_dataset(np.zeros((4, 4), np.int16))
    dataset.Rows, dataset.Columns = height % 2**16, width % 2**16
    return dicom_bytes(dataset)


SIZED: dict[str, Callable[[int, int], bytes]] = {
    ".png": png_with_size,
    ".bmp": bmp_with_size,
    ".jpg": jpeg_with_size,
    ".dcm": dicom_with_size,
}


@FUZZ
@given(suffix=st.sampled_from(sorted(SIZED)), width=SIDES, height=SIDES)
def test_headers_declaring_any_size_load_or_fail_with_a_data_error(folder, suffix, width, height):
    path = write(folder, f"sized{suffix}", SIZED[suffix](width, height))
    check_read_image(path)
    if suffix == ".dcm":
        check_load_slice(path)


def test_a_huge_declared_size_is_refused_by_the_pixel_limit(folder):
    cases = [
        # Pillow refuses to open an image over twice its own limit, so its size is not known.
        (".png", png_with_size(60000, 60000), "the image declares more than 178,956,970 pixels, "),
        (".png", png_with_size(10000, 10000), "the image is 10000 x 10000 = 100,000,000 pixels, "),
        (".dcm", dicom_with_size(65535, 65535), "the image is 65535 x 65535 = 4,294,836,225 pixels, "),
    ]
    for suffix, content, size in cases:
        path = write(folder, f"huge{suffix}", content)
        with no_warnings(), pytest.raises(DataError) as raised:
            folders.read_image(path)
        assert str(path) in str(raised.value) and f"{size}above the limit of 50,000,000 pixels" in str(raised.value)


# --- (d) tiny images in every mode, deep and palette images -------------------------------

# (mode, format) pairs Pillow writes; the mode read back may differ (e.g. TIFF "I;16" -> "I;16").
MODE_FORMATS = [
    (mode, suffix)
    for mode, suffixes in {
        "1": (".png", ".bmp", ".tif"),
        "L": (".png", ".jpg", ".bmp", ".tif"),
        "LA": (".png", ".tif"),
        "P": (".png", ".bmp", ".tif"),
        "RGB": (".png", ".jpg", ".bmp", ".tif"),
        "RGBA": (".png", ".bmp", ".tif"),
        "CMYK": (".jpg", ".tif"),
        "YCbCr": (".jpg", ".tif"),
        "LAB": (".tif",),
        "I": (".tif",),
        "I;16": (".png", ".tif"),
        "I;16B": (".tif",),
        "F": (".tif",),
    }.items()
    for suffix in suffixes
]


def image_of(mode: str, width: int, height: int, values: list[float]) -> Image.Image:
    """An image of ``mode`` whose pixels cycle through ``values``."""
    image = Image.new(mode, (width, height))
    bands = len(image.getbands())
    pixels = [tuple([value] * bands) if bands > 1 else value for value in values]
    image.putdata([pixels[i % len(pixels)] for i in range(width * height)])
    return image


def pixel_values(mode: str) -> st.SearchStrategy[float]:
    if mode == "F":
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if mode == "I":
        return st.integers(-(2**31), 2**31 - 1)
    return st.integers(0, 65535 if mode.startswith("I;16") else 255)


@FUZZ
@given(pair=st.sampled_from(MODE_FORMATS), size=st.tuples(st.integers(1, 3), st.integers(1, 3)), data=st.data())
def test_tiny_images_in_every_mode_load(folder, pair, size, data):
    mode, suffix = pair
    values = data.draw(st.lists(pixel_values(mode), min_size=1, max_size=4), label="values")
    image = image_of(mode, *size, values)
    if mode == "P" and data.draw(st.booleans(), label="transparency"):
        image.info["transparency"] = data.draw(st.integers(0, 255), label="transparent index")
    path = folder / f"mode-{mode.replace(';', '_')}{suffix}"
    image.save(path)
    check_read_image(path)
    if mode not in ("F", "I") and np.isfinite(values).all():  # the modes with a fixed range always load
        assert folders.read_image(path).shape == (size[1], size[0])


def test_every_mode_of_a_1_x_1_image_loads(folder):
    for mode, suffix in MODE_FORMATS:
        path = folder / f"one-{mode.replace(';', '_')}{suffix}"
        image_of(mode, 1, 1, [1]).save(path)
        with no_warnings():
            assert folders.read_image(path).shape == (1, 1), (mode, suffix)


def palette_png_with_trns(palette_size: int, alphas: bytes, indices: bytes, width: int) -> bytes:
    """A palette PNG written chunk by chunk: PLTE of ``palette_size`` entries and a tRNS of ``alphas``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height = max(1, len(indices) // width)
    rows = b"".join(b"\x00" + indices[r * width : (r + 1) * width].ljust(width, b"\x00") for r in range(height))
    return (
        MAGIC[".png"]
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", bytes(i % 256 for i in range(palette_size * 3)))
        + chunk(b"tRNS", alphas)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@FUZZ
@given(
    palette_size=st.integers(1, 256),
    alphas=st.binary(max_size=300),
    indices=st.binary(min_size=1, max_size=16),
    width=st.integers(1, 4),
)
def test_palette_pngs_with_any_trns_chunk_load_or_fail_with_a_data_error(folder, palette_size, alphas, indices, width):
    path = write(folder, "palette.png", palette_png_with_trns(palette_size, alphas, indices, width))
    check_read_image(path)


# --- (e) DICOM headers ------------------------------------------------------------------------

ODD_VALUES = {
    "Rows": st.sampled_from([None, 0, 1, 3, 5]),
    "Columns": st.sampled_from([None, 0, 1, 4]),
    "BitsAllocated": st.sampled_from([None, 1, 8, 12, 16, 32, 64]),
    "BitsStored": st.sampled_from([None, 1, 12, 16, 40]),
    "PixelRepresentation": st.sampled_from([None, 0, 1, 2]),
    "SamplesPerPixel": st.sampled_from([None, 1, 3]),
    "PhotometricInterpretation": st.sampled_from([None, "MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", "junk"]),
    "NumberOfFrames": st.sampled_from([None, "0", "1", "2", "abc", "65535"]),
    "RescaleSlope": st.sampled_from([None, "abc", "", "nan", "inf", "1e400", "0", "-2.5"]),
    "RescaleIntercept": st.sampled_from([None, "x", "-1e39", "1024"]),
    "PixelSpacing": st.sampled_from([None, "", "0.7", "1\\2\\3", "a\\b", "-1\\0"]),
    "PlanarConfiguration": st.sampled_from([None, 0, 1, 7]),
}
SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
]
IS_STRING_TAG = {"NumberOfFrames", "RescaleSlope", "RescaleIntercept", "PixelSpacing", "PhotometricInterpretation"}


@st.composite
def odd_dicom(draw) -> bytes:
    """The valid slice with some header values replaced or removed and some pixel bytes added or cut."""
    syntax = draw(st.sampled_from(SYNTAXES), label="syntax")
    dataset = dicom_dataset(np.arange(20, dtype=np.int16).reshape(4, 5), syntax)
    for tag in draw(st.lists(st.sampled_from(sorted(ODD_VALUES)), max_size=4, unique=True), label="tags"):
        value = draw(ODD_VALUES[tag], label=tag)
        if value is None:
            dataset.pop(tag, None)
        elif tag in IS_STRING_TAG:  # stored as text, as a broken exporter writes it, so the damage is kept
            dataset[tag] = pydicom.DataElement(pydicom.datadict.tag_for_keyword(tag), "LO", value)
        else:
            setattr(dataset, tag, value)
    pixel_bytes = draw(st.integers(-38, 40), label="pixel bytes added")
    raw = dataset.PixelData
    raw = raw[:pixel_bytes] if pixel_bytes < 0 else raw + bytes(pixel_bytes)
    encapsulated = syntax in (RLELossless, JPEGLSLossless)  # then fragments of (garbage) compressed data
    dataset.PixelData = encapsulate([raw]) if encapsulated else raw
    dataset["PixelData"].VR = "OB" if encapsulated else "OW"
    return dicom_bytes(dataset)


@FUZZ
@given(content=odd_dicom())
def test_dicom_with_odd_headers_loads_or_fails_with_a_data_error(folder, content):
    path = write(folder, "odd.dcm", content)
    check_read_image(path)
    check_load_slice(path)
