"""The course's five assignments (``assignments/*.ipynb``), built and graded as an instructor would.

Each assignment is built into its student and autograder versions (otter's
own check of the solutions is left to the grading below), and two synthetic
submissions of each are graded: the instructor's version, with the solutions,
must get full marks; the student version, unchanged, must get zero on every
autograded question without stopping the grader. The full-marks gradings run
each assignment's smoke-profile experiment, so grading takes a few minutes:
the build and the grading run through ``camstudy assign`` as a background job
of the session (:func:`tests.background_jobs.grade_assignments`), two
submissions at a time, while the other late tests run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from common import course
from common.course.build import read_built_questions
from common.course.notebooks import cell_text, read_notebook
from tests.background_jobs import Grade

pytestmark = [pytest.mark.late, pytest.mark.background("assignments")]

SOURCE = Path(__file__).resolve().parents[2] / "assignments"
NAMES = sorted(path.stem for path in SOURCE.glob("*.ipynb"))
# Lines too generic to count as giving a solution away when they appear in a student notebook.
GENERIC = re.compile(r"^(\.\.\.|#.*|\"\"\"|[()\[\]{},]*|return|pass|else:|try:|\w+, \w+(, \w+)*)$")


def _secret_lines(source: Path) -> tuple[set[str], set[str]]:
    """Lines only the instructor may see: (solution lines and model answers, hidden-test lines)."""
    solutions: set[str] = set()
    hidden: set[str] = set()
    in_solution = in_tests = False
    for cell in read_notebook(source)["cells"]:
        text = cell_text(cell)
        if cell["cell_type"] == "raw":
            marker = text.strip()
            in_solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(marker, in_solution)
            in_tests = {"# BEGIN TESTS": True, "# END TESTS": False}.get(marker, in_tests)
            continue
        if in_tests and text.startswith("# HIDDEN"):  # otter's mark of a hidden test
            hidden.update(text.splitlines()[1:])
        elif in_solution and cell["cell_type"] == "markdown":
            solutions.update(text.splitlines())
        elif in_solution:
            solutions.update(_solution_lines(text))
    clean = {line.strip() for line in solutions if not GENERIC.match(line.strip())}
    return clean, {line.strip() for line in hidden if not GENERIC.match(line.strip())}


def _solution_lines(code: str) -> list[str]:
    """The lines otter replaces in a solution cell: ``# BEGIN/END SOLUTION`` blocks and ``# SOLUTION`` lines."""
    lines, inside = [], False
    for line in code.splitlines():
        if line.strip() == "# BEGIN SOLUTION":
            inside = True
        elif line.strip() == "# END SOLUTION":
            inside = False
        elif inside or line.rstrip().endswith("# SOLUTION"):
            lines.append(line)
    return lines


@pytest.fixture(scope="module")
def built(smoke_results) -> Path:
    return smoke_results.job("assignments").built


@pytest.fixture(scope="module")
def graded(smoke_results) -> dict[tuple[str, str], Grade]:
    return smoke_results.job("assignments").grades


def test_there_are_five_assignments_one_per_experiment():
    experiments = set()
    for name in NAMES:
        first = cell_text(read_notebook(SOURCE / f"{name}.ipynb")["cells"][1])
        experiments.update(re.findall(r"Experiment: `([a-z0-9-]+)`", first))
    assert len(NAMES) == 5
    assert experiments == {"resnet50-gradcam", "nine-models", "multi-organ", "iqoth", "gradcam-3d"}


@pytest.mark.parametrize("name", NAMES)
def test_each_has_three_autograded_questions_and_a_written_one(built, name):
    questions = read_built_questions(built, name)
    assert sum(not q.manual for q in questions) >= 3
    assert sum(q.manual for q in questions) >= 1


@pytest.mark.parametrize("name", NAMES)
def test_the_student_version_gives_away_no_solution_and_no_hidden_test(built, name):
    solutions, hidden = _secret_lines(SOURCE / f"{name}.ipynb")
    assert len(solutions) >= 8 and len(hidden) >= 6  # the check below has something to find
    student = read_notebook(course.student_notebook(built, name))
    metadata = json.dumps(student["metadata"], ensure_ascii=False)  # the public tests live here
    assert not solutions & _lines(student)
    assert not hidden & _lines(student)
    assert not [line for line in hidden if line in metadata]
    instructor = read_notebook(course.autograder_notebook(built, name))
    assert solutions <= _lines(instructor)


def _lines(notebook: dict) -> set[str]:
    return {line.strip() for cell in notebook["cells"] for line in cell_text(cell).splitlines()}


@pytest.mark.parametrize("name", NAMES)
def test_the_solutions_get_full_marks(graded, name):
    result = graded["solutions", name]
    assert result.status == "graded", result.message
    assert result.autograded == result.autograded_possible > 0, result.outputs


@pytest.mark.parametrize("name", NAMES)
def test_an_unchanged_student_version_gets_zero_without_stopping_the_grader(graded, name):
    result = graded["unchanged", name]
    assert result.status == "graded", result.message
    assert set(result.scores) == set(graded["solutions", name].scores)
    assert result.autograded == 0, {q: s for q, s in result.scores.items() if s}
