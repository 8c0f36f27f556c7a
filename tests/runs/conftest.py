"""Fixtures that execute experiment notebooks once per test session (smoke profile).

Each experiment runs through :func:`common.runner.run_experiment` exactly as
``camstudy run ID --profile smoke`` does, into a temporary results folder, so
the tests check the executed notebook, ``metrics.json`` and the figures a user
would get. Phantoms are generated into a temporary ``CAMSTUDY_HOME``-independent
folder shared by the session.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from common import runner

_RUNS: dict[str, dict] = {}


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """Return a function ``run(experiment_id) -> record`` that runs each experiment once.

    The record holds ``dir`` (results/<id>), ``metrics`` (parsed metrics.json),
    ``outcome`` and ``seconds`` (wall time of the papermill run).
    """
    root = tmp_path_factory.mktemp("results")

    def run(experiment_id: str) -> dict:
        if experiment_id not in _RUNS:
            started = time.perf_counter()
            outcome = runner.run_experiment(experiment_id, "smoke", results_dir=root, progress_bar=False)
            seconds = time.perf_counter() - started
            assert outcome.ok, f"{experiment_id} smoke run failed: {outcome.error} (see {outcome.notebook})"
            metrics = json.loads((root / experiment_id / "metrics.json").read_text())
            _RUNS[experiment_id] = {"dir": root / experiment_id, "metrics": metrics,
                                    "outcome": outcome, "seconds": seconds}
        return _RUNS[experiment_id]

    run.root = root
    return run
