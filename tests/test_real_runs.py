"""Which experiments run on a real data set named on the command line, and when a real run is kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common import real_runs, run_key
from common.config import registry
from common.errors import DataError, ParameterError
from common.report.results import write_json_atomic


def test_every_manifest_an_experiment_names_maps_to_that_experiment():
    mapping = real_runs.manifests_with_experiments()
    assert mapping["iqothnccd"] == ("resnet50-gradcam", "iqoth")
    assert mapping["ct_pneumonia_lung_pet_ct_dx"] == ("nine-models",)
    assert mapping["lung_pet_ct_dx"] == ("gradcam-3d",)
    named = {registry.experiment(e)["real_data"]["manifest"] for e in registry.experiment_ids()}
    assert set(mapping) == named


def test_parse_resolves_the_folder_and_names_the_experiments(tmp_path: Path):
    data_set = real_runs.parse(f"iqothnccd={tmp_path}")
    assert data_set == real_runs.RealDataSet("iqothnccd", tmp_path, ("resnet50-gradcam", "iqoth"))


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("iqothnccd", ParameterError, "--real expects NAME=DIR"),
        ("=/tmp", ParameterError, "--real expects NAME=DIR"),
        ("nosuch=/tmp", ParameterError, "no experiment runs on 'nosuch'; choose one of ct_pneumonia_lung_pet_ct_dx"),
        ("iqothnccd=/no/such/folder", DataError, "data folder /no/such/folder does not exist"),
    ],
)
def test_parse_refuses_what_it_cannot_run(spec: str, error: type, message: str):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        real_runs.parse(spec)


def _write_run(results: Path, experiment_id: str, data_dir: Path, profile: str) -> None:
    """A finished run on ``data_dir`` as the notebook leaves it: metrics.json and its run key."""
    run_dir = real_runs.real_results_dir(results) / experiment_id
    run_dir.mkdir(parents=True)
    params = registry.resolve(experiment_id, profile, None, str(data_dir.resolve()))
    write_json_atomic(run_dir / "metrics.json", {"profile": profile, "parameters": params.as_dict()})
    run_key.write(run_key.of_this_run(params), run_dir)


def test_a_run_is_kept_only_for_the_same_folder_profile_and_files(tmp_path: Path):
    data = tmp_path / "copy"
    (data / "Normal cases").mkdir(parents=True)
    (data / "Normal cases" / "a.jpg").write_bytes(b"one")
    results = tmp_path / "results"
    said: list[str] = []

    def pending(folder: Path, profile: str = "default") -> list[str]:
        return run_key.pending(["iqoth"], real_runs.real_results_dir(results), profile, folder, say=said.append)

    assert pending(data) == ["iqoth"] and said[-1] == "iqoth: runs (no finished run)"
    _write_run(results, "iqoth", data, "default")
    assert pending(data) == [] and said[-1].startswith("iqoth: reused, nothing it depends on changed (run key ")
    assert pending(data, "smoke") == ["iqoth"] and "profile default, not smoke" in said[-1]
    other = tmp_path / "other"
    other.mkdir()
    assert pending(other) == ["iqoth"] and "parameter data_dir" in said[-1]
    (data / "Normal cases" / "b.jpg").write_bytes(b"two")  # the copy changed: a file added
    assert pending(data) == ["iqoth"] and "data data_dir changed" in said[-1]
    (real_runs.real_results_dir(results) / "iqoth" / "metrics.json").write_text("{truncated")
    assert pending(data) == ["iqoth"] and said[-1] == "iqoth: runs (no finished run)"  # unreadable: run again


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch=.", "camstudy: error: --real: no experiment runs on 'nosuch'; choose one of"),
        ("iqothnccd=/no/such/folder", "camstudy: error: --real iqothnccd: data folder /no/such/folder does not exist."),
    ],
)
def test_camstudy_book_refuses_a_bad_real_data_set_before_running_anything(tmp_path: Path, spec: str, message: str):
    done = subprocess.run(
        [sys.executable, "-m", "common", "book", "--real", spec],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(message), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
