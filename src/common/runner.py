"""Run experiment notebooks through papermill without ever losing earlier results.

A run executes ``notebooks/<id>.ipynb`` into a temporary folder beside
``results/<id>/``; only a notebook that finished replaces the previous
results, in one rename. A failed run leaves the previous results untouched and
keeps the failed executed notebook (papermill puts the error at its top) under
``results/<id>/failed/``. The kernel's own output (its start-up log, TensorFlow's
C++ lines) and the cells' printed output go to the run's ``run.log``, never to
the terminal, which shows one progress line per notebook
(:mod:`common.report.progress`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from common.config import registry
from common.errors import DataError, ParameterError, StudyError
from common.report import executed
from common.report.progress import RunProgress
from common.report.results import append_run_log, project_root, results_root

KERNEL_NAME = "camstudy"
# Beside the executed notebook: the kernel's own output and the cells' printed output.
RUN_LOG = "run.log"
# IPython colours a traceback; the log keeps its text.
_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


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


# What a new run of an experiment carries over from its previous results folder: the failed-run
# history, and the seed sweep (common.seeds: its runs, aggregate and figure), which are separate runs.
CARRIED_OVER = ("failed", "seeds", "seeds.json", "figures/seed_spread.png")


def _replace_atomically(finished: Path, target: Path) -> None:
    """Move ``finished`` into ``target``; ``target``'s :data:`CARRIED_OVER` entries move along into it."""
    for name in CARRIED_OVER:
        kept = target / name
        if kept.exists() and not (finished / name).exists():
            (finished / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(kept, finished / name)
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
    progress: RunProgress | None = None,
    log_output: bool = False,
) -> RunOutcome:
    """Execute one experiment notebook with papermill.

    The kernel's own output (its start-up log, TensorFlow's C++ lines) and the
    notebook's printed output go to ``results/<id>/run.log``, not the terminal;
    a failed run's log goes to ``results/<id>/failed/<id>.log``.

    Args:
        experiment_id: Registry id of the experiment.
        profile: ``smoke``, ``default`` or ``paper``.
        data_dir: Root of a real data set; ``None`` for the embedded phantoms.
        overrides: Parameter overrides (checked against the registry first).
        results_dir: Folder holding every experiment's results (default ``results/``).
        progress: Where the run's start, code cells done and end are shown; None: nowhere.
        log_output: Also echo the notebook's output through papermill's logger.

    Returns:
        A :class:`RunOutcome`; ``ok`` is False when the notebook failed.

    Raises:
        ParameterError: for an unknown experiment, profile or parameter,
            before anything runs.
        DataError: when ``data_dir``, or the ``annotations`` folder of the overrides, does not exist.
    """
    overrides = dict(overrides or {})
    # Validate everything papermill would only find out inside the kernel.
    registry.resolve(experiment_id, profile, overrides, data_dir)
    data_path = _existing_data_dir(data_dir)
    given_annotations = overrides.get("annotations")
    if given_annotations is not None:
        overrides["annotations"] = str(_existing_annotations(given_annotations))
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
        "data_dir": None if data_path is None else str(data_path),
        "overrides": overrides,
        "output_dir": str(work),
    }
    if progress is None:
        progress = RunProgress(io.StringIO(), live=False)  # shown nowhere
    progress.started(experiment_id, profile)
    started = time.perf_counter()
    try:
        _execute(experiment_id, out_nb, parameters, progress.callback(experiment_id), log_output)
        _tidy_parameters(out_nb, parameters, data_dir, target, given_annotations)
    except BaseException as exc:
        failed_notebook = _keep_failed(out_nb, work, target)
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = RunOutcome(
            experiment_id, False, target, _seconds_since(started), error=_short_error(exc), notebook=failed_notebook
        )
    else:
        _replace_atomically(work, target)
        outcome = RunOutcome(experiment_id, True, target, _seconds_since(started), notebook=target / out_nb.name)
    progress.ended(experiment_id, outcome.ok, outcome.wall_time_s, outcome.error)
    return _logged(outcome, profile, root)


def _tidy_parameters(
    out_nb: Path,
    parameters: dict[str, Any],
    data_dir: str | Path | None,
    target: Path,
    annotations: str | Path | None = None,
) -> None:
    """Hide the injected parameters and show the run's values without the machine's paths (see :mod:`executed`).

    The results folder shows as ``results/<id>`` (relative to the project; a
    folder outside it by its name), the data and annotations folders relative
    to the project or as the user gave them.
    """
    output_dir = executed.shown_path(target, f"{target.parent.name}/{target.name}")
    shown = dict(parameters, output_dir=output_dir)
    if data_dir is not None:
        shown["data_dir"] = executed.shown_path(parameters["data_dir"], str(data_dir))
    if annotations is not None:
        absolute = parameters["overrides"]["annotations"]
        shown["overrides"] = dict(parameters["overrides"], annotations=executed.shown_path(absolute, str(annotations)))
    executed.tidy_parameters(out_nb, shown, f"{output_dir}/{out_nb.name}")


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


def _existing_annotations(folder: str | Path) -> Path:
    """The ``annotations`` folder as an absolute path.

    Raises:
        DataError: when the folder does not exist.
    """
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(
            f"Annotations folder {folder} does not exist; pass --annotations with the folder of the Pascal VOC files."
        )
    return folder


def _execute(
    experiment_id: str,
    out_nb: Path,
    parameters: dict[str, Any],
    on_cell: Callable[[int, int], None],
    log_output: bool,
) -> None:
    """Execute the experiment's notebook into ``out_nb`` with papermill, from the project root.

    The kernel process's stdout and stderr, and the cells' printed output, are
    appended to ``run.log`` beside ``out_nb``; ``on_cell`` hears (code cells
    done, total) after each code cell.
    """
    import papermill

    with (
        open(out_nb.with_name(RUN_LOG), "a", encoding="utf-8", buffering=1) as log,
        _terminate_as_interrupt(),
        _inline_figures(),
    ):
        log.write(f"# camstudy run {experiment_id}, {time.strftime('%Y-%m-%d %H:%M:%S')}: {parameters}\n")
        hooks = _CellHooks(on_cell, log)
        papermill.execute_notebook(
            str(notebook_path(experiment_id)),
            str(out_nb),
            parameters=parameters,
            kernel_name=kernel_name(),
            cwd=str(project_root()),
            progress_bar=False,
            log_output=log_output,
            stdout_file=log,
            stderr_file=log,
            kernel_manager_class=_kernel_manager_writing_to(log),
            on_notebook_start=hooks.notebook_start,
            on_cell_executed=hooks.cell_executed,
            on_cell_error=hooks.cell_error,
        )


class _CellHooks:
    """nbclient's hooks: count the code cells run of the notebook's total, log a failing cell's traceback."""

    def __init__(self, report: Callable[[int, int], None], log: IO[str]) -> None:
        self.report, self.log, self.done, self.total = report, log, 0, 0

    def notebook_start(self, notebook, **_) -> None:
        self.total = sum(1 for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip())
        self.report(self.done, self.total)

    def cell_executed(self, **_) -> None:
        self.done += 1
        self.report(self.done, self.total)

    def cell_error(self, cell_index: int, execute_reply: dict, **_) -> None:
        reply = execute_reply.get("content", {})
        traceback = _ANSI_CODE.sub("", "\n".join(reply.get("traceback", [])))
        self.log.write(f"# cell {cell_index} failed: {reply.get('ename')}: {reply.get('evalue')}\n{traceback}\n")


def _kernel_manager_writing_to(log: IO[str]) -> type:
    """A kernel manager class whose kernels write their own stdout and stderr to ``log``.

    A kernel inherits this process's terminal otherwise, and writes to it what
    no cell prints: ipykernel's "Kernel is running over TCP without encryption"
    and TensorFlow's C++ log lines.
    """
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return LoggedKernelManager


def _keep_failed(out_nb: Path, work: Path, target: Path) -> Path:
    """Move a failed run's notebook and log to ``target/failed/`` and drop its work folder; return the notebook.

    The latest failure is ``failed/<id>.ipynb`` with its ``failed/<id>.log``; an
    earlier one there is kept as ``failed/<id>-<when it failed>.ipynb`` (and ``.log``).
    """
    failed_dir = target / "failed"
    failed_dir.mkdir(parents=True, exist_ok=True)
    latest = failed_dir / out_nb.name
    if latest.exists() and out_nb.exists():
        when = time.strftime("%Y%m%d-%H%M%S", time.localtime(latest.stat().st_mtime))
        earlier, number = f"{out_nb.stem}-{when}", 2
        while (failed_dir / f"{earlier}.ipynb").exists():
            earlier, number = f"{out_nb.stem}-{when}-{number}", number + 1
        for suffix in (".ipynb", ".log"):
            if latest.with_suffix(suffix).exists():
                os.replace(latest.with_suffix(suffix), failed_dir / f"{earlier}{suffix}")
    if out_nb.exists():
        os.replace(out_nb, latest)
    if (work / RUN_LOG).exists():
        os.replace(work / RUN_LOG, latest.with_suffix(".log"))
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
        profile, data_dir, overrides, results_dir: As for :func:`run_experiment`.
        experiments: Registry ids, in the order of the returned outcomes
            (default: all).
        progress_bar: On a terminal, redraw the running notebooks' progress lines
            in place (:class:`~common.report.progress.RunProgress`); False, or
            anywhere else, one line on stderr as each notebook starts and ends.
        jobs: Notebooks run at once. The nine-models default notebook alone
            kept 1.04 of a 2-core machine's cores busy, as tracing a model's
            graphs is single-threaded Python; two at a time use the idle core.
            With more than one job the longest budgets start first and
            TensorFlow's GPU memory grows on demand (``TF_FORCE_GPU_ALLOW_GROWTH``)
            so the kernels can share a GPU.

    Returns:
        One :class:`RunOutcome` per experiment.

    Raises:
        ParameterError: ``jobs`` below 1.
    """
    ids = list(experiments or registry.experiment_ids())
    if jobs < 1:
        raise ParameterError(f"jobs={jobs} must be at least 1.")
    with RunProgress(live=None if progress_bar else False) as progress:
        if jobs == 1:
            return [_run_reported(e, profile, data_dir, overrides, results_dir, progress) for e in ids]
        run_args = (profile, data_dir, overrides, results_dir, progress)
        return _run_at_once(ids, jobs, run_args)


def _run_at_once(ids: list[str], jobs: int, run_args: tuple) -> list[RunOutcome]:
    """Run ``ids`` in ``jobs`` threads, the longest budgets first (``run_args``: as :func:`_run_reported`'s)."""
    profile = run_args[0]
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    longest_first = sorted(ids, key=lambda e: -registry.experiment(e).get("budget_s", {}).get(profile, 0))
    with _terminate_as_interrupt(), ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="run") as pool:
        futures = {e: pool.submit(_run_reported, e, *run_args) for e in longest_first}
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


def _run_reported(
    experiment_id: str, profile: str, data_dir, overrides, results_dir, progress: RunProgress
) -> RunOutcome:
    """:func:`run_experiment` with its progress lines; a refused run (bad parameter or data) fails."""
    try:
        return run_experiment(experiment_id, profile, data_dir, overrides, results_dir, progress)
    except StudyError as exc:
        progress.ended(experiment_id, False, 0.0, str(exc))
        return RunOutcome(experiment_id, False, Path(), 0.0, error=str(exc))


def _interrupt_kernels() -> None:
    """Send SIGINT (a kernel's interrupt) to every Jupyter kernel this process started."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any("ipykernel" in part for part in child.cmdline()):
                child.send_signal(signal.SIGINT)
