"""Checks shared by the notebook tests: what a person would look for in a run's outputs."""

from __future__ import annotations

from pathlib import Path


def assert_png(path: Path) -> None:
    """The file is a non-empty PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > 1000, f"{path} is suspiciously small ({len(data)} bytes)"


def assert_metric_entry(entry: dict) -> None:
    """A metric is ``{"value": v, "ci95": [lo, hi]}`` with lo <= v <= hi (or undefined)."""
    assert set(entry) >= {"value", "ci95"}, entry
    value, (low, high) = entry["value"], entry["ci95"]
    if value is not None and low is not None and high is not None:
        assert low - 1e-9 <= value <= high + 1e-9, entry
