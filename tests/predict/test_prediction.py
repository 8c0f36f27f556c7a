"""Tests of common.predict.prediction: the probabilities are the notebook's, the CAM methods the explain ones."""

from __future__ import annotations

import numpy as np
import pytest

from common import cli, predict
from common.config import registry
from common.data import pipeline
from common.experiments import fitting, loading
from common.training import fit
from tests.predict.helpers import CLASSES, EXPERIMENT, IMAGE_SIZE, PREPROCESS


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


def test_cam_methods_are_the_explain_methods_but_the_baseline_and_the_cli_offers_only_them(capsys):
    from common.explain.methods import METHODS

    assert predict.cam_methods() == tuple(name for name in METHODS if name != "random")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "x.png", "--experiment", EXPERIMENT, "--method", "random"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'random'" in capsys.readouterr().err  # a random map explains nothing
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "x.png", "--experiment", EXPERIMENT, "--method", "lime"])
    assert exit_info.value.code == 2
    choices = ", ".join(repr(name) for name in predict.cam_methods())
    assert f"invalid choice: 'lime' (choose from {choices})" in capsys.readouterr().err
    assert predict.app_script().is_file() and predict.app_script().name == "app.py"


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


def test_a_large_image_is_shown_at_display_size_with_its_aspect_kept(tiny_run, tmp_path):
    from PIL import Image

    from common.predict import prediction

    # 3000 x 2000 px, dark with a bright block in its top-left quarter.
    pixels = np.full((2000, 3000), 40, dtype=np.uint8)
    pixels[200:800, 300:1200] = 230
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    records, errors = predict.predict_paths(tiny_run["run_model"], [tmp_path / "wide.png"], tmp_path / "out")
    assert errors == []
    side = prediction.DISPLAY_MAX_SIDE
    shown = (round(2000 * side / 3000), side)
    for kind in ("overlay", "contours"):
        image = np.asarray(Image.open(tmp_path / "out" / records[0]["files"][kind]))
        assert image.shape == (*shown, 3)
    # The shrunk image is the file's: the block is bright, the rest dark (scaled by side / 3000; green contours aside).
    contours = np.asarray(Image.open(tmp_path / "out" / records[0]["files"]["contours"])).astype(int)
    block = contours[
        round(300 * side / 3000) : round(700 * side / 3000), round(400 * side / 3000) : round(1100 * side / 3000)
    ]
    assert np.median(block) > 200 and np.median(contours[shown[0] // 2 :, shown[1] // 2 :]) < 60
    tall = np.zeros((3000, 2000), dtype=np.float32)
    assert prediction.display_image(tall).shape == (side, round(2000 * side / 3000))
    small = np.zeros((side, 10), dtype=np.float32)
    assert prediction.display_image(small) is small
