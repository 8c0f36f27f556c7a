"""Predict and explain new images with a model a run saved (``camstudy predict`` and the app).

A run leaves ``results/<id>/model.keras`` and, beside it, ``model_card.json``
(:meth:`common.report.results.RunRecorder.write_model_card`), which records how the
model's inputs were made. Everything here follows that card rather than
guessing: 2D images go through :func:`common.data.pipeline.image_inputs` (the same
resize and preprocessing as the run's ``tf.data`` pipeline) and DICOM series
through :func:`common.experiments.volumes.load_volumes` (the same window, resampling,
normalisation and Sobel step), so a file predicted here gets the probabilities
the notebook's model gave it.

For each input the prediction holds the class probabilities, the CAM of the
predicted class (Grad-CAM, Grad-CAM++ or Score-CAM, :mod:`common.explain.cams`), its
overlay on the image and the contour map of its strongest region. A volume is
shown by its slice with the most CAM mass.

The command line and the Streamlit page (:mod:`common.app`) call only this
module, so both behave the same.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import DataError, ParameterError, StudyError
from common.report.results import results_root, to_jsonable, write_json_atomic

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
INPUT_KINDS = ("image", "volume")
CAM_METHODS = ("gradcam", "gradcam++", "scorecam")
# Fields every card needs, and the extra ones a volume model's card needs to rebuild its inputs.
CARD_FIELDS = ("experiment", "input_kind", "image_size", "channels", "preprocess", "classes")
VOLUME_CARD_FIELDS = ("window", "sobel")
# Score-CAM runs one forward pass per channel; the default profile's cap keeps it interactive.
SCORECAM_MAX_CHANNELS = 64
# The CAM region outlined on the contour map: where the CAM reaches half its peak (as in the runs).
CONTOUR_FRACTION = 0.5
# `camstudy app --results-dir` reaches the Streamlit script through this variable.
RESULTS_DIR_ENV = "CAMSTUDY_APP_RESULTS"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


# ---------------------------------------------------------------- the saved model and its card


@dataclass
class RunModel:
    """A run's saved model with the card that says how its inputs are made."""

    experiment: str
    card: dict
    model: Any
    model_path: Path

    @property
    def classes(self) -> list[str]:
        """Class names in the order of the model's outputs."""
        return list(self.card["classes"])

    @property
    def input_kind(self) -> str:
        """``"image"`` (one 2D slice per input) or ``"volume"`` (a DICOM series folder)."""
        return self.card["input_kind"]

    @property
    def default_layer(self) -> str:
        """The layer the run's CAMs used (the last convolutional block when the card names none)."""
        from common.explain import cams

        return self.card.get("cam_layer") or cams.last_conv_layer(self.model)

    def cam_layers(self) -> list[str]:
        """Layers a CAM can be taken at: the model's spatial feature maps, input side first."""
        rank = len(self.model.inputs[0].shape)
        names = []
        for layer in self.model.layers[1:]:
            try:
                output = layer.output
            except (AttributeError, ValueError):  # a layer used twice has no single output
                continue
            if not isinstance(output, (list, tuple)) and len(output.shape) == rank:
                names.append(layer.name)
        return names


def app_results_dir() -> Path:
    """Results folder the app lists: ``$CAMSTUDY_APP_RESULTS`` or ``results/``."""
    configured = os.environ.get(RESULTS_DIR_ENV)
    return Path(configured) if configured else results_root()


def run_dir(experiment: str, results_dir: str | Path | None = None) -> Path:
    """Folder of an experiment's results (``results/<id>``)."""
    return Path(results_dir or results_root()) / experiment


def experiments_with_models(results_dir: str | Path | None = None) -> list[str]:
    """Experiments whose results folder holds both a saved model and its card, sorted by name."""
    root = Path(results_dir or results_root())
    if not root.is_dir():
        return []
    return sorted(
        folder.name for folder in root.iterdir()
        if (folder / MODEL_FILE).is_file() and (folder / CARD_FILE).is_file()
    )


def model_stamp(experiment: str, results_dir: str | Path | None = None) -> float:
    """Modification time of a run's saved model, so a cache notices a re-run (0 when absent)."""
    path = run_dir(experiment, results_dir) / MODEL_FILE
    return path.stat().st_mtime if path.is_file() else 0.0


def read_model_card(path: str | Path) -> dict:
    """Read and check a ``model_card.json``.

    Raises:
        DataError: the file is missing or not JSON, a field the inputs depend on
            is missing, or the input kind is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no model card; it is written by the run together with model.keras. "
            "Re-run the experiment (camstudy run ID) to get one."
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable model card ({exc}); re-run the experiment.") from exc
    required = CARD_FIELDS + (VOLUME_CARD_FIELDS if card.get("input_kind") == "volume" else ())
    missing = [name for name in required if name not in card]
    if missing:
        raise DataError(
            f"{path}: the model card lacks {', '.join(missing)}, which predicting needs to rebuild the "
            "run's inputs; re-run the experiment with a notebook that records them."
        )
    if card["input_kind"] not in INPUT_KINDS:
        raise DataError(f"{path}: unknown input_kind {card['input_kind']!r}; expected one of {INPUT_KINDS}.")
    return card


def expected_input_shape(card: dict) -> tuple[int, ...]:
    """The model input shape (without the batch axis) a card describes."""
    if card["input_kind"] == "volume":
        return (*(int(side) for side in card["image_size"]), int(card["channels"]))
    size = int(card["image_size"])
    return (size, size, int(card["channels"]))


def load_run_model(experiment: str, model_path: str | Path | None = None,
                   results_dir: str | Path | None = None) -> RunModel:
    """Load a run's model in safe mode with its card, and check they belong together.

    Args:
        experiment: Experiment id (``results/<id>``).
        model_path: A ``.keras`` file to use instead of ``results/<id>/model.keras``;
            its card is the ``model_card.json`` beside it, else the experiment's.
        results_dir: Folder holding the experiments' result folders.

    Raises:
        DataError: missing model or card, a card of another experiment, or a
            model whose input or output shape differs from the card's.
    """
    from common.models import saving

    default_dir = run_dir(experiment, results_dir)
    model_path = Path(model_path) if model_path else default_dir / MODEL_FILE
    if not model_path.is_file():
        raise DataError(
            f"{model_path}: no saved model; run the experiment first (camstudy run {experiment}) "
            "or pass --model PATH."
        )
    card_path = model_path.parent / CARD_FILE
    card = read_model_card(card_path if card_path.is_file() else default_dir / CARD_FILE)
    if card["experiment"] != experiment:
        raise DataError(
            f"{model_path}: its model card is of experiment {card['experiment']!r}, not {experiment!r}; "
            f"pass --experiment {card['experiment']}."
        )
    model = saving.load_model_safe(model_path)
    input_shape = tuple(model.inputs[0].shape[1:])
    if input_shape != expected_input_shape(card):
        raise DataError(
            f"{model_path}: the model takes inputs of shape {input_shape} but its card describes "
            f"{expected_input_shape(card)}; the card belongs to another model. Re-run the experiment."
        )
    n_outputs = int(model.outputs[0].shape[-1])
    if n_outputs != len(card["classes"]):
        raise DataError(
            f"{model_path}: the model has {n_outputs} outputs but its card names {len(card['classes'])} "
            "classes; re-run the experiment."
        )
    return RunModel(experiment=experiment, card=card, model=model, model_path=model_path)


def model_banner(card: dict) -> str:
    """The notice shown above every prediction: research use, and what the model learned from.

    A phantom-trained model says so, since its outputs say nothing about real scans.
    """
    if card.get("data_source") == "phantoms":
        trained_on = (
            "synthetic phantom images generated by this project, not patient scans; its outputs "
            "say nothing about real images"
        )
    else:
        trained_on = f"real data ({card.get('data_dir') or 'folder not recorded'})"
    return (
        "Research use only: not a medical device, not for diagnosis. "
        f"Model {card.get('model', '?')} of experiment {card['experiment']}, profile "
        f"{card.get('profile', '?')}, trained on {trained_on}."
    )


# ---------------------------------------------------------------- inputs


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
    # Shown at the file's own resolution; the CAM is resized onto it.
    return LoadedInput(str(path), model_input, folders.read_image(path) / 255.0)


def _load_volume(run_model: RunModel, path: Path) -> LoadedInput:
    import pandas as pd

    from common.experiments import volumes

    if not path.is_dir():
        raise DataError(
            f"{path}: the {run_model.experiment} model takes a DICOM series, i.e. a folder of slice files; "
            "pass the folder."
        )
    card = run_model.card
    model_input = volumes.load_volumes(pd.DataFrame({"path": [str(path)]}), card["image_size"], card["window"],
                                       bool(card["sobel"]))
    return LoadedInput(str(path), model_input, np.clip(model_input[0, ..., 0], 0.0, 1.0))


# Input kind -> loader that makes one input the run's way.
INPUT_LOADERS = {"image": _load_image, "volume": _load_volume}


def load_input(run_model: RunModel, path: str | Path) -> LoadedInput:
    """Read one image file (image models) or DICOM series folder (volume models).

    Raises:
        DataError: missing, empty, corrupt or non-image file, or a file where a
            series folder is expected (and the reverse). The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; check the path.")
    return INPUT_LOADERS[run_model.input_kind](run_model, path)


# ---------------------------------------------------------------- predictions


@dataclass
class Prediction:
    """The probabilities and explanation of one input."""

    source: str
    probabilities: dict[str, float]
    predicted: str
    method: str
    layer: str
    image: np.ndarray  # shown image (H, W) in [0, 1]; a volume's chosen slice
    cam: np.ndarray  # CAM of the predicted class, (H, W) at the model input size
    overlay: np.ndarray  # RGB uint8
    contours: np.ndarray  # RGB uint8
    slice_index: int | None = None
    files: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict:
        """The JSON record of this prediction."""
        record = {
            "source": self.source,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "cam_method": self.method,
            "cam_layer": self.layer,
        }
        if self.slice_index is not None:
            record["slice_index"] = self.slice_index
        if self.files:
            record["files"] = self.files
        return record


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`CAM_METHODS`.

    Raises:
        ParameterError: unknown method.
    """
    if method not in CAM_METHODS:
        raise ParameterError(f"Unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}.")
    return method


def _check_layer(run_model: RunModel, layer: str | None) -> str:
    layer = layer or run_model.default_layer
    if layer not in run_model.cam_layers():
        raise ParameterError(
            f"Layer {layer!r} is not a spatial feature map of {run_model.model.name}; "
            f"choose one of {', '.join(run_model.cam_layers()[-5:])} (last five shown)."
        )
    return layer


def predict_loaded(run_model: RunModel, inputs: Sequence[LoadedInput], method: str = "gradcam",
                   layer: str | None = None) -> list[Prediction]:
    """Predict a batch of loaded inputs and explain each by the CAM of its predicted class.

    Args:
        run_model: The run's model and card.
        inputs: Inputs from :func:`load_input`.
        method: One of :data:`CAM_METHODS`.
        layer: CAM layer; None -> the run's own (:attr:`RunModel.default_layer`).

    Returns:
        One :class:`Prediction` per input, in order.
    """
    from common.explain import cams
    from common.training import fit

    check_method(method)
    layer = _check_layer(run_model, layer)
    if not inputs:
        return []
    batch = np.concatenate([loaded.model_input for loaded in inputs], axis=0)
    probabilities = fit.predict_proba(run_model.model, batch)
    predicted = probabilities.argmax(axis=1)
    maps = cams.compute_cam(
        run_model.model, batch, predicted, method=method, layer=layer,
        max_channels=SCORECAM_MAX_CHANNELS if method == "scorecam" else None,
    )
    classes = run_model.classes
    predictions = []
    for loaded, probs, index, cam in zip(inputs, probabilities, predicted, maps):
        image, slice_index = loaded.display, None
        if cam.ndim == 3:
            # A volume is shown by the slice where its CAM is strongest.
            slice_index = int(cam.sum(axis=(0, 1)).argmax())
            image, cam = image[..., slice_index], cam[..., slice_index]
        predictions.append(Prediction(
            source=loaded.source,
            probabilities={name: float(p) for name, p in zip(classes, probs)},
            predicted=classes[int(index)],
            method=method,
            layer=layer,
            image=image,
            cam=cam,
            overlay=cams.overlay(image, cam),
            contours=cams.draw_contours(image, cam, CONTOUR_FRACTION),
            slice_index=slice_index,
        ))
    return predictions


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 or [0, 1] greyscale image as PNG bytes."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _unique_stem(source: str, used: set[str]) -> str:
    """A file stem for an input's outputs, numbered when two inputs share a name."""
    base = Path(source).stem or "input"
    stem, number = base, 2
    while stem in used:
        stem, number = f"{base}_{number}", number + 1
    used.add(stem)
    return stem


def write_prediction(prediction: Prediction, out_dir: str | Path, stem: str, run_model: RunModel) -> Path:
    """Write ``<stem>.json`` (probabilities), ``<stem>_overlay.png`` and ``<stem>_contours.png``.

    Returns:
        The JSON file's path; the PNG names are recorded in it under ``files``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("overlay", "contours"):
        name = f"{stem}_{kind}.png"
        (out_dir / name).write_bytes(png_bytes(getattr(prediction, kind)))
        prediction.files[kind] = name
    record = {"experiment": run_model.experiment, "model_file": str(run_model.model_path),
              **prediction.record()}
    return write_json_atomic(out_dir / f"{stem}.json", record)


def predict_paths(run_model: RunModel, paths: Iterable[str | Path], out_dir: str | Path,
                  method: str = "gradcam", layer: str | None = None, batch_size: int = 16,
                  progress: bool = True) -> tuple[list[dict], list[str]]:
    """Predict many files (or series folders), writing each one's outputs as soon as its batch is done.

    A bad input is reported and skipped; the others are still predicted.

    Args:
        run_model: The run's model and card.
        paths: Image files (image models) or DICOM series folders (volume models).
        out_dir: Folder for the per-input JSON and PNG files.
        method: One of :data:`CAM_METHODS`.
        layer: CAM layer; None -> the run's own.
        batch_size: Inputs predicted and explained together.
        progress: Show a tqdm progress bar (on stderr).

    Returns:
        ``(records, errors)``: the JSON record of every predicted input and a
        one-line message per input that could not be read.
    """
    from tqdm.auto import tqdm

    check_method(method)
    layer = _check_layer(run_model, layer)
    paths = list(paths)
    records: list[dict] = []
    errors: list[str] = []
    used_stems: set[str] = set()
    pending: list[LoadedInput] = []

    def flush() -> None:
        for prediction in predict_loaded(run_model, pending, method, layer):
            write_prediction(prediction, out_dir, _unique_stem(prediction.source, used_stems), run_model)
            records.append(to_jsonable(prediction.record()))
        pending.clear()

    with tqdm(total=len(paths), desc="predict", unit="input", disable=not progress, file=sys.stderr) as bar:
        for path in paths:
            try:
                pending.append(load_input(run_model, path))
            except StudyError as exc:
                errors.append(str(exc))
            if len(pending) >= batch_size:
                flush()
            bar.update(1)
        flush()
    return records, errors


def probability_table(records: Sequence[dict], classes: Sequence[str]) -> str:
    """A plain-text table: one row per input with its predicted class and every probability."""
    import pandas as pd

    if not records:
        return "(no predictions)"
    table = pd.DataFrame(
        [{"input": Path(r["source"]).name, "predicted": r["predicted"],
          **{name: f"{r['probabilities'][name]:.4f}" for name in classes}} for r in records]
    )
    return table.to_string(index=False)


# ---------------------------------------------------------------- uploads (the app)


def predict_uploads(run_model: RunModel, uploads: Sequence[tuple[str, bytes]], method: str = "gradcam",
                    layer: str | None = None) -> tuple[list[Prediction], list[str]]:
    """Predict uploaded files given as ``(file name, content)`` pairs.

    An image model predicts every upload on its own; a volume model reads all
    uploads together as the slices of one DICOM series. An unreadable upload
    gives an error message naming it and does not stop the others.

    Returns:
        ``(predictions, errors)``.
    """
    check_method(method)
    layer = _check_layer(run_model, layer)
    if not uploads:
        return [], []
    with tempfile.TemporaryDirectory(prefix="camstudy-upload-") as tmp:
        folder = Path(tmp)
        if run_model.input_kind == "volume":
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


# ---------------------------------------------------------------- starting the app


def app_script() -> Path:
    """Path of the Streamlit script."""
    return Path(__file__).with_name("app.py")


def streamlit_command(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The command that serves the app headless (no browser opened, no usage statistics)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.headless", "true",
        "--server.address", address,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # no "Deploy" button on a research page
    ]
