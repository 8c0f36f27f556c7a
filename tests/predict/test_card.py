"""Tests of common.predict.card: a saved model's card is checked against the model and the registry."""

from __future__ import annotations

import json

import pytest

from common import predict
from common.errors import DataError, ParameterError
from tests.predict.helpers import EXPERIMENT


def test_card_problems_are_named(tiny_run, tmp_path):
    card = json.loads((tiny_run["results_dir"] / EXPERIMENT / "model_card.json").read_text())
    folder = tmp_path / EXPERIMENT
    folder.mkdir()
    (folder / "model.keras").write_bytes((tiny_run["results_dir"] / EXPERIMENT / "model.keras").read_bytes())

    def load_with(**changes):
        (folder / "model_card.json").write_text(json.dumps({**card, **changes}))
        return predict.load_run_model(EXPERIMENT, results_dir=tmp_path)

    with pytest.raises(DataError, match="describes \\(40, 40, 3\\)"):
        load_with(image_size=40)
    with pytest.raises(DataError, match="names 3 classes"):
        load_with(classes=["a", "b", "c"])
    with pytest.raises(DataError, match="of experiment 'iqoth'"):
        load_with(experiment="iqoth")
    with pytest.raises(DataError, match="lacks window, sobel"):
        load_with(input_kind="volume")
    (folder / "model_card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "preprocess"}))
    with pytest.raises(DataError, match="lacks preprocess"):
        predict.load_run_model(EXPERIMENT, results_dir=tmp_path)
    run_model = load_with()
    with pytest.raises(ParameterError, match="Unknown CAM method"):
        predict.predict_paths(run_model, [], tmp_path, method="lime")
    with pytest.raises(ParameterError, match="not a spatial feature map"):
        predict.predict_paths(run_model, [], tmp_path, layer="predictions")
