"""``camstudy run --annotations``: a 3D run on DICOM series laid out as real data, scored against VOC boxes.

The smoke phantoms' series are copied as a real data set would sit
(``<class>/<case>/*.dcm``), their lesions written as Pascal VOC boxes (one file
per slice, named by its SOP Instance UID), and gradcam-3d runs on them through
the real command, as a user would run it on Lung-PET-CT-Dx.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import registry
from common.data import volume_sets
from common.experiments import loading
from tests.data.voc_files import write_series_voc

EXPERIMENT = "gradcam-3d"
# The boxes score the 3D CNN's heatmaps; the 2D slice baselines (half the smoke run's time) are left out.
THE_3D_CNN_ONLY = ("-p", "slice_models=[]")


def camstudy(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``camstudy ARGV`` in a process of its own (the project's interpreter), its output captured."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "common", *argv], capture_output=True, text=True, cwd=cwd, env=environment
    )


def assert_one_line_refusal(done: subprocess.CompletedProcess, *parts: str) -> None:
    """Exit status 2 and one line on stderr holding every part, no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(part in lines[0] for part in parts), lines[0]


@pytest.fixture
def real_layout(tmp_path) -> tuple[Path, Path, int]:
    """The smoke phantom series as a real data set under ``tmp_path/data``, their boxes under ``tmp_path/voc``.

    Returns:
        ``(data folder, VOC folder, VOC files written)``.
    """
    phantoms = loading.phantom_folder(registry.resolve(EXPERIMENT, "smoke"))
    data = tmp_path / "data"
    shutil.copytree(phantoms / "series", data)
    written = 0
    for series in sorted(data.glob("tumor/*")):
        lesion = volume_sets.read_mask(phantoms / "masks" / "tumor" / f"{series.name}.npz")
        written += len(write_series_voc(series, lesion, tmp_path / "voc" / series.name))
    return data, tmp_path / "voc", written


@pytest.mark.late
def test_a_smoke_run_scores_heatmaps_against_the_boxes(real_layout, tmp_path):
    data, voc, written = real_layout
    assert written > 0
    # Relative folders, as a user types them: the page must not show the machine's paths.
    try:
        done = camstudy(
            "run", EXPERIMENT, "--profile", "smoke", "--data-dir", "data", "--annotations", "voc",
            "--results-dir", "results", "--no-progress", *THE_3D_CNN_ONLY, cwd=tmp_path,
        )  # fmt: skip
    finally:  # the box masks went to the project's data/annotation_masks/, named after these temporary folders
        params = registry.resolve(EXPERIMENT, "smoke", {"annotations": str(voc)}, data)
        shutil.rmtree(loading.box_mask_folder(params), ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "results" / EXPERIMENT
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["parameters"]["annotations"] == str(voc)
    assert metrics["parameters"]["data_dir"] == str(data)
    assert metrics["data"]["skipped_files"] == []
    scores = metrics["explanations"]["CNN3D"]
    params = registry.resolve(EXPERIMENT, "smoke")
    assert set(scores) == set(params.cam_methods)
    for entries in scores.values():
        pointing = entries["pointing_game"]
        # Every tumour series has boxes, and smoke scores every tumour series: n_explain of them.
        assert pointing["n"] == params.n_explain and 0 <= pointing["value"] <= 1
    # The parameters cell shows the folders as typed, not where they sit on this machine.
    cells = json.loads((run / f"{EXPERIMENT}.ipynb").read_text())["cells"]
    shown = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    assert "{'slice_models': [], 'annotations': 'voc'}" in shown and str(tmp_path) not in shown, shown


def test_a_missing_annotations_folder_is_one_line(tmp_path):
    done = camstudy(
        "run", EXPERIMENT, "--profile", "smoke", "--data-dir", str(tmp_path), "--annotations", str(tmp_path / "no-voc")
    )  # fmt: skip
    assert_one_line_refusal(done, "Annotations folder", str(tmp_path / "no-voc"), "does not exist")


def test_annotations_without_a_data_folder_are_one_line(tmp_path):
    done = camstudy("run", EXPERIMENT, "--profile", "smoke", "--annotations", str(tmp_path))
    assert_one_line_refusal(done, "annotations=", "pass --data-dir too")


@pytest.mark.late
def test_a_malformed_annotation_file_fails_the_run_naming_the_file(real_layout, tmp_path):
    data, voc, _ = real_layout
    bad = next(voc.rglob("*.xml"))
    bad.write_text("<annotation><object><bndbox><xmin>3</xmin>")  # cut off mid-file
    try:
        done = camstudy(
            "run", EXPERIMENT, "--profile", "smoke", "--data-dir", "data", "--annotations", "voc",
            "--results-dir", "results", "--no-progress", *THE_3D_CNN_ONLY, cwd=tmp_path,
        )  # fmt: skip
    finally:
        params = registry.resolve(EXPERIMENT, "smoke", {"annotations": str(voc)}, data)
        shutil.rmtree(loading.box_mask_folder(params), ignore_errors=True)
    assert done.returncode == 1, done.stderr[-3000:]
    failure = [line for line in done.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failure) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"{bad.name}: not a readable Pascal VOC XML file" in failure[0], failure[0]
    assert not (tmp_path / "results" / EXPERIMENT / "metrics.json").exists()  # nothing half-written
