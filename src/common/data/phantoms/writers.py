"""File formats of the phantom data sets: 8-bit PNG pairs and DICOM CT series.

The writers know nothing of phantom kinds: they store one rendered
:class:`~common.data.phantoms.scenes.Phantom` in the layout described in
:mod:`common.data.phantoms`. All output is reproducible byte for byte: PNGs
carry no time stamp, DICOM files have fixed dates and UIDs derived from the
case, and DICOM file names derive from the SOP instance UID.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from common.data.phantoms.geometry import Grid
from common.data.phantoms.scenes import Phantom

MM_PER_UNIT = 175.0  # phantom unit in mm: a 350 mm field of view
HU_INTERCEPT = -1024.0  # DICOM RescaleIntercept of the stored volumes


def save_png(path: Path, values: np.ndarray) -> None:
    """Write a uint8 greyscale array as PNG, creating the parent folders.

    Args:
        path: File to write.
        values: (H, W) uint8 pixels.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pillow writes no time stamp into PNGs, so equal pixels give equal bytes.
    Image.fromarray(values).save(path, format="PNG")


def write_png_case(out_dir: Path, class_name: str, index: int, phantom: Phantom) -> None:
    """Write one 2D phantom as ``images/<class>/<class>_<i:04d>.png`` and its 0/255 mask under ``masks/``.

    Args:
        out_dir: Data set folder.
        class_name: Class folder name.
        index: Image index within the class.
        phantom: Rendered phantom, image in display intensities [0, 1].
    """
    name = f"{class_name}_{index:04d}.png"
    save_png(out_dir / "images" / class_name / name, np.rint(phantom.image * 255).astype(np.uint8))
    save_png(out_dir / "masks" / class_name / name, phantom.mask.astype(np.uint8) * 255)


def _format_ds(value: float) -> str:
    """A decimal string short enough for the DICOM DS value representation."""
    return f"{value:.6g}"


def ct_slice(
    stored: np.ndarray, grid: Grid, slice_index: int, patient_id: str, uids: dict[str, str], sop_uid: str
) -> pydicom.Dataset:
    """One CT Image Storage data set with fixed dates, so files are reproducible.

    No header names the class: the shortcut audit of version 1 found the class in the
    patient ID, patient name and series description (their lengths alone told the
    files apart by size), which is a shortcut for any reader of headers.

    Args:
        stored: (H, W) stored pixel values (HU minus :data:`HU_INTERCEPT`), uint16.
        grid: Grid of the whole volume.
        slice_index: Depth index of the slice; InstanceNumber is ``slice_index + 1``.
        patient_id: The case's anonymous patient ID (:func:`anonymous_id`), the same length for every case.
        uids: The case's ``study``, ``series`` and ``frame`` (of reference) UIDs.
        sop_uid: SOP instance UID of the slice.

    Returns:
        The data set, file meta included.
    """
    rows, columns = stored.shape
    pixel_mm = grid.spacing[0] * MM_PER_UNIT
    slice_mm = grid.spacing[2] * MM_PER_UNIT
    origin_mm = grid.origin * MM_PER_UNIT
    z_mm = origin_mm[2] + slice_index * slice_mm

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality = "CT"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Manufacturer = "camstudy phantom"
    ds.PatientID = patient_id
    ds.PatientName = f"Phantom^{patient_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientPosition = "HFS"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.SeriesDescription = "phantom chest CT"
    ds.InstanceNumber = slice_index + 1
    # Row direction +x, column direction +y; pixel (0, 0) centre at the origin.
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_format_ds(origin_mm[1]), _format_ds(origin_mm[0]), _format_ds(z_mm)]
    ds.SliceLocation = _format_ds(z_mm)
    ds.PixelSpacing = [_format_ds(pixel_mm), _format_ds(pixel_mm)]
    ds.SliceThickness = _format_ds(slice_mm)
    ds.SpacingBetweenSlices = _format_ds(slice_mm)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _format_ds(HU_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def anonymous_id(entropy: list[str]) -> str:
    """A case's patient ID that says nothing of its class: ``PH`` and 10 hex digits of a hash of ``entropy``."""
    return "PH" + hashlib.sha256("|".join(entropy).encode()).hexdigest()[:10].upper()


def write_ct_case(
    out_dir: Path, class_name: str, case_id: str, phantom: Phantom, grid: Grid, entropy: list[str]
) -> None:
    """Write one volume as a DICOM series under ``series/`` and its mask as ``masks/<class>/<case_id>.npz``.

    Args:
        out_dir: Data set folder.
        class_name: Class folder name.
        case_id: Case folder name (the class folder above it names the class; the headers do not).
        phantom: Rendered volume, image in HU within the storable range.
        grid: Grid of the volume.
        entropy: Strings the case's UIDs derive from (unique per case and data set).
    """
    stored = np.clip(np.rint(phantom.image - HU_INTERCEPT), 0, 4095).astype(np.uint16)
    uids = {part: generate_uid(entropy_srcs=entropy + [part]) for part in ("study", "series", "frame")}
    series_dir = out_dir / "series" / class_name / case_id
    series_dir.mkdir(parents=True, exist_ok=True)
    for slice_index in range(grid.shape[2]):
        sop_uid = generate_uid(entropy_srcs=entropy + ["slice", str(slice_index)])
        dataset = ct_slice(stored[:, :, slice_index], grid, slice_index, anonymous_id(entropy), uids, sop_uid)
        # Names derive from the SOP UID: reproducible, unrelated to slice order.
        name = hashlib.sha256(sop_uid.encode()).hexdigest()[:16] + ".dcm"
        pydicom.dcmwrite(series_dir / name, dataset, enforce_file_format=True)
    mask_path = out_dir / "masks" / class_name / f"{case_id}.npz"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(mask_path, mask=phantom.mask.astype(np.uint8))
