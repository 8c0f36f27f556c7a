"""What ``camstudy run`` and ``camstudy book`` show on the terminal while notebooks run, and after.

One line per notebook: the experiment, its profile, code cells done of the
total and the time since it started. On a terminal the lines of the running
notebooks are one block, redrawn in place (two lines with ``--jobs 2``), and a
notebook that ends leaves its final line above the block. Anywhere else (a
pipe, a CI log) nothing is redrawn: each notebook prints one line as it starts
and one as it ends. After the runs, :func:`summary_table` gives one row per
experiment: its status, wall time and headline metric.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> with RunProgress(out, live=False) as progress:
    ...     progress.started("iqoth", "smoke")
    ...     progress.cells("iqoth", 3, 40)
    ...     progress.ended("iqoth", True, 61.5)
    >>> print(out.getvalue(), end="")
    iqoth (smoke): started
    iqoth (smoke): done, 3/40 cells, 1:02
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from common.errors import StudyError
from common.report.results import read_metrics

# How often the block on a terminal is redrawn to move the elapsed times on.
TICK_S = 1.0
# ANSI: cursor to the start of the line n lines up, and clear to the end of the screen.
_UP, _CLEAR = "\x1b[{}F", "\x1b[J"


def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (``h:mm:ss`` from an hour on)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class _Run:
    """One running notebook as the progress lines show it."""

    name: str
    started: float
    done: int = 0
    total: int = 0

    def line(self, now: float) -> str:
        cells = f"{self.done}/{self.total} cells" if self.total else "starting"
        return f"{self.name}: {cells}, {clock(now - self.started)}"


@dataclass
class RunProgress:
    """Progress lines of notebook runs, safe to call from the threads that run them.

    Use it as a context manager: on a terminal a background thread moves the
    elapsed times on once a second until the ``with`` block ends.

    Attributes:
        stream: Where the lines go (default: ``sys.stderr``).
        live: Redraw the running notebooks' lines in place; default: whether
            ``stream`` is a terminal.
    """

    stream: TextIO | None = None
    live: bool | None = None
    _runs: dict[str, _Run] = field(default_factory=dict, init=False)
    _drawn: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.stream = self.stream or sys.stderr
        if self.live is None:
            self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> RunProgress:
        if self.live:
            threading.Thread(target=self._tick, name="run-progress", daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()

    def started(self, experiment_id: str, profile: str) -> None:
        """A notebook starts."""
        with self._lock:
            run = self._runs[experiment_id] = _Run(f"{experiment_id} ({profile})", time.monotonic())
            self._show(f"{run.name}: started" if not self.live else None)

    def cells(self, experiment_id: str, done: int, total: int) -> None:
        """``done`` of the notebook's ``total`` code cells have run (a line only on a terminal)."""
        with self._lock:
            run = self._runs.get(experiment_id)
            if run is not None:
                run.done, run.total = done, total
                if self.live:
                    self._show(None)

    def callback(self, experiment_id: str) -> Callable[[int, int], None]:
        """``cells`` for one experiment: what the runner calls after each code cell."""
        return lambda done, total: self.cells(experiment_id, done, total)

    def ended(self, experiment_id: str, ok: bool, seconds: float, error: str = "") -> None:
        """A notebook ended: its final line (cells run, wall time; the error when it failed)."""
        with self._lock:
            run = self._runs.pop(experiment_id, None) or _Run(experiment_id, time.monotonic())
            if ok:
                status = f"done, {run.done}/{run.total} cells" if run.total else "done"
            else:  # the cell that failed is the last one run
                status = f"FAILED in cell {run.done}/{run.total}" if run.done else "FAILED"
            line = f"{run.name}: {status}, {clock(seconds)}"
            self._show(line if ok or not error else f"{line}: {error}")

    def _show(self, line: str | None) -> None:
        """Write ``line`` (when given) and, on a terminal, redraw the running notebooks' block below it."""
        text = ""
        if self.live and self._drawn:
            text += _UP.format(self._drawn) + _CLEAR
        if line is not None:
            text += line + "\n"
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            now = time.monotonic()
            block = [run.line(now)[:width] for run in self._runs.values()]
            text += "".join(f"{row}\n" for row in block)
            self._drawn = len(block)
        # One write: the runs' threads must not interleave inside a line.
        self.stream.write(text)
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                if self._runs:
                    self._show(None)


class Outcome(Protocol):
    """What the summary reads of a run (:class:`common.runner.RunOutcome` has it)."""

    experiment: str
    ok: bool
    wall_time_s: float
    output_dir: Path


def headline(metrics: dict) -> str:
    """The run's headline: the best model's value of the overview's first headline metric, and the model.

    The metric is the first of :data:`common.report.pages.HEADLINE_METRICS`, so
    the terminal and the book's overview lead with the same number. The best
    of the models the paper reports on (its ``paper_vs_run`` rows); of all
    models when the paper gives no numbers.

    Args:
        metrics: A ``metrics.json`` record (its ``models`` and ``paper_vs_run``).

    Returns:
        E.g. ``"accuracy 0.909 (0.82–0.98), VGG16"``; a dash when no model has the metric.
    """
    from common.evaluation import tables
    from common.report.pages import HEADLINE_METRICS

    metric = HEADLINE_METRICS[0]
    papers = {row.get("model") for row in metrics.get("paper_vs_run") or []}
    models = {
        name: values
        for name, values in metrics.get("models", {}).items()
        if metric in values and (name in papers or not papers)
    }
    if not models:
        return tables.MISSING
    best = tables.best_per_metric(models, [metric])[metric]
    value = tables.format_estimate(models[best][metric])
    return f"{metric} {value}" + (f", {best}" if len(models) > 1 else "")


def _headline_of(row: Outcome) -> str:
    """The headline of a finished run, read from its ``metrics.json``; a dash for a failed run."""
    from common.evaluation import tables

    if not row.ok:
        return tables.MISSING
    try:
        return headline(read_metrics(row.output_dir / "metrics.json"))
    except StudyError:
        return "metrics.json unreadable"


def summary_table(rows: Sequence[Outcome]) -> str:
    """A plain-text table of the runs: experiment, status, wall time and headline metric.

    Args:
        rows: The runs' outcomes, in the order to show.

    Returns:
        The table's lines, with a header and columns aligned.
    """
    header = ("experiment", "status", "wall time", "headline")
    body = [(r.experiment, "ok" if r.ok else "FAILED", clock(r.wall_time_s), _headline_of(r)) for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in [header, *body]
    )
