"""``camstudy audit`` in a subprocess, as a user runs it: audit.json gets a ``shortcut`` section."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import write_class_folders

N_PER_CLASS = 12  # above the registry's min_subgroup_size of 10


def _camstudy(*argv: str, cwd) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CAMSTUDY_HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, "-m", "common", *argv], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def test_audit_writes_the_shortcut_section_and_warns(tmp_path):
    write_class_folders(tmp_path, {"normal": N_PER_CLASS}, size=(24, 20), seed=1)
    images = write_class_folders(tmp_path, {"tumour": N_PER_CLASS}, size=(32, 20), seed=2)
    done = _camstudy("audit", str(images), "--out", "out", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shortcut = json.loads((tmp_path / "out" / "audit.json").read_text())["shortcut"]
    for classifier in ("random_forest", "logistic_regression"):
        for part in ("metadata", "intensity"):
            estimate = shortcut[part][classifier]["balanced_accuracy"]
            low, high = estimate["ci95"]
            assert low <= estimate["value"] <= high and estimate["unit"] == "groups", (part, classifier)
        assert shortcut["metadata"][classifier]["balanced_accuracy"]["value"] == 1.0
    assert {(group["value"], group["label"]) for group in shortcut["subgroups"]} == {
        ("24x20", "normal"),
        ("32x20", "tumour"),
    }
    assert shortcut["flagged"] is True
    assert f"WARNING: Pure subgroup: {N_PER_CLASS} images at 32 x 20: 100% tumour" in done.stdout


def test_no_shortcuts_leaves_the_section_out(tmp_path):
    images = write_class_folders(tmp_path, {"a": 3, "b": 3})
    done = _camstudy("audit", str(images), "--out", "out", "--no-progress", "--no-shortcuts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "shortcut" not in json.loads((tmp_path / "out" / "audit.json").read_text())
    assert "shortcut audit" not in done.stdout
