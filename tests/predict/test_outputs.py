"""Tests of common.predict.outputs: every input gets its JSON record, overlay and contour map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import predict
from common.data import folders
from common.predict import outputs
from tests.predict.helpers import CLASSES, EXPERIMENT


def test_every_input_gets_probabilities_overlay_and_contour_map(tiny_run, tmp_path):
    paths = list(tiny_run["samples"]["path"][:2])
    # The same file name twice (from two folders) must not overwrite the first one's outputs.
    twin = tmp_path / "other" / Path(paths[0]).name
    twin.parent.mkdir()
    twin.write_bytes(Path(paths[0]).read_bytes())
    records, errors = predict.predict_paths(
        tiny_run["run_model"], paths + [twin], tmp_path / "out", method="gradcam++", progress=False
    )
    assert errors == [] and len(records) == 3
    stems = [Path(r["files"]["overlay"]).name.removesuffix("_overlay.png") for r in records]
    assert len(set(stems)) == 3
    for record, stem in zip(records, stems):
        saved = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert saved["experiment"] == EXPERIMENT and saved["cam_method"] == "gradcam++"
        assert list(saved["probabilities"]) == CLASSES
        assert sum(saved["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert saved["predicted"] == max(saved["probabilities"], key=saved["probabilities"].get)
        overlay = np.asarray(Image.open(tmp_path / "out" / saved["files"]["overlay"]))
        contours = np.asarray(Image.open(tmp_path / "out" / saved["files"]["contours"]))
        original = folders.read_image(record["source"])
        assert overlay.shape == contours.shape == (*original.shape, 3)
        # The overlay is coloured by the heatmap; the contour map is the grey image plus green lines.
        assert np.abs(overlay[..., 0].astype(int) - overlay[..., 2]).max() > 30
        green = contours[..., 1] > contours[..., 0] + 100
        assert 0 < green.sum() < green.size / 2
    table = predict.probability_table(records, CLASSES)
    assert Path(paths[0]).name in table and "nodule" in table


def test_output_names_identify_their_input_across_patients_and_calls(tmp_path):
    # TCIA names series folders alike in every patient: "2.000000-5mm-40805" has the "suffix" ".000000-5mm-40805".
    series = [tmp_path / patient / "study" / "2.000000-5mm-40805" for patient in ("LUNG1-001", "LUNG1-002")]
    for folder in series:
        folder.mkdir(parents=True)
    first, second = (outputs.output_stem(folder) for folder in series)
    assert first != second
    assert first.startswith("study_2.000000-5mm-40805-") and second.startswith("study_2.000000-5mm-40805-")
    assert outputs.output_stem(series[0]) == first  # a later call into the same folder: the same name
    scan = tmp_path / "scan1.png"
    scan.write_bytes(b"")
    assert outputs.output_stem(scan).startswith("scan1-") and outputs.output_stem(scan) != outputs.output_stem(
        tmp_path / "LUNG1-001" / "scan1.png"
    )
