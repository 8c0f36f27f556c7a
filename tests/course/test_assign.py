"""camstudy assign build/grade on a tiny assignment of the tests' own (tests/course/helpers.py).

One build and one grading of five submissions (module fixtures) serve every test:
the instructor's version (full marks), the student version unchanged (zero), a
file that is not a notebook, a notebook of an unknown assignment and a submission
that loops forever (stopped by a small --timeout).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
import zipfile

import pytest

from common import cli, course
from common.course import build, notebooks
from common.errors import DataError

from . import helpers

# Long enough for otter to grade the tiny notebook on a busy machine (about 10 s alone; over 25 s once on 2 cores
# beside the suite's smoke runs), short for the test.
TIMEOUT_S = 40


def _main(argv: list[str]) -> tuple[int, str]:
    """``camstudy ARGV`` in this process: its exit status and standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    helpers.write_source(root / "source")
    status, stdout = _main(["assign", "build", "--source", str(root / "source"), "--out", str(root / "out")])
    return root / "out", status, stdout


@pytest.fixture(scope="module")
def graded(built, tmp_path_factory):
    out, _, _ = built
    subs = tmp_path_factory.mktemp("submissions")
    (subs / "alice").mkdir()
    (subs / "alice" / "tiny.ipynb").write_bytes(course.autograder_notebook(out, helpers.NAME).read_bytes())
    (subs / "bob").mkdir()
    (subs / "bob" / "tiny.ipynb").write_bytes(course.student_notebook(out, helpers.NAME).read_bytes())
    (subs / "carol.ipynb").write_text("my answers are in the e-mail", encoding="utf-8")
    student = course.student_notebook(out, helpers.NAME)
    helpers.with_answer_replaced(student, subs / "dave.ipynb", "m = ", "import time\n\nwhile True:\n    time.sleep(1)")
    other = json.loads(student.read_text(encoding="utf-8"))
    other["metadata"]["otter"]["assignment_name"] = "not-an-assignment"
    (subs / "erin.ipynb").write_text(json.dumps(other), encoding="utf-8")
    (subs / ".ipynb_checkpoints").mkdir()
    (subs / ".ipynb_checkpoints" / "carol-checkpoint.ipynb").write_text("{}", encoding="utf-8")
    # Two at a time, as an instructor would: the looping submission waits out its timeout beside the others.
    argv = ["assign", "grade", str(subs), "--autograders", str(out), "--timeout", str(TIMEOUT_S), "--jobs", "2"]
    status, stdout = _main(argv)
    rows = {r["submission"]: r for r in csv.DictReader((subs / "grades" / "grades.csv").open(encoding="utf-8"))}
    record = json.loads((subs / "grades" / "grades.json").read_text(encoding="utf-8"))
    return status, stdout, rows, record


def test_build_writes_the_layout_and_the_questions(built):
    out, status, stdout = built
    assert status == 0
    folder = out / helpers.NAME
    for path in (
        folder / "student" / "tiny.ipynb",
        folder / "autograder" / "tiny.ipynb",
        folder / "autograder" / "tiny-autograder.zip",
    ):
        assert path.is_file(), path
    assert not list((folder / "autograder").glob("tiny-autograder_*.zip")), "the time-stamped zip was not renamed"
    assert json.loads((folder / "questions.json").read_text()) == helpers.QUESTIONS
    assert stdout.startswith(f"tiny: student and autograder versions in {folder} (")


def test_the_student_version_holds_no_solution_and_no_hidden_test(built):
    out, _, _ = built
    student = course.student_notebook(out, helpers.NAME).read_text(encoding="utf-8")
    instructor = course.autograder_notebook(out, helpers.NAME).read_text(encoding="utf-8")
    for secret in (*helpers.SOLUTION_LINES, helpers.MODEL_ANSWER, *helpers.HIDDEN_TESTS):
        assert secret not in student, secret
    for public in helpers.PUBLIC_TESTS:  # what grader.check runs in the student's notebook
        assert public in student, public
    for solution in (*helpers.SOLUTION_LINES, helpers.MODEL_ANSWER):
        assert solution in instructor, solution
    with zipfile.ZipFile(course.autograder_zip(out, helpers.NAME)) as archive:
        tests = archive.read("tests/q1.py").decode() + archive.read("tests/q2.py").decode()
    for test in (*helpers.PUBLIC_TESTS, *helpers.HIDDEN_TESTS):
        assert test in tests, test


def test_the_instructors_version_scores_full_marks_and_the_student_version_zero(graded):
    _, stdout, rows, _ = graded
    alice, bob = rows["alice/tiny.ipynb"], rows["bob/tiny.ipynb"]
    assert alice["status"] == bob["status"] == "graded"
    assert float(alice["q1"]) == 2.0 and float(alice["q2"]) == 3.0
    assert float(alice["autograded"]) == float(alice["autograded_possible"]) == helpers.AUTOGRADED_POINTS
    assert float(bob["q1"]) == float(bob["q2"]) == float(bob["autograded"]) == 0.0
    assert float(bob["autograded_possible"]) == helpers.AUTOGRADED_POINTS
    assert "alice/tiny.ipynb: 5.0 / 5.0 autograded (" in stdout
    assert "bob/tiny.ipynb: 0.0 / 5.0 autograded (" in stdout


def test_submissions_that_cannot_be_graded_get_a_row_and_the_others_are_graded(graded):
    status, stdout, rows, _ = graded
    assert status == 1
    assert sorted(rows) == ["alice/tiny.ipynb", "bob/tiny.ipynb", "carol.ipynb", "dave.ipynb", "erin.ipynb"]
    assert rows["carol.ipynb"]["status"] == "error" and "not a notebook" in rows["carol.ipynb"]["message"]
    assert rows["dave.ipynb"]["status"] == "timeout" and f"{TIMEOUT_S} s" in rows["dave.ipynb"]["message"]
    assert float(rows["dave.ipynb"]["seconds"]) < TIMEOUT_S + 15, "the looping submission was not stopped in time"
    erin = rows["erin.ipynb"]
    assert erin["status"] == "error" and "unknown assignment 'not-an-assignment'" in erin["message"]
    assert "graded 2 of 5 submission(s); grades in" in stdout.splitlines()[-1]


def test_grades_have_the_contracts_columns_and_an_empty_by_hand_column(graded):
    _, _, rows, record = graded
    header = ["submission", "assignment", "status", "q1", "q2", "autograded", "autograded_possible"]
    header += ["q3 (by hand, of 2)", "seconds", "message"]
    assert list(next(iter(rows.values()))) == header == record["columns"]
    assert all(r["q3 (by hand, of 2)"] == "" for r in rows.values())
    alice = next(s for s in record["submissions"] if s["submission"] == "alice/tiny.ipynb")
    assert alice["autograded"] == helpers.AUTOGRADED_POINTS and "passed" in alice["outputs"]["q1"]
    bob = next(s for s in record["submissions"] if s["submission"] == "bob/tiny.ipynb")
    assert "failed" in bob["outputs"]["q2"]


def _camstudy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common", *args], capture_output=True, text=True, timeout=120)


def test_misused_grade_exits_2_with_one_line(tmp_path, built):
    out, _, _ = built
    (tmp_path / "empty").mkdir()
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a.ipynb").write_bytes(course.student_notebook(out, helpers.NAME).read_bytes())
    (tmp_path / "no-builds").mkdir()
    cases = [
        (["nowhere"], "no such folder"),
        ([str(tmp_path / "empty")], "no submitted notebook"),
        ([str(tmp_path / "subs"), "--autograders", str(tmp_path / "no-builds")], "run `camstudy assign build` first"),
        ([str(tmp_path / "subs"), "--autograders", str(out), "--jobs", "0"], "--jobs must be a positive whole number"),
        ([str(tmp_path / "subs"), "--autograders", str(out), "--timeout", "-3"], "--timeout must be a positive"),
    ]
    for args, message in cases:
        done = _camstudy("assign", "grade", *args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("camstudy:") and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr


def test_misused_build_exits_2(tmp_path):
    source = helpers.write_source(tmp_path / "source")
    assert _main(["assign", "build", "nope", "--source", str(tmp_path / "source")])[0] == 2
    renamed = source.rename(tmp_path / "source" / "other.ipynb")
    with pytest.raises(DataError, match="its config's name is 'tiny'"):
        build.check_source(renamed)
    assert _main(["assign", "build", "--source", str(tmp_path / "nowhere")])[0] == 2


def test_questions_are_read_from_the_source_cells(tmp_path):
    source = helpers.write_source(tmp_path)
    assert [q.as_dict() for q in notebooks.questions(source)] == helpers.QUESTIONS
    cells = helpers.source_cells()
    cells[3]["source"] = "# BEGIN QUESTION\nname: q1\npoints: many"
    (tmp_path / "bad.ipynb").write_text(json.dumps({"cells": cells}), encoding="utf-8")
    with pytest.raises(DataError, match="'points:' must be a number"):
        notebooks.questions(tmp_path / "bad.ipynb")


def test_a_submission_whose_kernel_never_started_is_graded_once_more(built, tmp_path, monkeypatch):
    from common.course import grading, process

    out, _, _ = built
    submission = tmp_path / "alice.ipynb"
    submission.write_bytes(course.autograder_notebook(out, helpers.NAME).read_bytes())
    calls: list[list[str]] = []
    answers = iter(
        [
            process.Finished(1, "Traceback ...\nRuntimeError: Kernel died before replying to kernel_info", 3.0),
            process.Finished(1, "AssertionError: something in the notebook itself", 9.0),
        ]
    )

    def otter(args, cwd, timeout=None):
        calls.append(args)
        return next(answers)

    monkeypatch.setattr(grading.process, "otter", otter)
    row = grading.grade_submission(submission, tmp_path, out)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert row.status == "error" and row.message.endswith("AssertionError: something in the notebook itself")
    # Any other failure, or a timeout, is not run again.
    calls.clear()
    answers = iter([process.Finished(1, "AssertionError: a failing test", 2.0)])
    assert grading.grade_submission(submission, tmp_path, out).message.endswith("a failing test") and len(calls) == 1
    assert not grading.kernel_never_started(process.Finished(None, "Kernel didn't respond in 60 seconds", 600.0))
