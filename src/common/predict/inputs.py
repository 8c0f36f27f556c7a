"""Inputs made the run's way: what the model is fed and what a person is shown.

2D images go through :func:`common.data.pipeline.image_inputs` (the same resize
and preprocessing as the run's ``tf.data`` pipeline) and DICOM series through
:func:`common.data.volume_sets.load_volumes` (the same window, resampling,
normalisation and Sobel step), as the model card records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.predict.card import RunModel


@dataclass
class LoadedInput:
    """One input made the run's way: what the model sees and what a person sees."""

    source: str
    model_input: np.ndarray  # (1, ...) exactly what the model is fed
    display: np.ndarray  # (H, W) image or (H, W, D) volume in [0, 1]


def _load_image(run_model: RunModel, path: Path) -> LoadedInput:
    from common.data import folders, pipeline

    if path.is_dir():
        raise DataError(f"{path}: is a folder; the {run_model.experiment} model takes single image files.")
    card = run_model.card
    model_input = pipeline.image_inputs([path], int(card["image_size"]), int(card["channels"]), card["preprocess"])
    from common.predict.prediction import display_image

    # Shown at display size (long side at most DISPLAY_MAX_SIDE); the CAM is resized onto it.
    return LoadedInput(str(path), model_input, display_image(folders.read_image(path) / 255.0))


def _load_volume(run_model: RunModel, path: Path) -> LoadedInput:
    import pandas as pd

    from common.data import volume_sets

    if not path.is_dir():
        raise DataError(
            f"{path}: the {run_model.experiment} model takes a DICOM series, i.e. a folder of slice files; "
            "pass the folder."
        )
    card = run_model.card
    model_input = volume_sets.load_volumes(
        pd.DataFrame({"path": [str(path)]}), card["image_size"], card["window"], bool(card["sobel"])
    )
    return LoadedInput(str(path), model_input, np.clip(model_input[0, ..., 0], 0.0, 1.0))


# Input kind -> loader that makes one input the run's way.
INPUT_LOADERS = {"image": _load_image, "volume": _load_volume}


def load_input(run_model: RunModel, path: str | Path) -> LoadedInput:
    """Read one image file (image models) or DICOM series folder (volume models).

    Args:
        run_model: The run's model and card.
        path: An image file, or a series folder for a volume model.

    Returns:
        The input as the model takes it and as it is shown.

    Raises:
        DataError: missing, empty, corrupt or non-image file, or a file where a
            series folder is expected (and the reverse). The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; check the path.")
    return INPUT_LOADERS[run_model.input_kind](run_model, path)
