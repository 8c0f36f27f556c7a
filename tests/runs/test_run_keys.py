"""Every notebook records a run key that the parent process recomputes as unchanged (common.run_key).

The key is written inside the kernel, from the modules it imported and the
registry parts it read; ``camstudy book`` recomputes it outside. If the two
disagreed on anything (the parameters as the kernel got them, a path), every
``make book`` would rerun everything, or worse, never.
"""

from __future__ import annotations

import pytest

from common import run_key
from common.config import registry
from tests.conftest import IQOTH_DIR, REAL_RUN_OPTIONS

EXPERIMENTS = tuple(registry.experiment_ids())
pytestmark = pytest.mark.notebook(*EXPERIMENTS, real=("iqoth",))


@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
def test_a_finished_smoke_run_is_reused_as_it_is_and_not_for_another_profile(smoke_results, experiment_id):
    run = smoke_results(experiment_id)
    key = run_key.read(run["dir"])
    assert key is not None and run["metrics"]["run_key"] == key.digest
    assert f"experiments.{experiment_id}" in key.registry
    assert "common/report/results.py" in key.code
    assert any(path.startswith("common/experiments/") for path in key.code)
    assert run_key.stale_reason(run["dir"], experiment_id, "smoke") is None
    assert run_key.stale_reason(run["dir"], experiment_id, "default").startswith("profile smoke, not default")


def test_the_real_run_is_keyed_by_its_data_folder(smoke_results):
    run = smoke_results.real("iqoth")
    key = run_key.read(run["dir"])
    assert key is not None and set(key.data) == {"data_dir"}
    # The -p NAME=VALUE pairs of tests/conftest.py's REAL_RUN_OPTIONS, as the command line parses them.
    overrides = registry.parse_overrides([v for flag, v in zip(REAL_RUN_OPTIONS, REAL_RUN_OPTIONS[1:]) if flag == "-p"])
    assert overrides == {"split": "grouped", "batch_size": 128}
    assert run_key.stale_reason(run["dir"], "iqoth", "smoke", IQOTH_DIR, overrides) is None
    assert "parameter data_dir" in run_key.stale_reason(run["dir"], "iqoth", "smoke", None, overrides)
