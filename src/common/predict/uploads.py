"""Files uploaded to the app, predicted as if they had been passed to ``camstudy predict``.

Each upload is written to a temporary folder under its own name (the suffix
picks the reader) and loaded from there; error messages name the upload, not
the temporary copy.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common.errors import StudyError
from common.predict.card import RunModel
from common.predict.inputs import load_input
from common.predict.prediction import Prediction, check_layer, check_method, predict_loaded


def predict_uploads(
    run_model: RunModel, uploads: Sequence[tuple[str, bytes]], method: str = "gradcam", layer: str | None = None
) -> tuple[list[Prediction], list[str]]:
    """Predict uploaded files given as ``(file name, content)`` pairs.

    An image model predicts every upload on its own; a volume model reads all
    uploads together as the slices of one DICOM series. An unreadable upload
    gives an error message naming it and does not stop the others.

    Args:
        run_model: The run's model and card.
        uploads: ``(file name, content)`` of every uploaded file.
        method: One of :func:`common.predict.prediction.cam_methods`.
        layer: CAM layer; None -> the run's own.

    Returns:
        ``(predictions, errors)``.
    """
    check_method(method)
    layer = check_layer(run_model, layer)
    if not uploads:
        return [], []
    with tempfile.TemporaryDirectory(prefix="camstudy-upload-") as tmp:
        if run_model.input_kind == "volume":
            return _predict_series(run_model, uploads, Path(tmp), method, layer)
        return _predict_images(run_model, uploads, Path(tmp), method, layer)


def _predict_series(
    run_model: RunModel, uploads: Sequence[tuple[str, bytes]], folder: Path, method: str, layer: str
) -> tuple[list[Prediction], list[str]]:
    """All uploads as the slices of one DICOM series, saved to ``folder``."""
    for index, (name, content) in enumerate(uploads):
        (folder / f"{index:05d}_{Path(name).name}").write_bytes(content)
    try:
        loaded = load_input(run_model, folder)
    except StudyError as exc:
        # Name the upload, not the temporary folder it was saved to.
        return [], [str(exc).replace(f"{folder}{os.sep}", "").replace(str(folder), "the uploaded series")]
    prediction = predict_loaded(run_model, [loaded], method, layer)[0]
    prediction.source = f"series of {len(uploads)} uploaded files"
    return [prediction], []


def _predict_images(
    run_model: RunModel, uploads: Sequence[tuple[str, bytes]], folder: Path, method: str, layer: str
) -> tuple[list[Prediction], list[str]]:
    """Every upload as an image of its own, saved under ``folder``."""
    loaded_inputs, errors = [], []
    for index, (name, content) in enumerate(uploads):
        name = Path(name).name or "upload"
        # One folder per upload keeps its name (and suffix, which picks the reader) unique.
        path = folder / str(index) / name
        path.parent.mkdir()
        path.write_bytes(content)
        try:
            loaded = load_input(run_model, path)
        except StudyError as exc:
            errors.append(str(exc).replace(str(path), name))
            continue
        loaded.source = name
        loaded_inputs.append(loaded)
    return predict_loaded(run_model, loaded_inputs, method, layer), errors
