"""Tests of common.predict and ``camstudy predict`` on a tiny model trained on phantoms in the fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import cli, models, predict
from common.config import registry
from common.data import folders, phantoms, pipeline, splits
from common.errors import DataError, ParameterError
from common.experiments import fitting, loading
from common.report.results import RunRecorder
from common.training import fit, runtime

# A real experiment id (its registry classes go into the model card); the run lives in a temporary folder.
EXPERIMENT = "resnet50-gradcam"
CLASSES = ["no_nodule", "nodule"]
# Chest phantom folders -> the experiment's classes.
FOLDERS = {"normal": "no_nodule", "malignant": "nodule"}
IMAGE_SIZE = 32  # the phantoms are 48 px, so the resize is exercised
PREPROCESS = "resnet50"  # a named preprocess_input (channel flip and mean subtraction), not plain scaling


def save_tiny_run(root: Path) -> dict:
    """Train a tiny CNN for one epoch on 20 chest phantoms and save it as a run would.

    Returns:
        ``results_dir``, ``model`` and the split ``samples`` of the run.
    """
    phantoms.make_chest_slices(root / "phantoms", n_per_class=10, size=48, classes=tuple(FOLDERS))
    samples, _ = folders.load_class_folders(root / "phantoms" / "images", FOLDERS)
    samples = splits.split_samples(samples, fractions=(0.6, 0.2, 0.2), seed=0)
    runtime.set_seed(0)
    model = models.build_plain_cnn((IMAGE_SIZE, IMAGE_SIZE, 3), len(CLASSES), filters=(4, 8))
    fit.compile_model(model, 1e-3)
    training = pipeline.make_dataset(samples[samples.split == "train"], IMAGE_SIZE, 8, PREPROCESS, training=True)
    model.fit(training, epochs=1, verbose=0)
    run = RunRecorder(registry.resolve(EXPERIMENT, "smoke"), root / "results" / EXPERIMENT)
    model.save(run.output_dir / "model.keras")
    run.write_model_card(model.name, IMAGE_SIZE, 3, PREPROCESS)
    return {"results_dir": root / "results", "model": model, "samples": samples}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    record = save_tiny_run(tmp_path_factory.mktemp("tiny_run"))
    record["run_model"] = predict.load_run_model(EXPERIMENT, results_dir=record["results_dir"])
    return record


def test_probabilities_equal_the_notebook_path(tiny_run, tmp_path):
    test = tiny_run["samples"][tiny_run["samples"].split == "test"].reset_index(drop=True)
    dataset = pipeline.make_dataset(test, IMAGE_SIZE, 8, PREPROCESS, channels=3)
    notebook_inputs = fitting.model_inputs(dataset)
    notebook_probabilities = fit.predict_proba(tiny_run["model"], dataset)

    np.testing.assert_allclose(
        pipeline.image_inputs(test["path"], IMAGE_SIZE, 3, PREPROCESS), notebook_inputs, atol=1e-5
    )
    records, errors = predict.predict_paths(tiny_run["run_model"], test["path"], tmp_path, progress=False)
    assert errors == []
    predicted = np.array([[r["probabilities"][name] for name in CLASSES] for r in records])
    np.testing.assert_allclose(predicted, notebook_probabilities, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels, preprocess", [(1, None), (3, "vgg16")])
def test_image_inputs_equal_the_dataset_inputs(tiny_run, channels, preprocess):
    samples = tiny_run["samples"].head(3)
    dataset = pipeline.make_dataset(samples, 20, 8, preprocess, channels=channels)
    np.testing.assert_allclose(
        pipeline.image_inputs(samples["path"], 20, channels, preprocess), fitting.model_inputs(dataset), atol=1e-5
    )


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


def test_predict_and_app_have_help(capsys):
    for command in ("predict", "app"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
    assert "--experiment ID" in capsys.readouterr().out


def test_cam_methods_are_the_explain_methods_and_the_cli_offers_only_them(capsys):
    from common.explain.methods import METHODS

    assert predict.CAM_METHODS == predict.cam_methods() == tuple(METHODS)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "x.png", "--experiment", EXPERIMENT, "--method", "lime"])
    assert exit_info.value.code == 2
    choices = ", ".join(repr(name) for name in METHODS)
    assert f"invalid choice: 'lime' (choose from {choices})" in capsys.readouterr().err
    assert predict.app_script().is_file() and predict.app_script().name == "app.py"


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


def test_cli_prints_the_table_and_exits_2_on_a_bad_file(tiny_run, tmp_path, capsys):
    good = tiny_run["samples"]["path"].iloc[0]
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    argv = [
        "predict",
        good,
        "--experiment",
        EXPERIMENT,
        "--results-dir",
        str(tiny_run["results_dir"]),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        "--method",
        "scorecam",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Research use only" in out and "phantom" in out and Path(good).name in out
    assert (tmp_path / "out" / f"{Path(good).stem}_contours.png").is_file()

    assert cli.main(argv[:1] + [str(garbage)] + argv[1:]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg: not a readable image" in err and "Traceback" not in err


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert cli.main(["predict", str(image), "--experiment", "iqoth", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.keras: no saved model" in err and "camstudy run iqoth" in err


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


def test_uploads_name_the_bad_file_not_the_temporary_copy(tiny_run):
    good = Path(tiny_run["samples"]["path"].iloc[0])
    predictions, errors = predict.predict_uploads(
        tiny_run["run_model"],
        [(good.name, good.read_bytes()), ("scan.png", b"\x89PNG\r\n\x1a\n broken")],
    )
    assert [p.source for p in predictions] == [good.name]
    assert errors and errors[0].startswith("scan.png: not a readable image") and "camstudy-upload" not in errors[0]
    prediction = predictions[0]
    assert prediction.overlay.dtype == np.uint8 and prediction.overlay.shape[-1] == 3
    assert prediction.cam.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert predict.png_bytes(prediction.image).startswith(b"\x89PNG")


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


@pytest.mark.notebook("resnet50-gradcam")
def test_probabilities_equal_the_saved_model_on_a_smoke_run_test_split(smoke_results, tmp_path):
    experiment = "resnet50-gradcam"
    run_dir = smoke_results(experiment)["dir"]
    run_model = predict.load_run_model(experiment, results_dir=run_dir.parent)
    assert run_model.card["preprocess"] == "resnet50" and run_model.card["data_source"] == "phantoms"
    params = registry.resolve(experiment, "smoke")
    samples = loading.split(params, loading.load_samples(params).samples)
    test = samples[samples.split == "test"].head(6)
    dataset = fitting.datasets(params, test, run_model.card["preprocess"])["test"]
    expected = run_model.model.predict(fitting.model_inputs(dataset), verbose=0)
    records, errors = predict.predict_paths(run_model, test["path"], tmp_path, progress=False)
    assert errors == []
    predicted = np.array([list(r["probabilities"].values()) for r in records])
    np.testing.assert_allclose(predicted, expected, atol=1e-6, rtol=0)
