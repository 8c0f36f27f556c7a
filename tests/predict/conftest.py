"""Fixtures of the common.predict tests: one tiny saved run, trained once for the whole package."""

from __future__ import annotations

import pytest

from common import predict
from tests.predict.helpers import EXPERIMENT, save_tiny_run


@pytest.fixture(scope="package")
def tiny_run(tmp_path_factory) -> dict:
    """The tiny run of :func:`~tests.predict.helpers.save_tiny_run`, plus its loaded ``run_model``."""
    record = save_tiny_run(tmp_path_factory.mktemp("tiny_run"))
    record["run_model"] = predict.load_run_model(EXPERIMENT, results_dir=record["results_dir"])
    return record
