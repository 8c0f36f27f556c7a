"""camstudy predict serves the model every smoke run saved, with that run's model card."""

import json

import pytest

from common import predict


@pytest.mark.parametrize(
    "experiment_id",
    [
        pytest.param(experiment_id, marks=pytest.mark.notebook(experiment_id))
        for experiment_id in ("multi-organ", "gradcam-3d")
    ],
)
def test_predict_loads_the_runs_model_and_explains_one_input(smoke_results, experiment_id, tmp_path):
    record = smoke_results(experiment_id)
    card = json.loads((record["dir"] / "model_card.json").read_text())
    assert card["profile"] == "smoke" and card["classes"] == record["metrics"]["parameters"]["classes"]
    run_model = predict.load_run_model(experiment_id, results_dir=smoke_results.root)
    source = record["metrics"]["data"]["source"]
    assert "phantoms" in source
    if card["input_kind"] == "volume":
        from common.config.registry import resolve
        from common.data import dicom
        from common.experiments import loading

        folder = loading.phantom_folder(resolve(experiment_id, "smoke"))
        inputs = dicom.find_series(folder / "series")[:1]
    else:
        from common.config.registry import resolve
        from common.experiments import loading

        loaded = loading.load_samples(resolve(experiment_id, "smoke"))
        inputs = loaded.samples["path"].head(2).tolist()
    records, errors = predict.predict_paths(run_model, inputs, tmp_path, progress=False)
    assert not errors and len(records) == len(inputs)
    for item in records:
        assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(list(tmp_path.glob("*_overlay.png"))) == len(inputs)
    assert len(list(tmp_path.glob("*_contours.png"))) == len(inputs)
