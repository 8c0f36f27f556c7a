"""A tiny real-looking two-class folder for the nine-models tests that train."""

from pathlib import Path

import numpy as np
from PIL import Image


def write_mixed_folder(root: Path, n_per_class: int) -> Path:
    """cancer/ and pneumonia/ with PNG, JPEG and JPG, RGB and greyscale, of different sizes."""
    rng = np.random.default_rng(0)
    formats = [
        (".png", "L", (40, 36)),
        (".jpeg", "RGB", (52, 60)),
        (".JPG", "RGB", (33, 33)),
        (".png", "RGB", (64, 48)),
    ]
    for class_name in ("cancer", "pneumonia"):
        (root / class_name).mkdir(parents=True)
        for index in range(n_per_class):
            suffix, mode, size = formats[index % len(formats)]
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / class_name / f"scan_{index}{suffix}")
    return root
