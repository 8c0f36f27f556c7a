"""Shared fixtures: the real IQ-OTH/NCCD copy (skipped when absent) and tiny class-folder sets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The shared development copy sits next to the repository, never inside it.
IQOTH_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/iqothnccd"


@pytest.fixture(scope="session")
def iqoth_dir() -> Path:
    """Root of the real IQ-OTH/NCCD copy; skips the test when it is not there."""
    if not IQOTH_DIR.is_dir():
        pytest.skip(f"real IQ-OTH/NCCD copy not found at {IQOTH_DIR}")
    return IQOTH_DIR


def write_class_folders(
    root: Path,
    counts: Mapping[str, int],
    size: tuple[int, int] = (24, 20),
    suffix: str = ".png",
    seed: int = 0,
    with_masks: bool = False,
) -> Path:
    """Write a tiny class-folder set of distinct random 8-bit greyscale images.

    Args:
        root: Folder to create; images go to ``root/images/<class>/<class>_<i>.<suffix>``.
        counts: Images per class folder.
        size: ``(width, height)`` of every image.
        suffix: File suffix, which also picks the format.
        seed: Seed of the pixel values.
        with_masks: Also write ``root/masks/<class>/<same stem>.png`` (a square lesion).

    Returns:
        ``root/images``, the folder to load.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    for class_name, count in counts.items():
        (root / "images" / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
            stem = f"{class_name}_{index:03d}"
            Image.fromarray(pixels).save(root / "images" / class_name / f"{stem}{suffix}")
            if with_masks:
                (root / "masks" / class_name).mkdir(parents=True, exist_ok=True)
                mask = np.zeros((height, width), dtype=np.uint8)
                mask[height // 4 : height // 2, width // 4 : width // 2] = 255
                Image.fromarray(mask).save(root / "masks" / class_name / f"{stem}.png")
    return root / "images"


@pytest.fixture
def make_class_folders(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing tiny class-folder sets under ``tmp_path`` (see :func:`write_class_folders`)."""

    def make(counts: Mapping[str, int], name: str = "set", **options) -> Path:
        return write_class_folders(tmp_path / name, counts, **options)

    return make
