"""Pascal VOC files the annotation tests write: the boxes of a phantom's lesion, one file per slice.

A phantom series (:func:`common.data.phantoms.make_chest_volumes`) has its lesion
mask ``masks/<class>/<case>.npz`` indexed by slice ``InstanceNumber - 1``; each
slice with lesion pixels gets ``<SOP Instance UID>.xml`` holding the bounding
box of those pixels, in VOC's 1-based inclusive coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

VOC_TEMPLATE = """<annotation>
  <folder>{folder}</folder>
  <filename>{uid}</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
{objects}</annotation>
"""
OBJECT_TEMPLATE = """  <object>
    <name>{name}</name>
    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
  </object>
"""


def write_voc(path: Path, boxes: list[tuple[int, int, int, int]], size: tuple[int, int], name: str = "A") -> Path:
    """Write a VOC file of ``boxes`` (xmin, ymin, xmax, ymax; 1-based) for an image of ``size`` (height, width)."""
    objects = "".join(OBJECT_TEMPLATE.format(name=name, xmin=x0, ymin=y0, xmax=x1, ymax=y1) for x0, y0, x1, y1 in boxes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        VOC_TEMPLATE.format(folder=path.parent.name, uid=path.stem, width=size[1], height=size[0], objects=objects)
    )
    return path


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax), 1-based inclusive, of a 2D mask's true pixels."""
    rows, columns = np.nonzero(mask)
    return int(columns.min()) + 1, int(rows.min()) + 1, int(columns.max()) + 1, int(rows.max()) + 1


def box_mask(mask: np.ndarray) -> np.ndarray:
    """Each slice of an (H, W, D) mask replaced by its filled bounding box (empty slices stay empty)."""
    boxes = np.zeros(mask.shape, dtype=bool)
    for k in range(mask.shape[2]):
        if mask[..., k].any():
            x0, y0, x1, y1 = bounding_box(mask[..., k])
            boxes[y0 - 1 : y1, x0 - 1 : x1, k] = True
    return boxes


def slice_headers(series: Path) -> dict[int, tuple[str, Path]]:
    """``InstanceNumber - 1`` -> (SOP Instance UID, file) of every slice of a phantom series."""
    headers = {}
    for path in sorted(series.iterdir()):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        headers[int(dataset.InstanceNumber) - 1] = (str(dataset.SOPInstanceUID), path)
    return headers


def write_series_voc(series: Path, mask: np.ndarray, out_dir: Path) -> list[Path]:
    """One VOC file per slice of ``series`` whose ``mask`` slice has lesion pixels; the files written."""
    written = []
    for index, (uid, _) in slice_headers(series).items():
        if mask[..., index].any():
            written.append(write_voc(out_dir / f"{uid}.xml", [bounding_box(mask[..., index])], mask.shape[:2]))
    return written
