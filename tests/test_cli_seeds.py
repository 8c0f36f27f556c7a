"""``camstudy run ID --seeds``: bad values end in one line and status 2, and a real two-seed sweep of the smoke run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import registry

ROOT = Path(__file__).resolve().parents[1]
# The installed command, as a user runs it (the test session's interpreter's venv, else the project's).
CAMSTUDY = Path(sys.executable).with_name("camstudy")
if not CAMSTUDY.exists():
    CAMSTUDY = ROOT / ".venv" / "bin" / "camstudy"
EXPERIMENT = "multi-organ"


def camstudy(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [str(CAMSTUDY), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((EXPERIMENT, "--seeds", "1"), "--seeds 1: a spread needs at least 2 seeds."),
        (
            ("all", "--seeds", "3"),
            "--seeds runs one experiment over several seeds; name the experiment instead of 'all'.",
        ),
        ((EXPERIMENT, "--seeds", "42,42"), "--seeds 42,42: seed 42 is given twice; each seed runs once."),
        ((EXPERIMENT, "--seeds", "2", "-p", "seed=7"), "--seeds sets each run's seed"),
        ((EXPERIMENT, "--force"), "--force goes with --seeds"),
    ],
)
def test_a_bad_seeds_value_is_one_line_and_status_2(tmp_path, args, says):
    done = camstudy("run", *args, "--profile", "smoke", "--results-dir", str(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("camstudy: error: ") and says in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / EXPERIMENT).exists()  # nothing ran


@pytest.mark.late
@pytest.mark.notebook(EXPERIMENT)
def test_a_two_seed_sweep_of_the_smoke_run(tmp_path, smoke_results):
    first = registry.resolve(EXPERIMENT, "smoke").seed
    # The experiment's own smoke run is there, as after `camstudy run`: the registry's seed is taken from it.
    shutil.copytree(smoke_results(EXPERIMENT)["dir"], tmp_path / EXPERIMENT)
    done = camstudy(
        "run",
        EXPERIMENT,
        "--profile",
        "smoke",
        "--seeds",
        "2",
        "--results-dir",
        str(tmp_path),
        "--no-progress",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    experiment_dir = tmp_path / EXPERIMENT
    for seed in (first, first + 1):
        metrics = json.loads((experiment_dir / "seeds" / str(seed) / "metrics.json").read_text())
        assert (metrics["seed"], metrics["profile"]) == (seed, "smoke")
        assert (experiment_dir / "seeds" / str(seed) / f"{EXPERIMENT}.ipynb").exists()
        assert f"{EXPERIMENT} seed {seed}" in done.stdout
        assert (f"{EXPERIMENT} seed {seed} (reused)" in done.stdout) == (seed == first)
        # The executed notebook names the seed's folder, not the staging folder it ran in.
        notebook = json.loads((experiment_dir / "seeds" / str(seed) / f"{EXPERIMENT}.ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"]["output_dir"] == f"{EXPERIMENT}/seeds/{seed}"
    assert sorted(p.name for p in (experiment_dir / "seeds").iterdir()) == [str(first), str(first + 1)]
    record = json.loads((experiment_dir / "seeds.json").read_text())
    assert record["seeds"] == [first, first + 1] and record["profile"] == "smoke"
    assert set(record["models"]["CNN"]["accuracy"]["values"]) == {str(first), str(first + 1)}
    assert (experiment_dir / "figures" / "seed_spread.png").read_bytes()[:4] == b"\x89PNG"
    assert f"Training noise in {EXPERIMENT}" in done.stdout
    # Again: both finished runs are reused, nothing runs.
    again = camstudy(
        "run", EXPERIMENT, "--profile", "smoke", "--seeds", f"{first},{first + 1}", "--results-dir", str(tmp_path)
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(reused)") == 2
    assert "started" not in again.stderr
