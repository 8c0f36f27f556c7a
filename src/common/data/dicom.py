"""DICOM CT series to a 3D volume, for the 3D Grad-CAM experiment (seed 001).

Seed 001 stacks the 2D slices of each Lung-PET-CT-Dx series "in the correct
manner" into a (512, 512, 64) volume, then normalises it with min-max scaling
(its equation 2) and enhances it with the Sobel operator. The paper gives no
more detail than that, so this module fixes the choices explicitly:

* Slices are ordered by their position along the slice normal (the cross
  product of the two ImageOrientationPatient direction cosines, dotted with
  ImagePositionPatient), ascending. Without those tags the InstanceNumber is
  used instead, with a warning.
* Stored values are mapped to Hounsfield units by the modality LUT
  (RescaleSlope and RescaleIntercept).
* Volumes are indexed (rows, columns, slices) = (H, W, D), the layout the
  paper's (512, 512, 64) input shape uses.

A folder that is not a clean single series fails with a :class:`DataError`
that names the offending files; non-uniform slice spacing is reported in the
returned info and warned about, because real scans have it and it is not an
error.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import MediaStorageDirectoryStorage

from common.config import registry
from common.data import dicom_pixels, folders, volume_ops
from common.data.volume_ops import SOBEL_WEIGHT
from common.errors import DataError, ParameterError

# The window seed 001 does not state but lung CT is usually read with: (center, width) in HU.
LUNG_WINDOW = (-600.0, 1500.0)
# Slice gaps are compared after rounding to this many decimals of a millimetre: DICOM
# positions are decimal strings, so equal gaps differ in the last float digits.
GAP_DECIMALS = 2
# Largest difference between direction cosines of two slices still taken as the same orientation.
ORIENTATION_TOLERANCE = 1e-4
# How many example files an error message names per group.
EXAMPLES_IN_MESSAGE = 3

SORTED_BY_POSITION = "ImagePositionPatient"
SORTED_BY_INSTANCE = "InstanceNumber"


def load_series(
    folder: str | os.PathLike,
    depth: int | None = None,
    size: int | Sequence[int] | None = None,
    window: Sequence[float] | None = None,
    normalise: bool = True,
    sobel: bool = False,
    series_uid: str | None = None,
    sobel_weight: float = SOBEL_WEIGHT,
) -> tuple[np.ndarray, dict]:
    """Read one DICOM series into a (H, W, D) float32 volume.

    Steps, in order: read every file under ``folder`` (recursively), keep the
    chosen series, sort its slices along the slice normal, convert to
    Hounsfield units, clip to ``window``, resample to ``size`` and ``depth``,
    min-max normalise, Sobel-enhance.

    Resampling is :func:`common.data.volume_ops.resample`: along the slice
    axis at the slices' positions, so unevenly spaced slices land where they
    are in the body (equidistant when ordered by InstanceNumber).

    Args:
        folder: Folder holding the slice files of one series (files in
            subfolders are read too). Hidden files (name starting with ".")
            and DICOMDIR index files are ignored.
        depth: Number of slices of the output; None keeps the series' count.
        size: In-plane output size, an int for a square or (H, W); None keeps
            the series' size.
        window: (center, width) in HU; values are clipped to
            [center - width / 2, center + width / 2], e.g. ``LUNG_WINDOW``.
        normalise: Scale the volume to [0, 1] with :func:`common.data.volume_ops.min_max_normalise`
            (seed 001, equation 2). False returns Hounsfield units.
        sobel: Add Sobel edges with :func:`common.data.volume_ops.sobel_enhance`.
        series_uid: SeriesInstanceUID to load when the folder holds several.
        sobel_weight: Weight of the edges when ``sobel`` is true.

    Returns:
        (volume, info). ``volume`` is float32 shaped (H, W, D). ``info`` has:
        series_uid; files (paths in slice order); source_shape (H, W, D as
        read); n_slices; sorted_by ("ImagePositionPatient" or
        "InstanceNumber"); slice_positions (mm along the normal, None when
        sorted by InstanceNumber); spacing (row, column, slice) in mm of the
        source, the slice entry being the median gap (SliceThickness when
        positions are unknown, None when that is missing too);
        spacing_gaps (the distinct gaps, rounded to 0.01 mm); uniform_spacing
        (bool, None when positions are unknown); window; normalised; sobel.

    Raises:
        DataError: The folder is missing or has no DICOM files, a file is not
            DICOM or has no readable pixel data, the folder mixes series and
            none was chosen, slice shapes or orientations differ, two slices
            share a position, or slices cannot be ordered.
        ParameterError: depth, size, window or sobel_weight is not valid.
    """
    output_size = _check_size(size)
    _check_depth(depth)
    window_range = _check_window(window)
    volume_ops.check_sobel_weight(sobel_weight)

    headers = _select_series(_read_headers(_series_files(Path(folder))), Path(folder), series_uid)
    _check_same_shape(headers)
    _check_voxel_count(Path(folder), headers)
    ordered, positions, sorted_by = _order_slices(headers)
    volume = np.stack([load_slice(path) for path, _ in ordered], axis=-1)

    if window_range is not None:
        volume = np.clip(volume, *window_range)
    volume = volume_ops.resample(volume, output_size, depth, positions)
    if normalise:
        volume = volume_ops.min_max_normalise(volume)
    if sobel:
        volume = volume_ops.sobel_enhance(volume, sobel_weight)
    info = {
        **_series_info(ordered, positions, sorted_by),
        "window": None if window is None else tuple(float(v) for v in window),
        "normalised": bool(normalise),
        "sobel": bool(sobel),
    }
    return volume.astype(np.float32, copy=False), info


def _series_info(ordered: list[tuple[Path, pydicom.Dataset]], positions: np.ndarray | None, sorted_by: str) -> dict:
    """What :func:`load_series` read: series, files in order, source shape, ordering, spacing."""
    first = ordered[0][1]
    return {
        "series_uid": str(first.SeriesInstanceUID),
        "files": [str(path) for path, _ in ordered],
        "source_shape": (int(first.Rows), int(first.Columns), len(ordered)),
        "n_slices": len(ordered),
        "sorted_by": sorted_by,
        "slice_positions": None if positions is None else [float(p) for p in positions],
        **_spacing_info(ordered, positions),
    }


@dicom_pixels.pydicom_warnings_ignored()
def load_slice(path: str | os.PathLike, invert_monochrome1: bool = False) -> np.ndarray:
    """Read one single-frame DICOM image as Hounsfield units.

    Args:
        path: A DICOM file holding one greyscale image.
        invert_monochrome1: Negate the values of a MONOCHROME1 image (which
            shows low values as white), so higher values are brighter in every
            image; for display-scaled reading (:func:`common.data.folders.read_image`).

    Returns:
        float32 array (Rows, Columns): stored values mapped by the modality LUT
        (RescaleSlope * value + RescaleIntercept for CT).

    Raises:
        DataError: The file is not DICOM or its header is damaged, Rows or
            Columns is missing or a rescale tag not a number, the image is above
            ``input_limits.max_image_pixels``, the pixel data is compressed with
            no decoder installed (the message names the transfer syntax and the
            packages that decode it), missing, truncated or damaged, or it is not
            a single greyscale frame.
    """
    path = Path(path)
    dataset = _read_dicom(path, stop_before_pixels=False)
    _check_header(path, dataset, SLICE_TAGS)
    folders.check_pixel_count(path, int(dataset.Columns), int(dataset.Rows))
    stored = dicom_pixels.stored_pixels(path, dataset)
    if stored.ndim != 2:
        raise DataError(
            f"{path}: expected one greyscale frame, found pixel data shaped {stored.shape} "
            "(multi-frame or colour images are not CT slices; split or remove the file)"
        )
    values = dicom_pixels.rescaled(path, stored, dataset)
    if invert_monochrome1 and dataset.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        values = -values
    return values


def find_series(root: str | os.PathLike) -> list[Path]:
    """List the folders under ``root`` that directly hold DICOM files.

    Fits layouts such as root/<class>/<case>/*.dcm and TCIA downloads
    (root/<patient>/<study>/<series>/*.dcm). A folder is a series folder when
    at least one of its own non-hidden files reads as DICOM; whether it holds
    one clean series is checked by :func:`load_series`.

    Args:
        root: Folder to search recursively.

    Returns:
        Series folders, sorted by path.

    Raises:
        DataError: ``root`` is not a folder or holds no DICOM files.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass the folder holding the DICOM series")
    series_folders = []
    for folder, subfolders, file_names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        visible = sorted(name for name in file_names if not name.startswith("."))
        if any(_is_dicom_image_file(Path(folder) / name) for name in visible):
            series_folders.append(Path(folder))
    if not series_folders:
        raise DataError(f"{root}: no DICOM files found in it or its subfolders")
    return sorted(series_folders)


def _check_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """Return ``size`` as (H, W), or raise ParameterError."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ParameterError(f"size={size!r}: give a positive int or a pair (H, W) of positive ints")
    return int(pair[0]), int(pair[1])


def _check_depth(depth: int | None) -> None:
    """Raise ParameterError unless ``depth`` is None or a positive int."""
    if depth is not None and not (isinstance(depth, (int, np.integer)) and depth > 0):
        raise ParameterError(f"depth={depth!r}: give a positive number of slices or None")


def _check_window(window: Sequence[float] | None) -> tuple[float, float] | None:
    """Return the HU range [low, high] of a (center, width) window, or raise ParameterError."""
    if window is None:
        return None
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"window={window!r}: give (center, width) in HU, e.g. {LUNG_WINDOW}") from error
    if not width > 0:
        raise ParameterError(f"window={window!r}: the width must be positive")
    return center - width / 2, center + width / 2


def _series_files(folder: Path) -> list[Path]:
    """All non-hidden files under ``folder``, sorted; DataError if it is not a folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass the folder holding one series' slice files")
    files = []
    for parent, subfolders, file_names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        files.extend(Path(parent) / name for name in file_names if not name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no files; expected the DICOM slices of one series")
    return sorted(files)


def _read_dicom(path: Path, stop_before_pixels: bool) -> pydicom.Dataset:
    """Read a DICOM file, raising DataError naming it when it is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as error:
        raise DataError(f"{path}: not a DICOM file ({error}); remove it from the series folder") from error
    except dicom_pixels.HEADER_ERRORS as error:
        raise DataError(
            f"{path}: unreadable DICOM file ({type(error).__name__}: {error}); it is truncated or damaged: "
            "download or export it again, or remove it"
        ) from error


def _is_dicom_index(dataset: pydicom.Dataset) -> bool:
    """True for a DICOMDIR: a DICOM file that indexes others and holds no image."""
    return dataset.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage


def _is_dicom_image_file(path: Path) -> bool:
    """True when ``path`` reads as a DICOM file that is not a DICOMDIR."""
    try:
        with dicom_pixels.pydicom_warnings_ignored():
            return not _is_dicom_index(_read_dicom(path, stop_before_pixels=True))
    except DataError:
        return False


def _read_headers(files: list[Path]) -> list[tuple[Path, pydicom.Dataset]]:
    """Headers (no pixel data) of the image files; DICOMDIR files are skipped."""
    headers = []
    with dicom_pixels.pydicom_warnings_ignored():  # the tags read later are checked here
        for path in files:
            dataset = _read_dicom(path, stop_before_pixels=True)
            if _is_dicom_index(dataset):
                continue
            if not dataset.get("SeriesInstanceUID"):
                raise DataError(f"{path}: DICOM file without SeriesInstanceUID; it is not a slice of a series")
            _check_header(path, dataset, SERIES_TAGS)
            headers.append((path, dataset))
    if not headers:
        raise DataError(f"{files[0].parent}: no DICOM image files, only a DICOMDIR index")
    return headers


# Tags a slice must have, and tags that, when present, must hold this many numbers: those
# load_slice reads, and those load_series reads too (the geometry).
REQUIRED_TAGS = {"Rows": 1, "Columns": 1}
SLICE_TAGS = {**REQUIRED_TAGS, "RescaleSlope": 1, "RescaleIntercept": 1}
SERIES_TAGS = {
    **SLICE_TAGS,
    "ImagePositionPatient": 3,
    "ImageOrientationPatient": 6,
    "PixelSpacing": 2,
    "SliceThickness": 1,
    "InstanceNumber": 1,
}


def _check_header(path: Path, dataset: pydicom.Dataset, numeric_tags: dict[str, int]) -> None:
    """DataError naming the file and the tag when a required tag is missing or a numeric tag malformed.

    Args:
        path: The file read.
        dataset: Its header.
        numeric_tags: Tag -> how many numbers it must hold when present (every tag of
            :data:`REQUIRED_TAGS` must be present).
    """
    for tag, count in numeric_tags.items():
        value, numbers = _tag_numbers(dataset, tag)
        if value is None or value == "":
            if tag in REQUIRED_TAGS:
                raise DataError(f"{path}: the DICOM tag {tag} is missing; the file is not an image slice: remove it")
            continue
        if len(numbers) != count or not all(np.isfinite(numbers)):
            raise DataError(
                f"{path}: the DICOM tag {tag} holds {value!r}, not {count} number(s); the header is damaged: "
                "export the file again or remove it"
            )


def _tag_numbers(dataset: pydicom.Dataset, tag: str) -> tuple[object, list[float]]:
    """A tag's value (None when absent) and its numbers, [] when the value does not parse as numbers."""
    try:
        value = dataset.get(tag)
        if value is None or value == "":
            return value, []
        values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
        return value, [float(v) for v in values]
    except (TypeError, *dicom_pixels.HEADER_ERRORS):  # a damaged value fails when pydicom or float() parses it
        return dataset.get_item(tag).value, []


def _check_voxel_count(folder: Path, headers: list[tuple[Path, pydicom.Dataset]]) -> None:
    """DataError, before any pixel is decoded, for a series above ``input_limits.max_series_voxels``."""
    rows, columns = int(headers[0][1].Rows), int(headers[0][1].Columns)
    voxels, limit = rows * columns * len(headers), registry.section("input_limits")["max_series_voxels"]
    if voxels > limit:
        raise DataError(
            f"{folder}: the series is {rows} x {columns} x {len(headers)} = {voxels:,} voxels, above the limit "
            f"of {limit:,} (input_limits in registry.yaml); split or downsample it first."
        )


def _select_series(
    headers: list[tuple[Path, pydicom.Dataset]], folder: Path, series_uid: str | None
) -> list[tuple[Path, pydicom.Dataset]]:
    """Keep the slices of one series: the only one, or ``series_uid``."""
    counts = Counter(str(dataset.SeriesInstanceUID) for _, dataset in headers)
    listing = ", ".join(f"{uid} ({count} files)" for uid, count in sorted(counts.items()))
    if series_uid is None:
        if len(counts) > 1:
            raise DataError(f"{folder}: mixed series: pass series_uid=... with one of {listing}")
        return headers
    if series_uid not in counts:
        raise DataError(f"{folder}: series_uid={series_uid!r} not found; the folder holds {listing}")
    return [(path, dataset) for path, dataset in headers if str(dataset.SeriesInstanceUID) == series_uid]


def _files_by_value(headers: list[tuple[Path, pydicom.Dataset]], value_of) -> dict:
    """Group file paths by ``value_of(dataset)``, keeping file order."""
    groups: dict = {}
    for path, dataset in headers:
        groups.setdefault(value_of(dataset), []).append(path)
    return groups


def _describe_groups(groups: dict, describe_key) -> str:
    """'key: n files (a, b, c)' for each group, for error messages."""
    return "; ".join(
        f"{describe_key(key)}: {len(paths)} files ({', '.join(p.name for p in paths[:EXAMPLES_IN_MESSAGE])})"
        for key, paths in groups.items()
    )


def _check_same_shape(headers: list[tuple[Path, pydicom.Dataset]]) -> None:
    """DataError naming shapes and files unless all slices have one (Rows, Columns)."""
    groups = _files_by_value(headers, lambda dataset: (int(dataset.Rows), int(dataset.Columns)))
    if len(groups) > 1:
        described = _describe_groups(groups, lambda shape: f"{shape[0]}x{shape[1]}")
        raise DataError(
            f"{headers[0][0].parent}: slices of different shapes (rows x columns): {described}; "
            "a series' slices must share one shape"
        )


def _order_slices(
    headers: list[tuple[Path, pydicom.Dataset]],
) -> tuple[list[tuple[Path, pydicom.Dataset]], np.ndarray | None, str]:
    """Sort slices along the slice normal, or by InstanceNumber when geometry is missing.

    Returns:
        (ordered headers, ascending positions in mm or None, name of the tag sorted by).
    """
    folder = headers[0][0].parent
    has_geometry = all(
        dataset.get("ImagePositionPatient") and dataset.get("ImageOrientationPatient") for _, dataset in headers
    )
    if not has_geometry:
        missing = [path.name for path, dataset in headers if dataset.get("InstanceNumber") in (None, "")]
        if missing:
            raise DataError(
                f"{folder}: cannot order the slices: ImagePositionPatient/ImageOrientationPatient and "
                f"InstanceNumber are missing (e.g. in {', '.join(missing[:EXAMPLES_IN_MESSAGE])})"
            )
        warnings.warn(
            f"{folder}: ImagePositionPatient/ImageOrientationPatient missing; slices ordered by "
            "InstanceNumber and their spacing cannot be checked",
            stacklevel=3,
        )
        ordered = sorted(headers, key=lambda item: (int(item[1].InstanceNumber), str(item[0])))
        return ordered, None, SORTED_BY_INSTANCE

    orientations = np.array([[float(v) for v in ds.ImageOrientationPatient] for _, ds in headers])
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        groups = _files_by_value(headers, lambda ds: tuple(round(float(v), 4) for v in ds.ImageOrientationPatient))
        raise DataError(
            f"{folder}: slices with different ImageOrientationPatient: "
            f"{_describe_groups(groups, str)}; remove the scout/localiser or other-plane images"
        )
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    positions = np.array([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for _, ds in headers])
    order = sorted(range(len(headers)), key=lambda i: (positions[i], str(headers[i][0])))
    ordered = [headers[i] for i in order]
    positions = positions[order]

    duplicated = np.flatnonzero(np.round(np.diff(positions), GAP_DECIMALS) == 0)
    if duplicated.size:
        i = duplicated[0]
        raise DataError(
            f"{folder}: two slices at the same position {positions[i]:.2f} mm "
            f"({ordered[i][0].name}, {ordered[i + 1][0].name}); the folder likely holds two "
            "acquisitions of one series: split them"
        )
    return ordered, positions, SORTED_BY_POSITION


def _spacing_info(ordered: list[tuple[Path, pydicom.Dataset]], positions: np.ndarray | None) -> dict:
    """spacing, spacing_gaps and uniform_spacing of the ordered slices; warns when gaps differ."""
    first = ordered[0][1]
    pixel_spacing = first.get("PixelSpacing")
    row_spacing, column_spacing = (None, None) if not pixel_spacing else (float(v) for v in pixel_spacing)
    thickness = first.get("SliceThickness")
    # The median gap is the slice spacing; a lone slice or unknown positions leave SliceThickness.
    slice_spacing = None if thickness in (None, "") else float(thickness)
    if positions is None:
        return {
            "spacing": (row_spacing, column_spacing, slice_spacing),
            "spacing_gaps": [],
            "uniform_spacing": None,
        }
    gaps = np.round(np.diff(positions), GAP_DECIMALS)
    distinct_gaps = [float(gap) for gap in np.unique(gaps)]
    if len(distinct_gaps) > 1:
        warnings.warn(
            f"{ordered[0][0].parent}: non-uniform slice spacing, gaps {distinct_gaps} mm",
            stacklevel=3,
        )
    if gaps.size:
        slice_spacing = float(np.median(gaps))
    return {
        "spacing": (row_spacing, column_spacing, slice_spacing),
        "spacing_gaps": distinct_gaps,
        "uniform_spacing": len(distinct_gaps) <= 1,
    }
