"""Course assignments made and graded with otter-grader (``camstudy assign build`` / ``camstudy assign grade``).

A source notebook ``assignments/NAME.ipynb`` (otter's "v1" format: solutions and
public and hidden tests in) is built by ``otter assign`` into a student version
(solutions and hidden tests removed; ``grader.check("q1")`` runs the public tests)
and an autograder; a folder of submitted notebooks is graded one by one by
``otter run``, offline and without Docker, into ``grades.csv`` and ``grades.json``.

Modules:
    notebooks: a marked-up notebook read as JSON (:class:`Question`, :func:`questions`).
    process: otter run in a subprocess with a timeout that also ends its kernel.
    build: ``otter assign`` per source notebook and the built layout (:func:`build_assignments`,
        :class:`BuiltAssignment`, :func:`autograder_zip`, ...).
    grading: ``otter run`` per submission (:func:`grade_folder`, :func:`grade_submission`,
        :class:`GradedSubmission`, :class:`GradeReport`).
    gradebook: the grades' table, written as CSV and JSON.

Importing this package imports neither otter nor nbformat (whose imports take seconds).
"""

from __future__ import annotations

from common.course.build import (
    BuiltAssignment,
    autograder_notebook,
    autograder_zip,
    build_assignment,
    build_assignments,
    default_out_dir,
    default_source_dir,
    describe_build,
    questions_file,
    student_notebook,
)
from common.course.grading import (
    DEFAULT_TIMEOUT_S,
    GradedSubmission,
    GradeReport,
    describe_report,
    describe_submission,
    grade_folder,
    grade_submission,
)
from common.course.notebooks import Question, questions

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "BuiltAssignment",
    "GradeReport",
    "GradedSubmission",
    "Question",
    "autograder_notebook",
    "autograder_zip",
    "build_assignment",
    "build_assignments",
    "default_out_dir",
    "default_source_dir",
    "describe_build",
    "describe_report",
    "describe_submission",
    "grade_folder",
    "grade_submission",
    "questions",
    "questions_file",
    "student_notebook",
]
