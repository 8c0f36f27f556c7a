"""Class-folder image data sets: reading single images and building the sample table.

A data set is a root folder with one sub-folder per class (``root/<class folder>/
<image>``; images may sit in nested sub-folders of a class folder). The label map,
normally taken from the registry or a data manifest, names the label of each class
folder; several folders may share one label (e.g. benign and malignant -> nodule).

Every image is read into the same form, whatever its file format: a float32
greyscale array ``(H, W)`` on a 0..255 scale. Colour images become luminance
(ITU-R 601-2, Pillow's ``convert("L")``); an alpha channel is dropped, not
composited, because exported CT slices carry an opaque or meaningless alpha.
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from common.config import registry
from common.errors import DataError, ParameterError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"})

BAD_FILE_POLICIES = ("error", "skip")

SAMPLE_COLUMNS = (
    "path",
    "label",
    "label_index",
    "class_folder",
    "width",
    "height",
    "group",
    "mask_path",
)

# Full-scale value of Pillow's 16/32-bit integer modes: Pillow opens 16-bit PNG
# and TIFF greyscale as "I;16*" (recent versions) or "I" (older ones and some TIFFs).
SIXTEEN_BIT_FULL_SCALE = 65535.0
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# The Pillow formats of the raster suffixes, whatever a file's own suffix (a .png that is
# really a JPEG still reads); any other format Pillow knows (EPS, which runs Ghostscript,
# and dozens of rarely used ones) is never tried on the study's input.
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF")
# What Pillow raises for a file that is not a well-formed image: OSError (with
# UnidentifiedImageError and truncation), SyntaxError and ValueError (bad headers or
# chunks), EOFError and struct.error (headers cut short), TypeError (a TIFF frame
# without its size tags).
PILLOW_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, TypeError)


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as a float32 greyscale array on a 0..255 scale.

    8-bit images keep their values; 16-bit greyscale images are divided by their
    range (65535) and multiplied by 255; 32-bit integer images whose values fit in
    16 bits are treated as 16-bit, other 32-bit integer and float images are
    min-max scaled. DICOM files get their rescale slope and intercept applied
    (so the values are Hounsfield units for CT) and are then min-max scaled, since
    a window is a modelling choice made elsewhere (``common.data.dicom``).

    Args:
        path: An image file whose suffix is in :data:`IMAGE_SUFFIXES`.

    Returns:
        Array of shape ``(H, W)``, dtype float32, values in [0, 255].

    Raises:
        DataError: the file is missing, empty, truncated, not an image (or in a
            format other than PNG, JPEG, BMP, TIFF and DICOM), a multi-frame image,
            above ``input_limits.max_image_pixels``, holds NaN or infinite values,
            or has an unknown suffix; a DICOM file also when
            :func:`common.data.dicom.load_slice` refuses it (e.g. its compressed
            pixel data has no decoder installed). The message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(
            f"{path}: unknown image suffix {path.suffix!r}; supported: "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}. Convert the file or move it out of the data folder."
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the data folder path.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); download it again or remove it.")
    return _read_dicom(path) if suffix == ".dcm" else _read_pillow(path)


def _read_pillow(path: Path) -> np.ndarray:
    """Decode a raster file fully with Pillow (truncation raises, never pads)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata (EXIF, ICC profiles), which is never read here
            # (damaged pixels raise), and about its own decompression-bomb limit, above the
            # study's: check_pixel_count refuses those images with one line of its own.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=PILLOW_FORMATS) as image:
                return _pillow_pixels(path, image)
    except DataError:  # the study's own refusals (size, frames, values); DataError is also a ValueError
        raise
    except Image.DecompressionBombError as exc:  # Image.open refuses these before their size can be read
        declared = f"the image declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        raise DataError(f"{path}: {declared}, {_pixel_limit_advice()}") from exc
    except PILLOW_DECODE_ERRORS as exc:
        raise DataError(
            f"{path}: not a readable image ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not an image. Download it again or remove it."
        ) from exc


def _pillow_pixels(path: Path, image: Image.Image) -> np.ndarray:
    """The pixels of an opened Pillow image as float32 greyscale on 0..255."""
    check_pixel_count(path, image.width, image.height)
    if getattr(image, "n_frames", 1) > 1:
        raise DataError(
            f"{path}: has {image.n_frames} frames; only single-slice images are supported. "
            "Split it into one file per slice."
        )
    # A full decode now, so a truncated file fails here rather than later in a pipeline.
    image.load()
    if image.mode in SIXTEEN_BIT_MODES:
        return _scale(np.asarray(image, dtype=np.float32), SIXTEEN_BIT_FULL_SCALE)
    if image.mode in ("I", "F"):
        values = _finite(path, np.asarray(image, dtype=np.float32))
        fits_sixteen_bit = image.mode == "I" and values.min() >= 0 and values.max() <= SIXTEEN_BIT_FULL_SCALE
        return _scale(values, SIXTEEN_BIT_FULL_SCALE) if fits_sixteen_bit else _min_max(values)
    if "L" in image.getbands():  # "L", "LA", "La", "LAB": the lightness band itself; alpha is discarded
        return np.asarray(image.getchannel("L"), dtype=np.float32)
    # "1", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr": Pillow's luminance conversion; alpha is discarded.
    return np.asarray(image.convert("L"), dtype=np.float32)


def _finite(path: Path, values: np.ndarray) -> np.ndarray:
    """``values``, or a DataError when some are NaN or infinite (a float TIFF may hold them)."""
    if not np.isfinite(values).all():
        raise DataError(f"{path}: the image holds NaN or infinite values; export it again with finite values.")
    return values


def _read_dicom(path: Path) -> np.ndarray:
    """Decode one DICOM slice in Hounsfield units (:func:`common.data.dicom.load_slice`), min-max to 0..255."""
    from common.data import dicom  # imported here: only DICOM data sets need pydicom

    try:
        values = dicom.load_slice(path, invert_monochrome1=True)
    except DataError as exc:  # load_slice's message names the file and says what to do
        reason = str(exc).removeprefix(f"{path}: ")
        raise DataError(f"{path}: not a readable image ({reason})") from exc
    return _min_max(values)


def check_pixel_count(path: Path, width: int, height: int) -> None:
    """DataError, before decoding, for an image above the registry's ``input_limits.max_image_pixels``."""
    if width * height > registry.section("input_limits")["max_image_pixels"]:
        raise DataError(f"{path}: the image is {width} x {height} = {width * height:,} pixels, {_pixel_limit_advice()}")


def _pixel_limit_advice() -> str:
    limit = registry.section("input_limits")["max_image_pixels"]
    return f"above the limit of {limit:,} pixels (input_limits in registry.yaml); reduce it before reading it here."


def _scale(values: np.ndarray, full_scale: float) -> np.ndarray:
    return (values * (255.0 / full_scale)).astype(np.float32)


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scale to 0..255 in float64, so a range wider than float32 holds (e.g. -3e38..3e38) does not overflow."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) * (255.0 / (high - low))).astype(np.float32)


def _natural_key(path: Path) -> list[Any]:
    """Sort key that orders 'case (2)' before 'case (10)'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.as_posix())]


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _class_folder_images(folder: Path) -> list[Path]:
    """Image-suffixed, non-hidden files anywhere below a class folder, naturally sorted."""
    files = [
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not _is_hidden(path, folder)
    ]
    return sorted(files, key=lambda path: _natural_key(path.relative_to(folder)))


def _labels_in_order(label_map: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(label_map.values()))


def load_class_folders(
    root: str | Path,
    label_map: Mapping[str, str] | None = None,
    mask_root: str | Path | None = None,
    on_bad_file: str = "error",
    min_classes: int = 2,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Build the sample table of a class-folder data set, reading every image once.

    Files directly in ``root`` (e.g. a release's read-me) and hidden files and
    folders are ignored; inside a class folder, files with other suffixes are
    ignored, but a file with an image suffix that does not decode is a bad file.

    Args:
        root: Folder with one sub-folder per class.
        label_map: Class folder name -> label. The label order (``label_index``)
            is the order in which labels first appear among the values, so the
            caller decides the class order. ``None`` uses the folder names,
            sorted, as labels.
        mask_root: Folder with the same class sub-folders holding a lesion mask
            per image, ``<mask_root>/<class folder>/<same relative path>.png``.
        on_bad_file: ``"error"`` stops at the first unreadable image;
            ``"skip"`` leaves it out and records it in the returned list.
        min_classes: Fewest labels the folders must hold: 2 for a data set to train on, 1 for a
            test-only stratum of one class (the contrast-detail analysis's harder images).

    Returns:
        ``(samples, skipped)``: ``samples`` has the columns of
        :data:`SAMPLE_COLUMNS` (``group`` is None: class folders carry no patient
        ids; ``mask_path`` is None without ``mask_root``); ``skipped`` holds one
        ``{"path", "reason"}`` dict per skipped file.

    Raises:
        DataError: root missing, no class folders, a class folder not in the
            label map, a label with no folder, an empty class folder, a missing
            mask, fewer than ``min_classes`` classes, or an unreadable image (policy ``"error"``).
        ParameterError: unknown ``on_bad_file``.
    """
    if on_bad_file not in BAD_FILE_POLICIES:
        raise ParameterError(f"on_bad_file must be one of {BAD_FILE_POLICIES}, got {on_bad_file!r}.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"Data folder {root} does not exist; pass --data-dir with the folder that holds one sub-folder per class."
        )
    folders = sorted(
        (path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")),
        key=_natural_key,
    )
    if not folders:
        raise DataError(f"{root} has no class sub-folders; expected one sub-folder of images per class.")
    if label_map is None:
        label_map = {folder.name: folder.name for folder in folders}
    _check_folders_match(root, [folder.name for folder in folders], label_map)
    labels = _labels_in_order(label_map)
    if len(labels) < min_classes:
        raise DataError(f"{root}: only one class ({labels[0]!r}) found; a classifier needs at least two.")

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    # Folders are visited in label order, so the table reads class by class.
    for folder in sorted(folders, key=lambda folder: labels.index(label_map[folder.name])):
        images = _class_folder_images(folder)
        if not images:
            raise DataError(
                f"Class folder {folder} holds no images (suffixes {', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add its images or remove the folder and its label-map entry."
            )
        folder_rows = _folder_rows(folder, images, label_map[folder.name], labels, mask_root, on_bad_file, skipped)
        rows.extend(folder_rows)
        if not folder_rows:
            raise DataError(f"Class folder {folder}: none of its {len(images)} images could be read.")
    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    samples["label_index"] = samples["label_index"].astype(int)
    return samples, skipped


def _folder_rows(
    folder: Path,
    images: list[Path],
    label: str,
    labels: list[str],
    mask_root: str | Path | None,
    on_bad_file: str,
    skipped: list[dict[str, str]],
) -> list[dict[str, Any]]:
    """Sample rows of one class folder's images; bad files raise or go to ``skipped``."""
    rows = []
    for path in images:
        try:
            height, width = read_image(path).shape
        except DataError as exc:
            if on_bad_file == "error":
                raise DataError(f"{exc} (or load with on_bad_file='skip' to leave bad files out)") from exc
            skipped.append({"path": str(path), "reason": str(exc)})
            continue
        rows.append(
            {
                "path": str(path),
                "label": label,
                "label_index": labels.index(label),
                "class_folder": folder.name,
                "width": width,
                "height": height,
                "group": None,
                "mask_path": _mask_path(mask_root, folder, path),
            }
        )
    return rows


def _check_folders_match(root: Path, folder_names: Iterable[str], label_map: Mapping[str, str]) -> None:
    """Every folder has a label, and every label has at least one folder."""
    folder_names = list(folder_names)
    unknown = [name for name in folder_names if name not in label_map]
    if unknown:
        raise DataError(
            f"{root}: class folder(s) {unknown} are not in the label map; known folders: "
            f"{sorted(label_map)}. Rename the folders or remove the extra ones."
        )
    for label in _labels_in_order(label_map):
        expected = [name for name, mapped in label_map.items() if mapped == label]
        if not any(name in folder_names for name in expected):
            raise DataError(
                f"{root}: no class folder for label {label!r} (expected {expected}); found {folder_names}. "
                "The download may be incomplete."
            )


def _mask_path(mask_root: str | Path | None, folder: Path, image_path: Path) -> str | None:
    if mask_root is None:
        return None
    mask = Path(mask_root) / folder.name / image_path.relative_to(folder).with_suffix(".png")
    if not mask.is_file():
        raise DataError(f"Mask {mask} for image {image_path} not found; every image needs a mask under {mask_root}.")
    return str(mask)


def class_names(samples: pd.DataFrame) -> list[str]:
    """Labels ordered by ``label_index`` (only those present in ``samples``)."""
    pairs = samples[["label_index", "label"]].drop_duplicates().sort_values("label_index")
    return pairs["label"].tolist()


def class_counts(samples: pd.DataFrame, by: str = "split") -> pd.DataFrame:
    """Count images per label, and per value of ``by`` when that column exists.

    Args:
        samples: A sample table (see :func:`load_class_folders`).
        by: Column to cross with the label, usually ``"split"``.

    Returns:
        A table indexed by label (in label order) with one column per value of
        ``by`` (train/val/test first, in that order) and a ``total`` column;
        without the ``by`` column just ``total``.
    """
    labels = class_names(samples)
    if by in samples.columns:
        table = pd.crosstab(samples["label"], samples[by])
        known_order = [name for name in ("train", "val", "test") if name in table.columns]
        table = table[known_order + sorted(set(table.columns) - set(known_order), key=str)]
    else:
        table = pd.DataFrame(index=pd.Index(samples["label"].unique(), name="label"))
    table["total"] = samples["label"].value_counts()
    table = table.reindex(labels)
    table.columns.name = None
    return table.astype(int)
