"""Tests of common.report.results: metrics.json shape, atomic writes, JSON-safe values."""

import json
import os
import stat

import numpy as np
import pytest

from common.config import registry
from common.errors import DataError, StudyWarning
from common.report.results import (
    METRICS_KEYS,
    RunRecorder,
    append_run_log,
    read_metrics,
    read_run_log,
    run_banner,
    to_jsonable,
    write_json_atomic,
)


def test_numpy_values_and_nan_become_plain_json():
    converted = to_jsonable(
        {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), "d": (np.int64(2),), "e": np.float64("nan")}
    )
    assert converted == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [2], "e": None}
    json.dumps(converted, allow_nan=False)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "metrics.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_atomic_write_gets_the_umask_mode_and_a_failure_leaves_the_old_file(tmp_path):
    path = write_json_atomic(tmp_path / "bench.json", {"a": 1})
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # group-readable under the usual 022
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_recorder_writes_every_fixed_key_and_its_figures(tmp_path):
    params = registry.resolve("iqoth", "smoke")
    run = RunRecorder(params, tmp_path)
    run.figure_path("confusion_matrix").write_bytes(b"png")
    path = run.write_metrics(models={"m": {}}, data={"source": "phantoms"}, paper={}, extra_key=3)
    record = json.loads(path.read_text())
    assert set(METRICS_KEYS) <= set(record)
    assert record["experiment"] == "iqoth" and record["profile"] == "smoke" and record["seed"] == params.seed
    assert record["figures"] == ["confusion_matrix.png"] and record["extra_key"] == 3
    assert record["peak_memory_mb"] > 0 and record["versions"]["python"].startswith("3.")
    banner = run_banner(record)
    assert "profile `smoke`" in banner and "phantoms" in banner
    assert banner.startswith("**What ran:** the `smoke` profile on the phantom set `phantoms`")
    assert "not comparable with the paper (phantoms:" in banner


def test_model_card_records_the_preprocessing_a_predictor_needs(tmp_path):
    run = RunRecorder(registry.resolve("resnet50-gradcam", "smoke"), tmp_path)
    card = json.loads(run.write_model_card("ResNet50", 32, 3, "resnet50", "conv5_block3_out").read_text())
    assert card["classes"] == ["no_nodule", "nodule"] and card["preprocess"] == "resnet50"
    assert card["image_size"] == 32 and card["channels"] == 3 and card["profile"] == "smoke"
    assert card["data_source"] == "phantoms"


def test_read_metrics_names_a_truncated_record_and_what_to_do(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"experiment": "iqoth", "models": {')
    with pytest.raises(DataError, match=r"metrics\.json: cannot read this run record .*run the experiment again"):
        read_metrics(path)
    path.write_text('{"experiment": "iqoth"}')
    assert read_metrics(path) == {"experiment": "iqoth"}


def test_read_run_log_keeps_the_readable_records_and_warns_of_the_others(tmp_path):
    for seconds in (10, 20):
        append_run_log({"experiment": "iqoth", "seconds": seconds}, tmp_path)
    with open(tmp_path / "run_log.jsonl", "a", encoding="utf-8") as handle:
        handle.write('"a string"\n{"experiment": "iqoth", "sec')  # a record that is not an object; a cut-off line
    with pytest.warns(StudyWarning, match=r"run_log\.jsonl: left out unreadable line\(s\) \[3, 4\]"):
        records = read_run_log(tmp_path)
    assert [record["seconds"] for record in records] == [10, 20]
