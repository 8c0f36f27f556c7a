"""Decoding a DICOM file's pixel data, with errors that tell a missing decoder from a damaged file.

pydicom decodes uncompressed, deflated and RLE pixel data itself; every other
compressed transfer syntax needs a third-party decoder (the ``dicom_decoders``
section of ``registry.yaml`` names them). A file whose decoder is missing is
not damaged, so its error names the transfer syntax and the packages to
install, while a file whose pixel data cannot be decoded says it is damaged.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import BytesLengthException
from pydicom.pixels import apply_rescale
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from common.config import registry
from common.errors import DataError

# What pydicom raises for a damaged header, when it reads the file or (values are converted
# when first used) a tag: OSError, EOFError and struct.error (cut short), ValueError (a
# value that does not parse), NotImplementedError (an unknown value representation),
# BytesLengthException (a value whose length does not fit its representation).
HEADER_ERRORS = (OSError, EOFError, struct.error, ValueError, NotImplementedError, BytesLengthException)
# What pydicom raises for pixel data it cannot decode: AttributeError (no pixel data or a tag
# the decoder needs), ValueError and TypeError (missing, damaged or inconsistent tags, too
# little data), RuntimeError (every decoder failed; NotImplementedError: an unsupported
# combination of tags), KeyError (a tag value no decoder knows), and a damaged header's errors.
PIXEL_ERRORS = (AttributeError, TypeError, RuntimeError, KeyError, *HEADER_ERRORS)


@contextmanager
def pydicom_warnings_ignored() -> Iterator[None]:
    """Keep pydicom's warnings about values it repairs or passes over from the user.

    pydicom warns when it reads an invalid value (e.g. 'abc' as a number), removes
    padding after the pixel data or ignores frames beyond NumberOfFrames. The tags
    the study reads are checked where they are read, and a bad one is a DataError
    naming the file and the tag, so these warnings would only be noise a user cannot act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        yield


def stored_pixels(path: Path, dataset: pydicom.Dataset) -> np.ndarray:
    """The stored pixel values of ``dataset`` (read from ``path``), decoded by pydicom.

    Raises:
        DataError: The transfer syntax is not one, or needs a decoder that is
            not installed or does not exist in pydicom (the message names the
            syntax and, when there are any, the packages that decode it), or
            the pixel data is missing, truncated or damaged.
    """
    syntax = transfer_syntax(path, dataset)
    check_decoder(path, syntax)
    try:
        return dataset.pixel_array
    except PIXEL_ERRORS as error:
        raise DataError(
            f"{path}: cannot read the pixel data ({syntax.name}, transfer syntax {syntax}): {error}; "
            "the file is truncated or damaged: download or export it again, or remove it"
        ) from error


def transfer_syntax(path: Path, dataset: pydicom.Dataset) -> UID:
    """The file's TransferSyntaxUID, or a DataError when it is missing or not a transfer syntax."""
    value = dataset.file_meta.get("TransferSyntaxUID")
    syntax = UID(str(value or ""))
    if not syntax.is_transfer_syntax:
        raise DataError(
            f"{path}: the file meta information's TransferSyntaxUID {value!r} is not a DICOM transfer syntax; "
            "the header is damaged: export the file again or remove it"
        )
    return syntax


def check_decoder(path: Path, syntax: UID) -> None:
    """DataError naming the syntax and the packages that decode it, when none of them is installed."""
    if not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as error:
        raise DataError(
            f"{path}: the pixel data is compressed as {syntax.name} (transfer syntax {syntax}), which pydicom "
            "cannot decode; convert the file to an uncompressed transfer syntax first"
        ) from error
    if decoder.is_available:
        return
    installs = " or ".join(f"'pip install {' '.join(group)}'" for group in registry.section("dicom_decoders")[syntax])
    raise DataError(
        f"{path}: the pixel data is compressed as {syntax.name} (transfer syntax {syntax}) and no decoder for it "
        f"is installed; install one ({installs}) or convert the file to an uncompressed transfer syntax"
    )


def rescaled(path: Path, stored: np.ndarray, dataset: pydicom.Dataset) -> np.ndarray:
    """Stored values mapped by the modality LUT, as float32: RescaleSlope * value + RescaleIntercept for CT.

    The slope and intercept are read here (1 and 0 when absent or empty), since a damaged file
    may hold them as text that pydicom does not convert; ``common.data.dicom`` has checked that
    they are numbers. A Modality LUT Sequence, which replaces them, is applied by pydicom.

    Raises:
        DataError: The lookup table does not fit the pixel data, or some values are NaN,
            infinite or beyond float32 after the rescale.
    """
    if "ModalityLUTSequence" in dataset:
        try:
            values = np.asarray(apply_rescale(stored, dataset), dtype=np.float64)
        except PIXEL_ERRORS as error:
            raise DataError(f"{path}: cannot apply the Modality LUT Sequence ({error}); the file is damaged") from error
    else:
        slope, intercept = _number(dataset, "RescaleSlope", 1.0), _number(dataset, "RescaleIntercept", 0.0)
        values = stored.astype(np.float64) * slope + intercept
    if not np.all(np.abs(values) <= np.finfo(np.float32).max):  # False for NaN as well
        raise DataError(
            f"{path}: the pixel values, rescaled by RescaleSlope {dataset.get('RescaleSlope')} and RescaleIntercept "
            f"{dataset.get('RescaleIntercept')}, are NaN, infinite or beyond float32; the file is damaged: "
            "export it again or remove it"
        )
    return values.astype(np.float32)


def _number(dataset: pydicom.Dataset, tag: str, default: float) -> float:
    value = dataset.get(tag)
    return default if value is None or value == "" else float(value)
