"""Run keys: a finished run is reused exactly when nothing it depended on changed, and the reason is named."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from common import run_key
from common.config import registry
from common.report.results import project_root, write_json_atomic

EXPERIMENT = "multi-organ"


def _finished_run(run_dir: Path, profile: str = "smoke", overrides: dict | None = None) -> run_key.RunKey:
    """A finished run as a notebook leaves it: metrics.json and the key of this process."""
    params = registry.resolve(EXPERIMENT, profile, overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "metrics.json", {"profile": profile, "parameters": params.as_dict()})
    key = run_key.of_this_run(params)
    run_key.write(key, run_dir)
    return key


def test_the_key_records_the_modules_registry_parts_and_packages_of_the_run(tmp_path: Path):
    key = _finished_run(tmp_path / "run")
    assert "common/run_key.py" in key.code and "common/config/registry.py" in key.code
    assert all(len(digest) == 64 for digest in key.code.values())
    assert f"experiments.{EXPERIMENT}" in key.registry
    assert key.packages["tensorflow"] == "2.21.0" and "python" in key.packages
    assert key.data == {}  # phantoms: the recorded code and parameters make them
    assert key.parameters["profile"] == "smoke" and key.parameters["experiment"] == EXPERIMENT
    recorded = json.loads((tmp_path / "run" / run_key.KEY_FILE).read_text())
    assert recorded["key"] == key.digest and run_key.read(tmp_path / "run") == key
    assert key.short == key.digest[: run_key.SHORT]


def test_an_unchanged_run_is_reused_and_other_arguments_are_not(tmp_path: Path):
    run_dir = tmp_path / "run"
    _finished_run(run_dir, overrides={"epochs": 2})
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke", None, {"epochs": 2}) is None
    smoke_epochs = registry.resolve(EXPERIMENT, "smoke").epochs
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == f"parameter epochs 2 -> {smoke_epochs}"
    reason = run_key.stale_reason(run_dir, EXPERIMENT, "default", None, {"epochs": 2})
    assert reason is not None and reason.startswith("profile smoke, not default")


def test_a_changed_module_reruns_and_is_named(tmp_path: Path, monkeypatch):
    package = tmp_path / "src"
    shutil.copytree(run_key.package_root() / "common" / "evaluation", package / "common" / "evaluation")
    monkeypatch.setattr(run_key, "package_root", lambda: package)
    run_dir = tmp_path / "run"
    params = registry.resolve(EXPERIMENT, "smoke")
    write_json_atomic(run_dir / "metrics.json", {"profile": "smoke"})
    key = run_key.RunKey(
        experiment=EXPERIMENT,
        notebook=run_key.notebook_digest(EXPERIMENT),
        parameters=json.loads(json.dumps(params.as_dict())),
        code={"common/evaluation/paired.py": run_key.file_digest(package / "common/evaluation/paired.py")},
        packages=run_key.pinned_packages(),
    )
    run_key.write(key, run_dir)
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") is None
    with (package / "common/evaluation/paired.py").open("a") as handle:
        handle.write("\n# edited\n")
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == "module common/evaluation/paired.py changed"
    (package / "common/evaluation/paired.py").unlink()
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == "module common/evaluation/paired.py removed"


def test_only_the_registry_parts_the_run_read_count(tmp_path: Path, monkeypatch):
    # A run's kernel starts with nothing read; this test process has read other tests' parts.
    monkeypatch.setattr(registry, "_READ", set())
    run_dir = tmp_path / "run"
    _finished_run(run_dir)
    entries = [part for part in registry.parts_read() if part.startswith("experiments.")]
    assert entries == [f"experiments.{EXPERIMENT}"]
    original = registry._load()
    edited = copy.deepcopy(original)
    other = next(e for e in edited["experiments"] if e != EXPERIMENT)
    edited["experiments"][other]["parameters"]["epochs"] = 99  # another experiment's entry
    monkeypatch.setattr(registry, "_load", lambda: edited)
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") is None
    edited["experiments"][EXPERIMENT]["paper_claims"] = {"changed": True}  # its own entry, not a parameter
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == f"registry experiments.{EXPERIMENT} changed"


def test_a_changed_notebook_and_a_changed_package_rerun(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    _finished_run(run_dir)
    home = tmp_path / "home"
    notebook = registry.experiment(EXPERIMENT)["notebook"]
    (home / notebook).parent.mkdir(parents=True)
    shutil.copy(project_root() / notebook, home / notebook)
    monkeypatch.setenv("CAMSTUDY_HOME", str(home))
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") is None
    (home / notebook).write_text((home / notebook).read_text().replace("Grad-CAM", "Grad CAM", 1))
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == "notebook changed"
    monkeypatch.delenv("CAMSTUDY_HOME")
    newer = dict(run_key.pinned_packages(), tensorflow="2.22.0")
    monkeypatch.setattr(run_key, "pinned_packages", lambda: newer)
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == "tensorflow 2.21.0 -> 2.22.0"


def test_a_run_without_a_key_or_without_metrics_runs_again(tmp_path: Path):
    run_dir = tmp_path / "run"
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke") == "no finished run"
    _finished_run(run_dir)
    (run_dir / run_key.KEY_FILE).unlink()
    assert run_key.stale_reason(run_dir, EXPERIMENT, "smoke").startswith("the run recorded no key")
    (run_dir / run_key.KEY_FILE).write_text("{not json")
    assert run_key.read(run_dir) is None


def test_pending_says_why_each_runs_and_force_runs_all(tmp_path: Path):
    _finished_run(tmp_path / EXPERIMENT)
    said: list[str] = []
    assert run_key.pending([EXPERIMENT, "iqoth"], tmp_path, "smoke", say=said.append) == ["iqoth"]
    assert said[0].startswith(f"{EXPERIMENT}: reused, nothing it depends on changed (run key ")
    assert said[1] == "iqoth: runs (no finished run)"
    assert run_key.pending([EXPERIMENT], tmp_path, "smoke", force=True, say=said.append) == [EXPERIMENT]
    assert said[-1] == f"{EXPERIMENT}: runs (--force)"


def test_many_changes_are_cut_to_the_first_few(tmp_path: Path):
    run_dir = tmp_path / "run"
    _finished_run(run_dir, overrides={"epochs": 2, "batch_size": 4, "learning_rate": 0.01, "seed": 7})
    reason = run_key.stale_reason(run_dir, EXPERIMENT, "smoke")
    assert reason is not None and reason.endswith("; and 1 more") and reason.count("parameter ") == 3


@pytest.mark.parametrize("changed", ["size", "removed"])
def test_the_listing_digest_sees_a_changed_or_removed_file(tmp_path: Path, changed: str):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"12")
    (tmp_path / ".hidden").write_text("ignored")
    before = run_key.folder_listing_digest(tmp_path)
    (tmp_path / ".hidden").write_text("still ignored, whatever it holds")
    assert run_key.folder_listing_digest(tmp_path) == before
    if changed == "size":
        (tmp_path / "a" / "x.jpg").write_bytes(b"123")
    else:
        (tmp_path / "a" / "x.jpg").unlink()
    assert run_key.folder_listing_digest(tmp_path) != before
    assert run_key.folder_listing_digest(tmp_path / "nothing") == "absent"
