"""Class lists and file readers shared by the phantom tests."""

from pathlib import Path

import numpy as np
from PIL import Image

CHEST_CLASSES = ("normal", "benign", "malignant", "pneumonia")
MULTI_ORGAN_CLASSES = (
    "brain_tumor",
    "brain_no_tumor",
    "breast_tumor",
    "breast_no_tumor",
    "kidney_tumor",
    "kidney_no_tumor",
    "lung_tumor",
    "lung_no_tumor",
)
LESION_FREE = {"normal", "brain_no_tumor", "breast_no_tumor", "kidney_no_tumor", "lung_no_tumor"}
VOLUME_SHAPE = (32, 32, 8)


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its content."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def read_png(path: Path) -> np.ndarray:
    """An 8-bit greyscale PNG as an array (asserts the mode)."""
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)
