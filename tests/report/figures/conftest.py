"""Fixtures of the common.report.figures tests.

Set FIGURE_DIR to keep the PNGs for looking at them (default: pytest's tmp_path).
"""

import os
from pathlib import Path

import pytest

# The PNG check lives in helpers.py; rewrite its asserts so a failure shows the compared values.
pytest.register_assert_rewrite("tests.report.figures.helpers")


@pytest.fixture
def figure_dir(tmp_path):
    return Path(os.environ.get("FIGURE_DIR", tmp_path / "nested" / "figures"))
