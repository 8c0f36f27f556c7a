"""Tests of common.predict.outputs: every input gets its JSON record, overlay and contour map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import predict
from common.data import folders
from common.predict import outputs, volume_views
from tests.data.test_dicom import write_series
from tests.predict.helpers import CLASSES, EXPERIMENT, VOLUME_EXPERIMENT, VOLUME_SHAPE, save_tiny_volume_run


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory) -> dict:
    """A tiny 3D CNN saved as a gradcam-3d run, and a five-slice DICOM series."""
    root = tmp_path_factory.mktemp("volume_run")
    results_dir = save_tiny_volume_run(root)
    return {
        "run_model": predict.load_run_model(VOLUME_EXPERIMENT, results_dir=results_dir),
        "series": write_series(root / "patient" / "series"),
    }


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
        # An image gets no volume views and no slice numbers.
        assert set(saved["files"]) == {"overlay", "contours"}
        assert "slice_index" not in saved and "cam_max_slice" not in saved
        assert sorted(p.name for p in (tmp_path / "out").glob(f"{stem}*")) == sorted(
            [f"{stem}.json", *saved["files"].values()]
        )
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


def test_a_series_also_gets_a_readable_montage_and_projections_marking_the_cam_maximum(volume_run, tmp_path):
    from common.explain import cams

    run_model = volume_run["run_model"]
    records, errors = predict.predict_paths(run_model, [volume_run["series"]], tmp_path, progress=False)
    assert errors == [] and len(records) == 1
    stem = outputs.output_stem(volume_run["series"])
    saved = json.loads((tmp_path / f"{stem}.json").read_text())
    assert saved["files"] == {kind: f"{stem}_{kind}.png" for kind in ("overlay", "contours", "montage", "mip")}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{stem}.json", *saved["files"].values()])
    # The recorded slices are the CAM's: the most CAM mass (the overlay's slice) and the CAM maximum.
    loaded = predict.load_input(run_model, volume_run["series"])
    predicted = run_model.classes.index(saved["predicted"])
    cam = cams.compute_cam(run_model.model, loaded.model_input, predicted, layer=run_model.default_layer)[0]
    assert cam.shape == VOLUME_SHAPE and cam.max() > 0
    assert saved["slice_index"] == int(cam.sum(axis=(0, 1)).argmax())
    assert saved["cam_max_slice"] == int(np.unravel_index(cam.argmax(), cam.shape)[2])
    montage = np.asarray(Image.open(tmp_path / saved["files"]["montage"]))
    mip = np.asarray(Image.open(tmp_path / saved["files"]["mip"]))
    assert montage.shape[1] >= volume_views.READABLE_WIDTH and mip.shape[1] >= volume_views.READABLE_WIDTH
    assert (
        np.all(montage == volume_views.MAX_COLOUR, axis=-1).any()
        and np.all(mip == volume_views.MAX_COLOUR, axis=-1).any()
    )
    # The overlay and contour map stay one slice at the model's input size.
    overlay = np.asarray(Image.open(tmp_path / saved["files"]["overlay"]))
    assert overlay.shape == (*VOLUME_SHAPE[:2], 3)
