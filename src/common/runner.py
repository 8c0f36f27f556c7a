"""Run experiment notebooks through papermill without ever losing earlier results.

A run executes ``notebooks/<id>.ipynb`` into a temporary folder beside
``results/<id>/``; only a notebook that finished replaces the previous
results, in one rename. A failed run leaves the previous results untouched and
keeps the failed executed notebook (papermill puts the error at its top) under
``results/<id>/failed/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import registry
from common.errors import DataError, StudyError
from common.results import append_run_log, project_root, results_root

KERNEL_NAME = "camstudy"


@dataclass
class RunOutcome:
    """What one experiment run produced."""

    experiment: str
    ok: bool
    output_dir: Path
    wall_time_s: float
    error: str = ""
    notebook: Path | None = None
    extra: dict = field(default_factory=dict)


def kernel_name() -> str:
    """Return the project's registered kernel, falling back to ``python3``.

    ``make`` registers the venv's interpreter as the ``camstudy`` kernel so
    papermill runs notebooks with the project's packages.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    names = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in names else "python3"


def notebook_path(experiment_id: str) -> Path:
    """Return the notebook template of an experiment (from the registry)."""
    return project_root() / registry.experiment(experiment_id)["notebook"]


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Raise KeyboardInterrupt on SIGTERM while a notebook runs.

    By default SIGTERM (``kill``, a scheduler's timeout) ends Python at once and
    would leave the ``.running-*`` folder behind; as an interrupt it takes the
    same cleanup path as Ctrl-C. Signal handlers can only be set from the main
    thread, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_ENVIRONMENT_LOCK = threading.Lock()
_inline_runs = 0  # runs (threads) inside _inline_figures
_saved_backend: str | None = None


@contextlib.contextmanager
def _inline_figures():
    """Start kernels without the parent's ``MPLBACKEND``, so notebooks show their figures.

    A kernel inherits this process's environment; importing Streamlit, for one,
    sets ``MPLBACKEND=Agg``, and a kernel started with it draws figures to files
    only, so the executed notebook (and the book) would have no images. Runs
    in several threads share the environment, so it is restored only when the
    last of them ends.
    """
    global _inline_runs, _saved_backend
    with _ENVIRONMENT_LOCK:
        if _inline_runs == 0:
            _saved_backend = os.environ.pop("MPLBACKEND", None)
        _inline_runs += 1
    try:
        yield
    finally:
        with _ENVIRONMENT_LOCK:
            _inline_runs -= 1
            if _inline_runs == 0 and _saved_backend is not None:
                os.environ["MPLBACKEND"] = _saved_backend


def _replace_atomically(finished: Path, target: Path) -> None:
    """Move ``finished`` into ``target``, keeping ``target``'s ``failed/`` history out."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(finished, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def run_experiment(
    experiment_id: str,
    profile: str = "default",
    data_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    results_dir: str | Path | None = None,
    progress_bar: bool = True,
    log_output: bool = False,
) -> RunOutcome:
    """Execute one experiment notebook with papermill.

    Args:
        experiment_id: Registry id of the experiment.
        profile: ``smoke``, ``default`` or ``paper``.
        data_dir: Root of a real data set; ``None`` for the embedded phantoms.
        overrides: Parameter overrides (checked against the registry first).
        results_dir: Folder holding every experiment's results (default ``results/``).
        progress_bar: Show papermill's progress bar on the terminal.
        log_output: Echo the notebook's output to the terminal.

    Returns:
        A :class:`RunOutcome`; ``ok`` is False when the notebook failed.

    Raises:
        ParameterError: for an unknown experiment, profile or parameter,
            before anything runs.
        DataError: when ``data_dir`` does not exist.
    """
    import papermill

    overrides = dict(overrides or {})
    # Validate everything papermill would only find out inside the kernel.
    registry.resolve(experiment_id, profile, overrides, data_dir)
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser().resolve()
        if not data_dir.is_dir():
            raise DataError(f"Data folder {data_dir} does not exist; pass --data-dir with a data set's root.")
    root = Path(results_dir) if results_dir else results_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / experiment_id
    work = root / f".running-{experiment_id}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out_nb = work / f"{experiment_id}.ipynb"
    started = time.perf_counter()
    try:
        with _terminate_as_interrupt(), _inline_figures():
            papermill.execute_notebook(
                str(notebook_path(experiment_id)),
                str(out_nb),
                parameters={
                    "profile": profile,
                    "data_dir": None if data_dir is None else str(data_dir),
                    "overrides": overrides,
                    "output_dir": str(work),
                },
                kernel_name=kernel_name(),
                cwd=str(project_root()),
                progress_bar=progress_bar,
                log_output=log_output,
            )
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt must keep old results too
        failed_dir = target / "failed"
        failed_dir.mkdir(parents=True, exist_ok=True)
        if out_nb.exists():
            os.replace(out_nb, failed_dir / out_nb.name)
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _logged(RunOutcome(
            experiment_id,
            ok=False,
            output_dir=target,
            wall_time_s=round(time.perf_counter() - started, 1),
            error=_short_error(exc),
            notebook=failed_dir / out_nb.name,
        ), profile, root)
    _replace_atomically(work, target)
    return _logged(RunOutcome(
        experiment_id,
        ok=True,
        output_dir=target,
        wall_time_s=round(time.perf_counter() - started, 1),
        notebook=target / out_nb.name,
    ), profile, root)


def _logged(outcome: RunOutcome, profile: str, root: Path) -> RunOutcome:
    """Append the outcome to ``run_log.jsonl`` (the benchmark reads wall times from it)."""
    append_run_log(
        {"experiment": outcome.experiment, "profile": profile, "ok": outcome.ok,
         "wall_time_s": outcome.wall_time_s, "error": outcome.error},
        root,
    )
    return outcome


def _short_error(exc: BaseException) -> str:
    """Return the last line of papermill's error (the notebook's own exception)."""
    name = getattr(exc, "ename", type(exc).__name__)
    value = getattr(exc, "evalue", str(exc))
    return f"{name}: {value}".strip()


def run_all(
    profile: str = "default",
    data_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    results_dir: str | Path | None = None,
    experiments: list[str] | None = None,
    progress_bar: bool = True,
) -> list[RunOutcome]:
    """Run every experiment (or the listed ones), continuing after a failure."""
    outcomes = []
    for experiment_id in experiments or registry.experiment_ids():
        print(f"== {experiment_id} ({profile})", file=sys.stderr, flush=True)
        try:
            outcome = run_experiment(
                experiment_id, profile, data_dir, overrides, results_dir, progress_bar
            )
        except StudyError as exc:
            outcome = RunOutcome(experiment_id, False, Path(), 0.0, error=str(exc))
        status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
        print(f"   {experiment_id}: {status} ({outcome.wall_time_s:.0f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes
