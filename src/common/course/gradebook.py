"""The grades of a folder of submissions: ``grades.csv`` to read and fill in, ``grades.json`` with the test outputs.

Columns, in order: ``submission``, ``assignment``, ``status``, one per autograded
question (its score), ``autograded`` (their sum), ``autograded_possible``, one
empty column per question graded by hand (``q3 (by hand, of 2)``, for the
instructor to fill in), ``seconds`` and ``message``. Submissions of several
assignments share one table: the question columns are the union of theirs, in
the order first met, and a question a submission's assignment lacks is left empty.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from common.course.notebooks import Question

if TYPE_CHECKING:
    from common.course.grading import GradedSubmission

CSV_NAME, JSON_NAME = "grades.csv", "grades.json"


def manual_header(question: Question) -> str:
    """The header of the column a question graded by hand is filled in: ``q3 (by hand, of 2)``."""
    return f"{question.name} (by hand, of {question.points:g})"


def columns(submissions: list[GradedSubmission]) -> list[str]:
    """The table's header for these submissions (see the module's docstring)."""
    autograded: dict[str, None] = {}
    manual: dict[str, None] = {}
    for graded in submissions:
        autograded.update(dict.fromkeys(graded.scores))
        manual.update(dict.fromkeys(manual_header(q) for q in graded.manual))
    return [
        "submission",
        "assignment",
        "status",
        *autograded,
        "autograded",
        "autograded_possible",
        *manual,
        "seconds",
        "message",
    ]


def row(graded: GradedSubmission) -> dict:
    """One submission's cells by column (absent columns are empty; by-hand columns are ``None``)."""
    return {
        "submission": graded.submission,
        "assignment": graded.assignment,
        "status": graded.status,
        **graded.scores,
        "autograded": graded.autograded,
        "autograded_possible": graded.autograded_possible,
        **{manual_header(q): None for q in graded.manual},
        "seconds": round(graded.seconds, 1),
        "message": graded.message,
    }


def write(submissions: list[GradedSubmission], out_dir: Path) -> tuple[Path, Path]:
    """Write ``grades.csv`` and ``grades.json`` (each row plus its questions' test outputs) into ``out_dir``.

    Returns:
        The two files' paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = columns(submissions)
    rows = [row(graded) for graded in submissions]
    csv_path = out_dir / CSV_NAME
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    records = [{**r, "outputs": graded.outputs} for r, graded in zip(rows, submissions, strict=True)]
    json_path = out_dir / JSON_NAME
    json_path.write_text(json.dumps({"columns": header, "submissions": records}, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path
