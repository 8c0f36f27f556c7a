"""Tests of common.predict.inputs: image files and DICOM series are read the run's way, bad ones named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import models, predict
from common.config import registry
from common.data import phantoms, pipeline
from common.experiments import fitting
from common.report.results import RunRecorder
from common.training import fit


@pytest.mark.parametrize("channels, preprocess", [(1, None), (3, "vgg16")])
def test_image_inputs_equal_the_dataset_inputs(tiny_run, channels, preprocess):
    samples = tiny_run["samples"].head(3)
    dataset = pipeline.make_dataset(samples, 20, 8, preprocess, channels=channels)
    np.testing.assert_allclose(
        pipeline.image_inputs(samples["path"], 20, channels, preprocess), fitting.model_inputs(dataset), atol=1e-5
    )


def test_jpeg_and_dicom_slices_are_read_like_png(tiny_run, tmp_path):
    png = Path(tiny_run["samples"]["path"].iloc[0])
    jpeg = tmp_path / f"{png.stem}.jpg"
    Image.open(png).save(jpeg, quality=95)
    phantoms.make_chest_volumes(tmp_path / "ct", n_per_class=1, shape=(40, 40, 4), classes=("normal",))
    dicom_slice = next((tmp_path / "ct" / "series" / "normal" / "normal_0000").iterdir())
    records, errors = predict.predict_paths(
        tiny_run["run_model"], [png, jpeg, dicom_slice], tmp_path / "out", progress=False
    )
    assert errors == [] and [Path(r["source"]).suffix for r in records] == [".png", ".jpg", ".dcm"]
    png_probabilities, jpeg_probabilities = (np.array(list(r["probabilities"].values())) for r in records[:2])
    np.testing.assert_allclose(jpeg_probabilities, png_probabilities, atol=0.05)  # JPEG is lossy
    contours = np.asarray(Image.open(tmp_path / "out" / records[2]["files"]["contours"]))
    assert contours.shape == (40, 40, 3)


def test_bad_inputs_are_reported_one_line_each_and_the_rest_predicted(tiny_run, tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    good = tiny_run["samples"]["path"].iloc[0]
    records, errors = predict.predict_paths(
        tiny_run["run_model"], [garbage, good, notes, tmp_path / "gone.png"], tmp_path / "out", progress=False
    )
    assert [r["source"] for r in records] == [good]
    assert len(errors) == 3 and all("\n" not in message for message in errors)
    assert "garbage.png: not a readable image" in errors[0]
    assert "notes.txt: unknown image suffix" in errors[1]
    assert "gone.png: not found" in errors[2]


def test_a_volume_model_reads_a_dicom_series_as_its_run_did(tmp_path):
    from common.data import volume_sets

    shape = (16, 16, 8)
    window = [-600, 1500]
    phantoms.make_chest_volumes(tmp_path / "volumes", n_per_class=1, shape=(20, 20, 10))
    series = sorted((tmp_path / "volumes" / "series" / "tumor").iterdir())[0]
    model = models.build_cnn3d((*shape, 1), 2, width=0.125)
    run = RunRecorder(registry.resolve("gradcam-3d", "smoke"), tmp_path / "results" / "gradcam-3d")
    model.save(run.output_dir / "model.keras")
    run.write_model_card(model.name, list(shape), 1, None, input_kind="volume", window=window, sobel=True)
    run_model = predict.load_run_model("gradcam-3d", results_dir=tmp_path / "results")

    records, errors = predict.predict_paths(
        run_model, [series, next(series.iterdir())], tmp_path / "out", progress=False
    )
    expected = fit.predict_proba(
        model, volume_sets.load_volumes(pd.DataFrame({"path": [str(series)]}), shape, window, sobel=True)
    )
    np.testing.assert_allclose([list(records[0]["probabilities"].values())], expected, atol=1e-6, rtol=0)
    assert 0 <= records[0]["slice_index"] < shape[2]
    assert len(errors) == 1 and "takes a DICOM series" in errors[0]

    uploads = [(path.name, path.read_bytes()) for path in series.iterdir()]
    predictions, upload_errors = predict.predict_uploads(run_model, uploads)
    assert upload_errors == [] and predictions[0].source == f"series of {len(uploads)} uploaded files"
    assert predictions[0].probabilities == pytest.approx(records[0]["probabilities"], abs=1e-6)
