"""Lesion masks from bounding boxes: Pascal VOC XML files, as the Lung-PET-CT-Dx collection ships them.

Lung-PET-CT-Dx annotates a tumour on a CT slice with one Pascal VOC file named
``<SOP Instance UID>.xml``:

* ``<annotation>`` holding an optional ``<size>`` (``<width>``, ``<height>``)
  and one or more ``<object>``, each with a ``<name>`` (a class letter: A, B, E
  or G in that collection) and a ``<bndbox>`` with ``xmin``, ``ymin``, ``xmax``
  and ``ymax``;
* coordinates are pixel columns (x) and rows (y), **1-based and inclusive**, the
  Pascal VOC convention: ``xmin = 1, xmax = width`` covers every column.
  Fractional values are rounded. A box reaching past the image is clipped to
  it; a box wholly outside it is a bad file.

Slices are matched by their SOP Instance UID, never by file order: a DICOM
slice by its header (read without pixel data), an exported PNG or JPEG slice
by its file stem. :func:`image_masks` (2D data sets) and :func:`series_masks`
(DICOM series) write one mask file per annotated image or series, and one
shared empty mask per shape for the others, so a sample table's ``mask_path``
column and the readers of masks work as with the phantoms' outlines. A series
mask is (H, W, D) in the slice order of :func:`common.data.dicom.load_series`,
the layout of the phantoms' ``<class>/<case>.npz`` masks.

Bad files (malformed XML, a missing ``<bndbox>`` field, a box outside the image
or a ``<size>`` other than the image's, two files for one slice, a UID no slice
of the data has) raise a :class:`DataError` naming the file, or with
``on_bad_file="skip"`` are left out and recorded as ``{"path", "reason"}``.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError

from common.data import dicom, dicom_pixels, folders, volume_sets
from common.errors import DataError, ParameterError

ANNOTATION_SUFFIX = ".xml"
BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
# A mask file per annotated image or series; the others share one empty mask per shape.
EMPTY_MASK_PREFIX = "empty-"
IMAGE_MASK_SUFFIX = ".png"
MASK_WHITE = 255


# ---------------------------------------------------------------- one file


@dataclass(frozen=True)
class Box:
    """One bounding box, in 1-based inclusive pixel coordinates (Pascal VOC).

    Attributes:
        name: The object's class (a letter in Lung-PET-CT-Dx).
        xmin, ymin, xmax, ymax: First and last column (x) and row (y), 1-based.
    """

    name: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def overlaps(self, shape: tuple[int, int]) -> bool:
        """Whether any of the box lies in an image of ``shape`` (rows, columns)."""
        rows, columns = shape
        return self.xmin <= columns and self.ymin <= rows and self.xmax >= 1 and self.ymax >= 1

    def region(self, shape: tuple[int, int]) -> tuple[slice, slice]:
        """The 0-based (rows, columns) slices the box covers, clipped to an image of ``shape``."""
        rows, columns = shape
        return slice(max(self.ymin, 1) - 1, min(self.ymax, rows)), slice(max(self.xmin, 1) - 1, min(self.xmax, columns))

    def record(self) -> dict[str, int | str]:
        """The box as JSON: its class and coordinates."""
        return {"name": self.name, "xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax}


@dataclass(frozen=True)
class Annotation:
    """The boxes of one annotated slice.

    Attributes:
        uid: The slice's SOP Instance UID (the file's stem).
        boxes: Its boxes, in file order.
        size: (height, width) from ``<size>``, or None when the file gives none (or zeros).
        path: The XML file.
    """

    uid: str
    boxes: tuple[Box, ...]
    size: tuple[int, int] | None
    path: Path

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The union of the boxes as a bool mask of an image of ``shape`` (rows, columns).

        Raises:
            DataError: naming the file, when its ``<size>`` is not ``shape`` or a box lies wholly outside.
        """
        shape = (int(shape[0]), int(shape[1]))
        if self.size is not None and self.size != shape:
            raise DataError(
                f"{self.path}: annotated on an image of {self.size[1]} x {self.size[0]} pixels, but slice {self.uid} "
                f"is {shape[1]} x {shape[0]}; the boxes belong to another copy of the slice"
            )
        mask = np.zeros(shape, dtype=bool)
        for box in self.boxes:
            if not box.overlaps(shape):
                raise DataError(
                    f"{self.path}: box {box.xmin},{box.ymin}-{box.xmax},{box.ymax} lies outside the "
                    f"{shape[1]} x {shape[0]} slice {self.uid}; fix or remove the file"
                )
            mask[box.region(shape)] = True
        return mask

    def record(self) -> dict:
        """The annotation as JSON."""
        return {
            "uid": self.uid,
            "path": str(self.path),
            "size": None if self.size is None else list(self.size),
            "boxes": [box.record() for box in self.boxes],
        }


def read_annotation(path: str | Path) -> Annotation:
    """Read one Pascal VOC file; its stem is the slice's SOP Instance UID.

    Raises:
        DataError: naming the file, when it is not well-formed XML, not an
            ``<annotation>``, has no ``<object>``, or a box lacks a field, has a
            field that is not a number, or ends before it starts.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DataError(f"{path}: not a readable Pascal VOC XML file ({error}); fix or remove it") from error
    if root.tag != "annotation":
        raise DataError(f"{path}: the root element is <{root.tag}>, not <annotation>; not a Pascal VOC file")
    objects = root.findall("object")
    if not objects:
        raise DataError(f"{path}: no <object> with a <bndbox>; remove the file if the slice has no lesion")
    boxes = tuple(_box(path, element) for element in objects)
    return Annotation(uid=path.stem, boxes=boxes, size=_size(path, root), path=path)


def _number(path: Path, parent: ElementTree.Element, name: str, where: str) -> int | None:
    """The whole number in ``parent/name`` (fractions rounded); None when the element is missing."""
    element = parent.find(name)
    if element is None:
        return None
    text = (element.text or "").strip()
    try:
        return round(float(text))
    except ValueError:
        raise DataError(f"{path}: <{where}><{name}> is {text!r}, not a number") from None


def _box(path: Path, element: ElementTree.Element) -> Box:
    """The :class:`Box` of one ``<object>``."""
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise DataError(f"{path}: an <object> without <bndbox>")
    values = {name: _number(path, bndbox, name, "bndbox") for name in BOX_FIELDS}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise DataError(f"{path}: <bndbox> lacks {', '.join(missing)}; it needs {', '.join(BOX_FIELDS)}")
    box = Box(name=(element.findtext("name") or "").strip(), **values)  # type: ignore[arg-type]
    if box.xmax < box.xmin or box.ymax < box.ymin:
        raise DataError(f"{path}: box {box.xmin},{box.ymin}-{box.xmax},{box.ymax} ends before it starts")
    return box


def _size(path: Path, root: ElementTree.Element) -> tuple[int, int] | None:
    """(height, width) from ``<size>``; None when absent or zero (annotation tools write 0 when unknown)."""
    size = root.find("size")
    if size is None:
        return None
    height, width = (_number(path, size, name, "size") for name in ("height", "width"))
    return (height, width) if height and width else None


# ---------------------------------------------------------------- a folder of files


@dataclass(frozen=True)
class AnnotationSet:
    """The annotation files of a data set, by slice.

    Attributes:
        folder: The folder read (recursively).
        by_uid: SOP Instance UID -> its :class:`Annotation`.
        on_bad_file: ``"error"`` or ``"skip"``: what matching does with a bad file.
        skipped: Files left out while reading (``on_bad_file="skip"``), ``{"path", "reason"}`` each.
    """

    folder: Path
    by_uid: Mapping[str, Annotation]
    on_bad_file: str = "error"
    skipped: tuple[dict[str, str], ...] = ()


def read_annotations(folder: str | Path, on_bad_file: str = "error") -> AnnotationSet:
    """Read every ``*.xml`` file under ``folder`` (hidden files and folders ignored).

    Args:
        folder: Folder of Pascal VOC files, in sub-folders or not (Lung-PET-CT-Dx: one per patient).
        on_bad_file: ``"error"`` raises at the first bad file; ``"skip"`` leaves it out and records it.

    Raises:
        DataError: ``folder`` is not a folder or holds no XML file; a bad file (policy ``"error"``).
        ParameterError: unknown ``on_bad_file``.
    """
    if on_bad_file not in folders.BAD_FILE_POLICIES:
        raise ParameterError(f"on_bad_file must be one of {folders.BAD_FILE_POLICIES}, got {on_bad_file!r}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Annotations folder {folder} does not exist; pass the folder of the Pascal VOC files.")
    paths = sorted(
        path
        for path in folder.rglob(f"*{ANNOTATION_SUFFIX}")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not paths:
        raise DataError(f"{folder}: no Pascal VOC files (*{ANNOTATION_SUFFIX}) in it or its sub-folders")
    skipped: list[dict[str, str]] = []
    by_uid: dict[str, Annotation] = {}
    for path in paths:
        try:
            annotation = read_annotation(path)
            if annotation.uid in by_uid:
                first = by_uid[annotation.uid].path
                raise DataError(f"{path}: a second file for slice {annotation.uid} (the first is {first})")
        except DataError as error:
            _bad_file(on_bad_file, skipped, path, error)
            continue
        by_uid[annotation.uid] = annotation
    return AnnotationSet(folder, by_uid, on_bad_file, tuple(skipped))


def _bad_file(on_bad_file: str, skipped: list[dict[str, str]], path: Path, error: DataError) -> None:
    """Raise ``error`` (policy ``"error"``) or record the file as skipped."""
    if on_bad_file == "error":
        raise DataError(f"{error} (or pass on_bad_file='skip' to leave bad annotation files out)") from error
    skipped.append({"path": str(path), "reason": str(error)})


# ---------------------------------------------------------------- matching slices


@dataclass
class MaskMatcher:
    """Hands out box masks by SOP Instance UID, remembering which files matched and which were bad.

    Attributes:
        annotations: The data set's annotation files (and their ``on_bad_file`` policy).
        skipped: Files left out so far (reading, then matching).
        matched: UIDs of the files a slice has asked for.
    """

    annotations: AnnotationSet
    skipped: list[dict[str, str]] = field(default_factory=list)
    matched: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.skipped = list(self.annotations.skipped)

    def slice_mask(self, uid: str | None, shape: tuple[int, int]) -> np.ndarray:
        """The box mask of the slice ``uid`` of ``shape`` (rows, columns); empty when it has no (good) file."""
        annotation = self.annotations.by_uid.get(uid) if uid else None
        if annotation is None:
            return np.zeros(shape, dtype=bool)
        self.matched.add(annotation.uid)
        try:
            return annotation.mask(shape)
        except DataError as error:
            _bad_file(self.annotations.on_bad_file, self.skipped, annotation.path, error)
            return np.zeros(shape, dtype=bool)

    def series_mask(self, folder: str | Path) -> np.ndarray:
        """The box mask (H, W, D) of a DICOM series, in :func:`common.data.dicom.load_series`'s slice order.

        Slices are matched by the SOP Instance UID of their headers, whatever the
        files are called. Only a series with an annotated slice is read in full
        (``load_series`` orders it); the others get an empty mask of their shape.
        """
        headers = _series_headers(Path(folder))
        if not any(uid in self.annotations.by_uid for uid, _ in headers.values()):
            rows, columns = next(iter(headers.values()))[1]
            return np.zeros((rows, columns, len(headers)), dtype=bool)
        _, info = dicom.load_series(folder, normalise=False)
        rows, columns, _ = info["source_shape"]
        slices = [self.slice_mask(headers[Path(path).resolve()][0], (rows, columns)) for path in info["files"]]
        return np.stack(slices, axis=-1)

    def finish(self, data_root: str | Path) -> tuple[dict[str, str], ...]:
        """Check that every file matched a slice of the data; return every file left out.

        Raises:
            DataError: a file whose UID no slice under ``data_root`` has (policy ``"error"``).
        """
        for uid, annotation in self.annotations.by_uid.items():
            if uid not in self.matched:
                error = DataError(
                    f"{annotation.path}: no slice of {data_root} has SOP Instance UID {uid}; "
                    "the annotations belong to other scans, or the slice is missing"
                )
                _bad_file(self.annotations.on_bad_file, self.skipped, annotation.path, error)
        return tuple(self.skipped)


def slice_uid(path: str | Path) -> str | None:
    """The SOP Instance UID of an image file: a DICOM file's header, any other file's stem."""
    path = Path(path)
    if path.suffix.lower() != ".dcm":
        return path.stem
    with dicom_pixels.pydicom_warnings_ignored():
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        except (InvalidDicomError, *dicom_pixels.HEADER_ERRORS) as error:
            raise DataError(f"{path}: cannot read its SOP Instance UID ({error})") from error
    uid = dataset.get("SOPInstanceUID")
    return str(uid) if uid else None


def _series_headers(folder: Path) -> dict[Path, tuple[str | None, tuple[int, int]]]:
    """Resolved path -> (SOP Instance UID, (rows, columns)) of every DICOM image file under ``folder``.

    Files that are not DICOM images (and DICOMDIR indexes, which have no rows)
    are left out here; :func:`common.data.dicom.load_series` reports them.
    """
    headers: dict[Path, tuple[str | None, tuple[int, int]]] = {}
    with dicom_pixels.pydicom_warnings_ignored():
        for parent, subfolders, names in os.walk(folder):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in (name for name in names if not name.startswith(".")):
                try:
                    dataset = pydicom.dcmread(Path(parent) / name, stop_before_pixels=True)
                except (InvalidDicomError, *dicom_pixels.HEADER_ERRORS):
                    continue
                if "Rows" in dataset and "Columns" in dataset:
                    uid = str(dataset.get("SOPInstanceUID", "")) or None
                    headers[(Path(parent) / name).resolve()] = (uid, (int(dataset.Rows), int(dataset.Columns)))
    if not headers:
        raise DataError(f"{folder}: no DICOM image files")
    return headers


# ---------------------------------------------------------------- mask files of a data set


@dataclass(frozen=True)
class BoxMasks:
    """Box masks of a data set's images or series, written as files.

    Attributes:
        paths: The mask file of every sample, in sample-table order.
        annotated: Per sample, whether its mask has a box.
        skipped: Annotation files left out (``on_bad_file="skip"``), ``{"path", "reason"}`` each.
        folder: The folder the masks were written to.
    """

    paths: tuple[str, ...]
    annotated: tuple[bool, ...]
    skipped: tuple[dict[str, str], ...]
    folder: Path

    @property
    def n_annotated(self) -> int:
        """How many samples have a box."""
        return int(sum(self.annotated))


def image_masks(samples: pd.DataFrame, root: str | Path, annotations: AnnotationSet, out_dir: str | Path) -> BoxMasks:
    """Write the box mask of every image of a 2D sample table as a PNG (white = lesion).

    An annotated image's mask goes to ``out_dir/<path below root>.png``; the
    others share ``out_dir/empty-<H>x<W>.png``. Files are replaced atomically,
    so runs writing the same folder at once read whole files.

    Args:
        samples: Sample table (``path``, ``width``, ``height``) of images under ``root``.
        root: The data folder.
        annotations: The data set's annotation files.
        out_dir: Folder the masks go to (not the data folder).

    Raises:
        DataError: a bad annotation file (policy ``"error"``), or a DICOM image whose UID cannot be read.
    """
    matcher, out_dir, paths, annotated = MaskMatcher(annotations), Path(out_dir), [], []
    for row in samples.itertuples():
        mask = matcher.slice_mask(slice_uid(row.path), (int(row.height), int(row.width)))
        target = out_dir / Path(row.path).relative_to(root).with_suffix(IMAGE_MASK_SUFFIX)
        paths.append(str(_write_mask(mask, target if mask.any() else None, out_dir, _write_png)))
        annotated.append(bool(mask.any()))
    return BoxMasks(tuple(paths), tuple(annotated), matcher.finish(root), out_dir)


def series_masks(samples: pd.DataFrame, root: str | Path, annotations: AnnotationSet, out_dir: str | Path) -> BoxMasks:
    """Write the box mask (H, W, D) of every DICOM series of a volume table as ``.npz``.

    The files are those :func:`common.data.volume_sets.read_mask` reads (key
    ``"mask"``, slices in series order): an annotated series' mask goes to
    ``out_dir/<series folder below root>.npz``, the others share
    ``out_dir/empty-<H>x<W>x<D>.npz``.

    Args:
        samples: Volume table (``path``: series folders under ``root``).
        root: The data folder.
        annotations: The data set's annotation files.
        out_dir: Folder the masks go to (not the data folder).

    Raises:
        DataError: a bad annotation file (policy ``"error"``), or a series
            :func:`common.data.dicom.load_series` refuses.
    """
    matcher, out_dir, paths, annotated = MaskMatcher(annotations), Path(out_dir), [], []
    for folder in samples["path"]:
        mask = matcher.series_mask(folder)
        target = out_dir / f"{Path(folder).relative_to(root)}{volume_sets.MASK_SUFFIX}"
        paths.append(str(_write_mask(mask, target if mask.any() else None, out_dir, _write_npz)))
        annotated.append(bool(mask.any()))
    return BoxMasks(tuple(paths), tuple(annotated), matcher.finish(root), out_dir)


def _write_mask(mask: np.ndarray, target: Path | None, out_dir: Path, write) -> Path:
    """Write ``mask`` to ``target`` (None: the shared empty mask of its shape) atomically; the path written."""
    if target is None:
        suffix = volume_sets.MASK_SUFFIX if mask.ndim == 3 else IMAGE_MASK_SUFFIX
        target = out_dir / f"{EMPTY_MASK_PREFIX}{'x'.join(str(n) for n in mask.shape)}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(mask, file)
        os.replace(staging, target)
    finally:
        Path(staging).unlink(missing_ok=True)
    return target


def _write_png(mask: np.ndarray, file) -> None:
    Image.fromarray(mask.astype(np.uint8) * MASK_WHITE).save(file, format="PNG")


def _write_npz(mask: np.ndarray, file) -> None:
    np.savez_compressed(file, **{volume_sets.MASK_KEY: mask.astype(np.uint8)})
