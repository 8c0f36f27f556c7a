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
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import registry
from common.errors import DataError, ParameterError, StudyError
from common.report.results import append_run_log, project_root, results_root

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
    """Move ``finished`` into ``target``; ``target``'s ``failed/`` history moves along into it."""
    history = target / "failed"
    if history.is_dir():
        os.replace(history, finished / "failed")
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
    overrides = dict(overrides or {})
    # Validate everything papermill would only find out inside the kernel.
    registry.resolve(experiment_id, profile, overrides, data_dir)
    data_dir = _existing_data_dir(data_dir)
    # Absolute: the kernel runs in the project root, so a relative folder would land elsewhere there.
    root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / experiment_id
    work = root / f".running-{experiment_id}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out_nb = work / f"{experiment_id}.ipynb"
    parameters = {
        "profile": profile,
        "data_dir": None if data_dir is None else str(data_dir),
        "overrides": overrides,
        "output_dir": str(work),
    }
    started = time.perf_counter()
    try:
        _execute(experiment_id, out_nb, parameters, progress_bar, log_output)
    except BaseException as exc:
        failed_notebook = _keep_failed(out_nb, work, target)
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = RunOutcome(
            experiment_id, False, target, _seconds_since(started), error=_short_error(exc), notebook=failed_notebook
        )
        return _logged(outcome, profile, root)
    _replace_atomically(work, target)
    outcome = RunOutcome(experiment_id, True, target, _seconds_since(started), notebook=target / out_nb.name)
    return _logged(outcome, profile, root)


def _seconds_since(started: float) -> float:
    """Wall seconds since ``started`` (``time.perf_counter``), to a tenth."""
    return round(time.perf_counter() - started, 1)


def _existing_data_dir(data_dir: str | Path | None) -> Path | None:
    """``data_dir`` as an absolute path (None stays None).

    Raises:
        DataError: when the folder does not exist.
    """
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise DataError(f"Data folder {data_dir} does not exist; pass --data-dir with a data set's root.")
    return data_dir


def _execute(
    experiment_id: str, out_nb: Path, parameters: dict[str, Any], progress_bar: bool, log_output: bool
) -> None:
    """Execute the experiment's notebook into ``out_nb`` with papermill, from the project root."""
    import papermill

    with _terminate_as_interrupt(), _inline_figures():
        papermill.execute_notebook(
            str(notebook_path(experiment_id)),
            str(out_nb),
            parameters=parameters,
            kernel_name=kernel_name(),
            cwd=str(project_root()),
            progress_bar=progress_bar,
            log_output=log_output,
        )


def _keep_failed(out_nb: Path, work: Path, target: Path) -> Path:
    """Move a failed run's notebook to ``target/failed/`` and drop its work folder; return where it went.

    The latest failure is ``failed/<id>.ipynb``; an earlier one there is kept as
    ``failed/<id>-<when it failed>.ipynb``.
    """
    failed_dir = target / "failed"
    failed_dir.mkdir(parents=True, exist_ok=True)
    latest = failed_dir / out_nb.name
    if latest.exists() and out_nb.exists():
        when = time.strftime("%Y%m%d-%H%M%S", time.localtime(latest.stat().st_mtime))
        earlier, number = failed_dir / f"{out_nb.stem}-{when}.ipynb", 2
        while earlier.exists():
            earlier, number = failed_dir / f"{out_nb.stem}-{when}-{number}.ipynb", number + 1
        os.replace(latest, earlier)
    if out_nb.exists():
        os.replace(out_nb, latest)
    shutil.rmtree(work, ignore_errors=True)
    return latest


def _logged(outcome: RunOutcome, profile: str, root: Path) -> RunOutcome:
    """Append the outcome to ``run_log.jsonl`` (the benchmark reads wall times from it)."""
    append_run_log(
        {
            "experiment": outcome.experiment,
            "profile": profile,
            "ok": outcome.ok,
            "wall_time_s": outcome.wall_time_s,
            "error": outcome.error,
        },
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
    jobs: int = 1,
) -> list[RunOutcome]:
    """Run every experiment (or the listed ones), continuing after a failure.

    Args:
        profile, data_dir, overrides, results_dir, progress_bar: As for
            :func:`run_experiment`.
        experiments: Registry ids, in the order of the returned outcomes
            (default: all).
        jobs: Notebooks run at once. The nine-models default notebook alone
            kept 1.04 of a 2-core machine's cores busy, as tracing a model's
            graphs is single-threaded Python; two at a time use the idle core.
            With more than one job the longest budgets start first, progress
            bars are off, and TensorFlow's GPU memory grows on demand
            (``TF_FORCE_GPU_ALLOW_GROWTH``) so the kernels can share a GPU.

    Returns:
        One :class:`RunOutcome` per experiment.

    Raises:
        ParameterError: ``jobs`` below 1.
    """
    ids = list(experiments or registry.experiment_ids())
    if jobs < 1:
        raise ParameterError(f"jobs={jobs} must be at least 1.")
    if jobs == 1:
        return [_run_reported(e, profile, data_dir, overrides, results_dir, progress_bar) for e in ids]
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    longest_first = sorted(ids, key=lambda e: -registry.experiment(e).get("budget_s", {}).get(profile, 0))
    with _terminate_as_interrupt(), ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="run") as pool:
        futures = {
            e: pool.submit(_run_reported, e, profile, data_dir, overrides, results_dir, False) for e in longest_first
        }
        try:
            wait(futures.values())
        except KeyboardInterrupt:
            for future in futures.values():
                future.cancel()
            # The kernels run in sessions of their own, out of reach of Ctrl-C: interrupt
            # them, so each run fails in its cell and keeps the earlier results.
            while not all(future.done() for future in futures.values()):
                _interrupt_kernels()
                wait(futures.values(), timeout=10)
            raise
    return [futures[e].result() for e in ids]


def _run_reported(experiment_id: str, profile: str, data_dir, overrides, results_dir, progress_bar: bool) -> RunOutcome:
    """:func:`run_experiment` with a line on stderr as it starts and ends; a refused run fails."""
    _say(f"== {experiment_id} ({profile})")
    try:
        outcome = run_experiment(experiment_id, profile, data_dir, overrides, results_dir, progress_bar)
    except StudyError as exc:
        outcome = RunOutcome(experiment_id, False, Path(), 0.0, error=str(exc))
    status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
    _say(f"   {experiment_id}: {status} ({outcome.wall_time_s:.0f} s)")
    return outcome


def _say(line: str) -> None:
    # One write per line: print() writes the text and its newline separately, and the
    # lines of runs in other threads would fall between them.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _interrupt_kernels() -> None:
    """Send SIGINT (a kernel's interrupt) to every Jupyter kernel this process started."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any("ipykernel" in part for part in child.cmdline()):
                child.send_signal(signal.SIGINT)
