"""Image fingerprints of the leakage audit (:mod:`common.data.audit`).

Each image is decoded once and fingerprinted four ways: an exact hash of its
pixels, a hash of it at a fixed size, a DCT perceptual hash and a small
mean-centred thumbnail whose cosine similarity finds near duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import scipy.fft
from tqdm.auto import tqdm

from common.data import folders

# Side of the thumbnail whose cosine similarity defines near duplicates.
DESCRIPTOR_SIZE = 32
# Side of the rescaled image whose hash finds copies stored at another size.
NORMALISED_SIZE = 64
# DCT hash: the image at PHASH_IMAGE_SIZE squared, its PHASH_FREQUENCIES squared lowest frequencies.
PHASH_IMAGE_SIZE = 32
PHASH_FREQUENCIES = 8
PHASH_BITS = PHASH_FREQUENCIES**2
DESCRIPTOR_NAME = (
    f"pixel descriptor: {DESCRIPTOR_SIZE}x{DESCRIPTOR_SIZE} area-resized greyscale, "
    "mean-centred, L2-normalised (cosine = Pearson correlation of thumbnails)"
)


def _area_resize(image: np.ndarray, side: int) -> np.ndarray:
    """Area-average resize to ``side`` x ``side`` (float32)."""
    return cv2.resize(image.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)


def exact_hash(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape (identical pixels, any file format)."""
    pixels = np.ascontiguousarray(image, dtype=np.float32)
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def normalised_hash(image: np.ndarray) -> str:
    """SHA-256 of the image resized to :data:`NORMALISED_SIZE` squared and rounded to 8 bits."""
    small = np.rint(_area_resize(image, NORMALISED_SIZE)).clip(0, 255).astype(np.uint8)
    return hashlib.sha256(small.tobytes()).hexdigest()


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """64-bit DCT hash: low-frequency DCT coefficients above their median.

    Returns:
        Boolean array of :data:`PHASH_BITS` bits.
    """
    spectrum = scipy.fft.dctn(_area_resize(image, PHASH_IMAGE_SIZE).astype(np.float64), norm="ortho")
    low = spectrum[:PHASH_FREQUENCIES, :PHASH_FREQUENCIES].ravel()
    return low > np.median(low)


def pixel_descriptor(image: np.ndarray) -> np.ndarray:
    """Mean-centred, L2-normalised :data:`DESCRIPTOR_SIZE`-squared thumbnail (all zeros for a flat image)."""
    thumbnail = _area_resize(image, DESCRIPTOR_SIZE).ravel().astype(np.float64)
    thumbnail -= thumbnail.mean()
    norm = np.linalg.norm(thumbnail)
    return (thumbnail / norm if norm > 0 else thumbnail).astype(np.float32)


def fingerprints(paths: Sequence[str], progress: bool) -> dict[str, Any]:
    """Decode every image once and compute its four fingerprints."""
    exact, normalised, hashes, descriptors = [], [], [], []
    for path in tqdm(paths, desc="audit: reading images", unit="img", disable=not progress):
        image = folders.read_image(path)
        exact.append(exact_hash(image))
        normalised.append(normalised_hash(image))
        hashes.append(perceptual_hash(image))
        descriptors.append(pixel_descriptor(image))
    return {
        "exact": exact,
        "normalised": normalised,
        "phash": np.array(hashes, dtype=bool).reshape(len(paths), PHASH_BITS),
        "descriptor": np.array(descriptors, dtype=np.float32).reshape(len(paths), DESCRIPTOR_SIZE**2),
    }
