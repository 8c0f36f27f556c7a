"""Heavy work of a few tests, run in the smoke-run pool (``tests/conftest.py``) beside the foreground tests.

A test names its job with ``@pytest.mark.background(name)`` and reads the result
with ``smoke_results.job(name)``. A job is queued after the smoke runs, so it
starts when the runs leave a worker free, while the foreground goes on with the
other late tests (most of which keep one core busy); the tests that read jobs
run last. Like the smoke runs, a job works through the real command line in
processes started with the session's first environment, so a foreground test's
monkeypatch cannot reach it.

Each job is a function ``(root, env, cwd) -> result``: ``root`` is an empty
folder of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import course

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "assignments"


@dataclass(frozen=True)
class Grade:
    """One graded submission as ``grades.json`` records it."""

    status: str
    message: str
    scores: dict[str, float] = field(default_factory=dict)
    autograded: float | None = None
    autograded_possible: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CourseGrading:
    """The course's assignments built, and two submissions of each graded.

    Attributes:
        built: ``camstudy assign build``'s output folder.
        grades: ``(who, assignment) -> Grade``; who is ``solutions`` (the instructor's
            version) or ``unchanged`` (the student version as handed out).
    """

    built: Path
    grades: dict[tuple[str, str], Grade]


def _camstudy(args: list[str], env: Mapping[str, str], cwd: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "common", *args], capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=3600
    )
    assert done.returncode == 0, f"camstudy {' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-3000:]}"


def read_grades(path: Path) -> dict[str, Grade]:
    """``grades.json`` by submission (its path without ``.ipynb``): status, message, scores and outputs."""
    record = json.loads(path.read_text(encoding="utf-8"))
    header = record["columns"]
    questions = header[header.index("status") + 1 : header.index("autograded")]
    return {
        row["submission"].removesuffix(".ipynb"): Grade(
            status=row["status"],
            message=row["message"],
            scores={name: row[name] for name in questions if name in row},
            autograded=row["autograded"],
            autograded_possible=row["autograded_possible"],
            outputs=row["outputs"],
        )
        for row in record["submissions"]
    }


def grade_assignments(root: Path, env: Mapping[str, str], cwd: str) -> CourseGrading:
    """Build every assignment, then grade its instructor's and its student version, two at a time.

    The instructor's versions run each assignment's smoke-profile experiment, so grading takes minutes.
    """
    built = root / "built"
    _camstudy(["assign", "build", "--source", str(ASSIGNMENTS), "--out", str(built), "--no-check"], env, cwd)
    submissions = root / "submissions"
    names = sorted(path.stem for path in ASSIGNMENTS.glob("*.ipynb"))
    for who, version in (("solutions", course.autograder_notebook), ("unchanged", course.student_notebook)):
        (submissions / who).mkdir(parents=True)
        for name in names:
            shutil.copy(version(built, name), submissions / who / f"{name}.ipynb")
    grade = ["assign", "grade", str(submissions), "--autograders", str(built), "--timeout", "600", "--jobs", "2"]
    _camstudy(grade, env, cwd)
    by_path = read_grades(submissions / "grades" / "grades.json")
    return CourseGrading(built, {tuple(path.split("/")): grade for path, grade in by_path.items()})  # type: ignore[misc]


JOBS: dict[str, Callable[[Path, Mapping[str, str], str], Any]] = {"assignments": grade_assignments}
