"""``camstudy assign grade``: every submitted notebook of a folder graded by ``otter run``, without Docker.

Each submission is graded in its own subprocess and temporary folder, with a
timeout, against the autograder of the assignment the notebook names
(``metadata.otter.assignment_name``, written by ``otter assign``). A submission
that cannot be graded gets a row with its status and a one-line reason, and the
others are still graded; :mod:`common.course.gradebook` writes the rows.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.course import build, gradebook, notebooks, process
from common.course.notebooks import Question, one_line
from common.errors import DataError, ParameterError

DEFAULT_TIMEOUT_S = 1800.0
# The entry of otter's results.json that repeats the public tests; the questions follow it.
PUBLIC_TESTS = "Public Tests"
STATUSES = ("graded", "timeout", "error")


@dataclass(frozen=True)
class GradedSubmission:
    """One submission's grade, or why it has none.

    Attributes:
        submission: Its path relative to the submissions folder (``/``-separated).
        assignment: The assignment it names; ``None`` when it names none (or is not a notebook).
        status: ``graded``, ``timeout`` or ``error``.
        seconds: Wall time spent on it.
        message: One line: why it is not graded, or empty.
        scores: Each autograded question's score (graded submissions only).
        possible: Each autograded question's maximum score (graded submissions only).
        outputs: Each autograded question's test output (graded submissions only).
        manual: The assignment's questions graded by hand (when the assignment is known).
    """

    submission: str
    assignment: str | None
    status: str
    seconds: float
    message: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    possible: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    manual: tuple[Question, ...] = ()

    @property
    def graded(self) -> bool:
        """Whether otter graded it."""
        return self.status == "graded"

    @property
    def autograded(self) -> float | None:
        """The sum of its autograded scores (``None`` when not graded)."""
        return float(sum(self.scores.values())) if self.graded else None

    @property
    def autograded_possible(self) -> float | None:
        """The sum of its autograded questions' maximum scores (``None`` when not graded)."""
        return float(sum(self.possible.values())) if self.graded else None


@dataclass(frozen=True)
class GradeReport:
    """All submissions of a folder graded, and where their grades were written.

    Attributes:
        submissions: One per notebook, in path order.
        csv_path: ``grades.csv``.
        json_path: ``grades.json``.
    """

    submissions: list[GradedSubmission]
    csv_path: Path
    json_path: Path

    @property
    def graded_count(self) -> int:
        """How many submissions were graded."""
        return sum(s.graded for s in self.submissions)

    @property
    def ok(self) -> bool:
        """Whether every submission was graded."""
        return self.graded_count == len(self.submissions)


def find_submissions(folder: Path, out_dir: Path) -> list[Path]:
    """Every ``*.ipynb`` file under ``folder``, sorted, skipping ``out_dir`` and ``.ipynb_checkpoints``."""
    out_dir = Path(out_dir).resolve()
    found = []
    for path in Path(folder).rglob("*.ipynb"):
        resolved = path.resolve()
        if path.is_file() and ".ipynb_checkpoints" not in path.parts and not resolved.is_relative_to(out_dir):
            found.append(path)
    return sorted(found)


def grade_submission(
    path: Path, folder: Path, autograders: Path, timeout: float = DEFAULT_TIMEOUT_S
) -> GradedSubmission:
    """Grade one submitted notebook with ``otter run`` against its assignment's autograder.

    Args:
        path: The submission.
        folder: The submissions folder (its path in the grades is relative to it).
        autograders: The folder ``camstudy assign build`` wrote.
        timeout: Seconds after which grading it is stopped.

    Returns:
        Its grade, or a row with status ``timeout``/``error`` and the reason; never raises for a bad submission.
    """
    relative = Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    try:
        notebook = notebooks.read_notebook(path)
    except (DataError, OSError) as exc:
        return GradedSubmission(relative, None, "error", 0.0, one_line(str(exc).removeprefix(f"{path}: ")))
    name = notebooks.submission_assignment(notebook)
    if name is None:
        return GradedSubmission(relative, None, "error", 0.0, "names no assignment (no metadata.otter.assignment_name)")
    built = build.built_names(autograders)
    if name not in built:
        reason = f"unknown assignment {name!r} (autograders built: {', '.join(built) or 'none'})"
        return GradedSubmission(relative, name, "error", 0.0, reason)
    questions = build.read_built_questions(autograders, name)
    manual = tuple(q for q in questions if q.manual)
    with tempfile.TemporaryDirectory(prefix="camstudy-grade-") as work:
        zip_path = build.autograder_zip(autograders, name).resolve()
        args = ["run", "-a", str(zip_path), "-o", work, "--no-logo", str(Path(path).resolve())]
        done = process.otter(args, cwd=Path(work), timeout=timeout)
        if kernel_never_started(done):  # nothing of the submission ran: grade it once more
            done = process.otter(args, cwd=Path(work), timeout=timeout)
        row = GradedSubmission(relative, name, "error", done.seconds, manual=manual)
        if done.timed_out:
            return replace(row, status="timeout", message=f"grading ran over the timeout of {timeout:g} s")
        if done.returncode != 0:
            return replace(row, message=f"otter run failed (exit status {done.returncode}): {done.last_line()}")
        return _read_results(row, Path(work) / "results.json")


# What otter prints when the notebook's kernel died or stayed silent before running a cell. On a busy
# machine two kernels starting at once may be handed the same TCP port (Jupyter picks free ports and
# releases them before the kernel binds), and the one that loses dies at start ("Address already in use"):
# seen once in the test suite's grading, with other notebooks running beside it.
KERNEL_NEVER_STARTED = ("Kernel died before replying to kernel_info", "Kernel didn't respond in")


def kernel_never_started(done: process.Finished) -> bool:
    """Whether an ``otter run`` failed because its kernel never started, so that nothing of the submission ran."""
    return done.returncode not in (None, 0) and any(message in done.output for message in KERNEL_NEVER_STARTED)


def _read_results(row: GradedSubmission, results: Path) -> GradedSubmission:
    """The row with the scores of otter's ``results.json`` (an error row when it is missing or unreadable)."""
    try:
        tests = json.loads(results.read_text(encoding="utf-8"))["tests"]
        entries = [t for t in tests if t.get("name") != PUBLIC_TESTS]
        scores = {str(t["name"]): float(t.get("score") or 0.0) for t in entries}
        possible = {str(t["name"]): float(t["max_score"]) for t in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return replace(row, message=f"otter run wrote no readable results.json ({one_line(repr(exc))})")
    outputs = {str(t["name"]): str(t.get("output", "")) for t in entries}
    return replace(row, status="graded", scores=scores, possible=possible, outputs=outputs)


def grade_folder(
    folder: Path,
    autograders: Path | None = None,
    out_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    on_graded: Callable[[GradedSubmission], None] | None = None,
    jobs: int = 1,
) -> GradeReport:
    """Grade every submitted notebook under ``folder`` and write ``grades.csv`` and ``grades.json``.

    Args:
        folder: The submissions (searched recursively).
        autograders: The folder ``camstudy assign build`` wrote (default :func:`build.default_out_dir`).
        out_dir: Where the grades go (default ``folder/grades``).
        timeout: Seconds per submission.
        on_graded: Called with each submission's grade as soon as it has one.
        jobs: Submissions graded at the same time, each in its own ``otter run`` process. Most of
            a grading is one kernel running one notebook, which keeps about one core busy.

    Returns:
        The grades and the paths written, in path order.

    Raises:
        DataError: ``folder`` is missing or holds no notebook, or no autograder is built.
        ParameterError: a timeout or a number of jobs that is not positive.
    """
    folder = Path(folder)
    autograders = Path(autograders) if autograders else build.default_out_dir()
    out_dir = Path(out_dir) if out_dir else folder / "grades"
    paths = _check_grading_inputs(folder, autograders, out_dir, timeout)
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ParameterError(f"--jobs must be a positive whole number, not {jobs}")
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade") as pool:
        futures = [pool.submit(grade_submission, path, folder, autograders, timeout) for path in paths]
        if on_graded:
            for future in as_completed(futures):
                on_graded(future.result())
        graded = [future.result() for future in futures]
    csv_path, json_path = gradebook.write(graded, out_dir)
    return GradeReport(graded, csv_path, json_path)


def _check_grading_inputs(folder: Path, autograders: Path, out_dir: Path, timeout: float) -> list[Path]:
    """The submissions to grade, after checking the command was used rightly."""
    if not timeout > 0:
        raise ParameterError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of submissions")
    paths = find_submissions(folder, out_dir)
    if not paths:
        raise DataError(f"{folder}: no submitted notebook (*.ipynb) in it")
    if not build.built_names(autograders):
        raise DataError(f"{autograders}: no autograder built there; run `camstudy assign build` first")
    return paths


def describe_submission(graded: GradedSubmission) -> str:
    """The terminal line of one submission."""
    if graded.graded:
        return (
            f"{graded.submission}: {graded.autograded:.1f} / {graded.autograded_possible:.1f} autograded "
            f"({graded.seconds:.0f} s)"
        )
    return f"{graded.submission}: {graded.status}: {graded.message}"


def describe_report(report: GradeReport) -> str:
    """The closing terminal line of a grading."""
    return f"graded {report.graded_count} of {len(report.submissions)} submission(s); grades in {report.csv_path}"
