"""Features of the shortcut audit: acquisition metadata and global intensity statistics per sample.

A sample is an image file (PNG, JPEG, BMP, TIFF or DICOM) or, in the 3D
experiment, a folder holding one DICOM series. Two feature tables are built,
one row per sample, because they mean different things
(:mod:`common.data.shortcuts`):

* **Acquisition metadata**, read from headers without decoding pixels where
  possible (Pillow opens lazily; pydicom stops before the pixel data): file
  format, mode (Pillow mode or DICOM PhotometricInterpretation), bit depth,
  width, height, the size ``"WxH"``, aspect ratio, file size, number of slices
  (1 for an image), and for DICOM the manufacturer, model, convolution kernel,
  slice thickness and pixel spacing (``"missing"`` where a file has none). A
  series is described by its first file in name order.
* **Global intensity statistics** of the pixels as the study decodes them
  (:func:`common.data.folders.read_image`, greyscale 0..255; a series by its
  middle slice in InstanceNumber order): mean, standard deviation, the mean of
  a border band and of the four corner squares, and the shares of pixels at 0
  and at 255.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from common.config import registry
from common.data import dicom_pixels, folders
from common.errors import DataError

MISSING = "missing"
# Header tags of a DICOM file, by feature name. They are categories: a value shared by many
# files of one class (one scanner, one kernel) is a shortcut whatever its numeric size.
DICOM_TAGS = {
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "kernel": "ConvolutionKernel",
    "slice_thickness": "SliceThickness",
    "pixel_spacing": "PixelSpacing",
}
# Metadata features that are categories (one-hot encoded; candidates for pure subgroups), then numbers.
CATEGORICAL = ("format", "mode", "bit_depth", "size", *DICOM_TAGS)
NUMERIC = ("width", "height", "aspect", "file_kb", "slices")
INTENSITY = (
    "mean",
    "std",
    "border_mean",
    "corner_top_left",
    "corner_top_right",
    "corner_bottom_left",
    "corner_bottom_right",
    "share_at_0",
    "share_at_255",
)
# Bits per channel of Pillow's modes (Pillow documents modes, not bit depths); other modes are 8-bit.
PILLOW_MODE_BITS = {"1": 1, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}
DICOM_SUFFIX = ".dcm"


@dataclass(frozen=True)
class SampleFeatures:
    """The two feature tables of a sample table, row for row.

    Attributes:
        metadata: Columns :data:`CATEGORICAL` (strings) and :data:`NUMERIC` (floats).
        intensity: Columns :data:`INTENSITY` (floats).
    """

    metadata: pd.DataFrame
    intensity: pd.DataFrame


def sample_features(paths: Iterable[str | Path]) -> SampleFeatures:
    """Read the metadata and intensity features of every sample.

    Args:
        paths: Image files or DICOM series folders.

    Returns:
        The two tables, one row per path, in order.

    Raises:
        DataError: A file that does not decode (message from
            :func:`common.data.folders.read_image`, naming it) or a series
            folder without ``.dcm`` files.
    """
    settings = registry.section("shortcut_audit")
    metadata, intensity = [], []
    for path in map(Path, paths):
        header_file, pixel_file, slices = _series_files(path) if path.is_dir() else (path, path, 1)
        pixels = folders.read_image(pixel_file)
        intensity.append(intensity_statistics(pixels, settings["border_fraction"], settings["corner_fraction"]))
        metadata.append({**file_metadata(header_file), "slices": float(slices)})
    return SampleFeatures(
        metadata=pd.DataFrame(metadata, columns=[*CATEGORICAL, *NUMERIC]),
        intensity=pd.DataFrame(intensity, columns=list(INTENSITY)),
    )


def _series_files(folder: Path) -> tuple[Path, Path, int]:
    """``(first file by name, middle slice by InstanceNumber, number of slices)`` of a series folder."""
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() == DICOM_SUFFIX and not path.name.startswith(".")
    )
    if not files:
        raise DataError(f"{folder}: no {DICOM_SUFFIX} files; the shortcut audit reads a series from its DICOM files")
    with dicom_pixels.pydicom_warnings_ignored():
        numbers = [_instance_number(path) for path in files]
    in_order = [path for _, path in sorted(zip(numbers, files))]
    return files[0], in_order[len(in_order) // 2], len(files)


def _instance_number(path: Path) -> int:
    """InstanceNumber of a DICOM file (0 when missing), reading that tag only."""
    dataset = _dicom_header(path, specific_tags=["InstanceNumber"])
    number = dataset.get("InstanceNumber")
    return int(number) if number not in (None, "") else 0


def _dicom_header(path: Path, specific_tags: list[str] | None = None) -> pydicom.Dataset:
    """The header of a DICOM file without its pixel data; DataError naming a file that is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=specific_tags)
    except (InvalidDicomError, *dicom_pixels.HEADER_ERRORS) as error:
        raise DataError(f"{path}: not a readable DICOM file ({type(error).__name__}: {error})") from error


def file_metadata(path: Path) -> dict[str, str | float]:
    """The metadata features of one image file (all but ``slices``), from its header only."""
    if path.suffix.lower() == DICOM_SUFFIX:
        with dicom_pixels.pydicom_warnings_ignored():
            header = _dicom_header(path)
        width, height = int(header.Columns), int(header.Rows)
        described = {
            "format": "DICOM",
            "mode": _tag_text(header.get("PhotometricInterpretation")),
            "bit_depth": _tag_text(header.get("BitsStored")),
        }
        described |= {name: _tag_text(header.get(tag)) for name, tag in DICOM_TAGS.items()}
    else:
        with Image.open(path, formats=folders.PILLOW_FORMATS) as image:  # lazy: the header only
            width, height = image.size
            bits = PILLOW_MODE_BITS.get(image.mode, 8)
            described = {"format": image.format, "mode": image.mode, "bit_depth": str(bits)}
        described |= dict.fromkeys(DICOM_TAGS, MISSING)
    return {
        **described,
        "size": f"{width}x{height}",
        "width": float(width),
        "height": float(height),
        "aspect": width / height,
        "file_kb": path.stat().st_size / 1024,
    }


def _tag_text(value: object) -> str:
    """A header value as a category: multi-values joined by ``x``, empty or absent as ``"missing"``."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, MultiValue):
        return "x".join(str(item) for item in value)
    return str(value)


def intensity_statistics(pixels: np.ndarray, border_fraction: float, corner_fraction: float) -> dict[str, float]:
    """Global intensity statistics of a greyscale image on 0..255.

    Args:
        pixels: (H, W) array as :func:`common.data.folders.read_image` returns it.
        border_fraction: Width of the border band, as a share of the shorter side (at least one pixel).
        corner_fraction: Side of each corner square, as a share of the shorter side (at least one pixel).

    Returns:
        One value per name in :data:`INTENSITY`.
    """
    shorter = min(pixels.shape)
    band = max(1, round(border_fraction * shorter))
    corner = max(1, round(corner_fraction * shorter))
    inner = np.zeros(pixels.shape, dtype=bool)
    inner[band:-band, band:-band] = True
    return {
        "mean": float(pixels.mean()),
        "std": float(pixels.std()),
        "border_mean": float(pixels[~inner].mean()),
        "corner_top_left": float(pixels[:corner, :corner].mean()),
        "corner_top_right": float(pixels[:corner, -corner:].mean()),
        "corner_bottom_left": float(pixels[-corner:, :corner].mean()),
        "corner_bottom_right": float(pixels[-corner:, -corner:].mean()),
        "share_at_0": float((pixels <= 0).mean()),
        "share_at_255": float((pixels >= 255).mean()),
    }
