"""The book's page "Performance on this machine", from ``results/bench.json``.

``camstudy bench`` (:mod:`common.bench`) writes the record; this module reads
it into a :class:`BenchSummary`, draws the ratio figure and renders
``templates/performance.md.j2``. The ratios' names and meanings are prose of
the template; the numbers all come from the record, and the notebook wall
times from the run log as it is when the book is built.

Example:
    >>> from common.report import performance
    >>> page = performance.performance_markdown(None, figure_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import registry
from common.errors import StudyError
from common.report.render import render

# ``camstudy bench`` writes this file into the results folder (common.bench).
BENCH_FILE = "bench.json"
BENCH_FIGURE = "bench_ratios.png"
# The ratios of a bench.json record, in the page's order (each is explained in the template).
RATIO_KEYS = ("pipeline_vs_model", "pipeline_vs_in_memory", "cam_fraction_of_ceiling")


@dataclass(frozen=True)
class RatioRow:
    """One ratio of the record: its key and its entry, or None when it was not measured."""

    key: str
    entry: Mapping[str, Any] | None


@dataclass(frozen=True)
class Machine:
    """The machine the benchmark ran on, as the record describes it.

    Attributes:
        busy: Whether the 1-minute load average exceeded the CPU count.
    """

    cpus: Any
    processor: Any
    memory_gb: Any
    device: Any
    gpus: list
    tensorflow: Any
    python: Any
    load: Any
    busy: bool


@dataclass(frozen=True)
class WallTimeRow:
    """One experiment's latest wall time per profile, each beside the registry's budget (or None)."""

    experiment: str
    cells: list[tuple[float | None, Any]]


@dataclass(frozen=True)
class BenchSummary:
    """What the performance page shows of one ``bench.json`` record."""

    experiment: Any
    model: Any
    image_size: Any
    batch_size: Any
    measured_at: Any
    quick: bool
    ratios: list[RatioRow]
    machine: Machine
    profiles: tuple[str, ...]
    wall_times: list[WallTimeRow]


def read_bench(results_dir: Path) -> dict | None:
    """Return the ``bench.json`` record in ``results_dir``, or None when there is none.

    Args:
        results_dir: The results folder.

    Raises:
        StudyError: when the file exists but is not JSON.
    """
    path = Path(results_dir) / BENCH_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{path} is not valid JSON ({error}); run `camstudy bench --quick` again.") from None


def with_current_wall_times(record: dict | None, results_dir: Path) -> dict | None:
    """Return the bench record with the wall times of the run log as it is now.

    ``make book`` measures the ratios before it runs the notebooks, so the
    wall times the benchmark saw are those of earlier runs (none on a fresh
    clone); the book shows the runs it was built from.

    Args:
        record: The ``bench.json`` record, or None.
        results_dir: The results folder holding ``run_log.jsonl``.
    """
    from common import bench

    return None if record is None else {**record, "notebook_wall_times_s": bench.notebook_wall_times(results_dir)}


def _wall_time_rows(wall_times: dict[str, dict[str, float]]) -> list[WallTimeRow]:
    """Rows of notebook wall times per experiment (registry order first), each with its budgets."""
    known = registry.experiment_ids()
    order = [e for e in known if e in wall_times] + [e for e in wall_times if e not in known]
    rows = []
    for experiment_id in order:
        times = wall_times[experiment_id]
        budgets = registry.experiment(experiment_id).get("budget_s", {}) if experiment_id in known else {}
        rows.append(WallTimeRow(experiment_id, [(times.get(p), budgets.get(p)) for p in registry.PROFILES]))
    return rows


def _machine(record: Mapping[str, Any]) -> Machine:
    """The record's machine, and whether it was busy when measured."""
    machine = record.get("machine", {})
    load = machine.get("load_average_1min")
    cpus = machine.get("cpu_count")
    busy = isinstance(load, (int, float)) and isinstance(cpus, int) and load > cpus
    return Machine(
        cpus=cpus,
        processor=machine.get("processor"),
        memory_gb=machine.get("memory_gb"),
        device=machine.get("device"),
        gpus=machine.get("gpus") or [],
        tensorflow=machine.get("tensorflow"),
        python=machine.get("versions", {}).get("python"),
        load=load,
        busy=busy,
    )


def bench_summary(record: Mapping[str, Any]) -> BenchSummary:
    """Return what the performance page shows of a ``bench.json`` record.

    Args:
        record: The record (see :mod:`common.bench`).
    """
    return BenchSummary(
        experiment=record.get("experiment"),
        model=record.get("model"),
        image_size=record.get("image_size"),
        batch_size=record.get("batch_size"),
        measured_at=record.get("measured_at"),
        quick=bool(record.get("quick")),
        ratios=[RatioRow(key, entry if isinstance(entry := record.get(key), dict) else None) for key in RATIO_KEYS],
        machine=_machine(record),
        profiles=tuple(registry.PROFILES),
        wall_times=_wall_time_rows(record.get("notebook_wall_times_s") or {}),
    )


def performance_markdown(record: dict | None, figure_dir: Path) -> str:
    """Return the page "Performance on this machine", rendered from a ``bench.json`` record.

    Every number on the page is read from ``record``; without a record the page
    says how to make one. With a record the ratio figure is drawn into
    ``figure_dir`` (and closed).

    Args:
        record: The ``bench.json`` record (see :mod:`common.bench`), or None.
        figure_dir: Folder beside the page for the ratio figure (linked as ``figures/<file>``).
    """
    if record is None:
        return render("performance.md.j2", bench=None, bench_file=BENCH_FILE, figure=BENCH_FIGURE)
    from common.report import figures

    summary = bench_summary(record)
    figure = figures.bench_ratios(record, path=figure_dir / BENCH_FIGURE)
    figures.plt.close(figure)
    return render("performance.md.j2", bench=summary, bench_file=BENCH_FILE, figure=BENCH_FIGURE)
