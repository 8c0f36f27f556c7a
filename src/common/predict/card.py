"""A run's saved model and the card that says how its inputs were made.

A run leaves ``results/<id>/model.keras`` and, beside it, ``model_card.json``
(:meth:`common.report.results.RunRecorder.write_model_card`). :func:`load_run_model`
reads both, checks they belong together and returns a :class:`RunModel`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import DataError
from common.report.results import results_root

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
INPUT_KINDS = ("image", "volume")
# Fields every card needs, and the extra ones a volume model's card needs to rebuild its inputs.
CARD_FIELDS = ("experiment", "input_kind", "image_size", "channels", "preprocess", "classes")
VOLUME_CARD_FIELDS = ("window", "sobel")


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
        from common.explain import layers

        return self.card.get("cam_layer") or layers.last_conv_layer(self.model)

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


def run_dir(experiment: str, results_dir: str | Path | None = None) -> Path:
    """Folder of an experiment's results (``results/<id>``)."""
    return Path(results_dir or results_root()) / experiment


def experiments_with_models(results_dir: str | Path | None = None) -> list[str]:
    """Experiments whose results folder holds both a saved model and its card, sorted by name."""
    root = Path(results_dir or results_root())
    if not root.is_dir():
        return []
    return sorted(
        folder.name for folder in root.iterdir() if (folder / MODEL_FILE).is_file() and (folder / CARD_FILE).is_file()
    )


def model_stamp(experiment: str, results_dir: str | Path | None = None) -> float:
    """Modification time of a run's saved model, so a cache notices a re-run (0 when absent)."""
    path = run_dir(experiment, results_dir) / MODEL_FILE
    return path.stat().st_mtime if path.is_file() else 0.0


def read_model_card(path: str | Path) -> dict:
    """Read and check a ``model_card.json``.

    Args:
        path: The card file.

    Returns:
        The card's fields.

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


def load_run_model(
    experiment: str, model_path: str | Path | None = None, results_dir: str | Path | None = None
) -> RunModel:
    """Load a run's model in safe mode with its card, and check they belong together.

    Args:
        experiment: Experiment id (``results/<id>``).
        model_path: A ``.keras`` file to use instead of ``results/<id>/model.keras``;
            its card is the ``model_card.json`` beside it, else the experiment's.
        results_dir: Folder holding the experiments' result folders.

    Returns:
        The model with its card.

    Raises:
        DataError: missing model or card, a card of another experiment, or a
            model whose input or output shape differs from the card's.
    """
    from common.models import saving

    default_dir = run_dir(experiment, results_dir)
    model_path = Path(model_path) if model_path else default_dir / MODEL_FILE
    if not model_path.is_file():
        raise DataError(
            f"{model_path}: no saved model; run the experiment first (camstudy run {experiment}) or pass --model PATH."
        )
    card_path = model_path.parent / CARD_FILE
    card = read_model_card(card_path if card_path.is_file() else default_dir / CARD_FILE)
    if card["experiment"] != experiment:
        raise DataError(
            f"{model_path}: its model card is of experiment {card['experiment']!r}, not {experiment!r}; "
            f"pass --experiment {card['experiment']}."
        )
    model = saving.load_model_safe(model_path)
    _check_model_matches_card(model, card, model_path)
    return RunModel(experiment=experiment, card=card, model=model, model_path=model_path)


def _check_model_matches_card(model, card: dict, model_path: Path) -> None:
    """Raise :class:`DataError` when the model's input or output shape is not the card's."""
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


def model_banner(card: dict) -> str:
    """The notice shown above every prediction: research use, and what the model learned from.

    A phantom-trained model says so, since its outputs say nothing about real scans.

    Args:
        card: A model card (:func:`read_model_card`).

    Returns:
        One line of text.
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
