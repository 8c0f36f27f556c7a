"""Otter's marked-up notebooks read as plain JSON: the assignment's config, its questions, a submission's name.

A source notebook is in otter-grader's "v1" format: a raw cell ``# ASSIGNMENT CONFIG``
followed by YAML, and per question a raw cell ``# BEGIN QUESTION`` followed by YAML
(``name``, ``points``, ``manual``). A notebook otter writes records its assignment in
``metadata.otter.assignment_name``. The notebooks are read with :mod:`json`, not
nbformat, whose import alone takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.errors import DataError

CONFIG_MARK = "# ASSIGNMENT CONFIG"
QUESTION_MARK = "# BEGIN QUESTION"


@dataclass(frozen=True)
class Question:
    """One question of an assignment, as its ``# BEGIN QUESTION`` cell declares it.

    Attributes:
        name: The question's name (``q1``), also the name of its tests.
        points: What it is worth (a list of per-test points summed; otter's default of 1 when not given).
        manual: Whether it is graded by hand (a written answer) rather than by its tests.
    """

    name: str
    points: float
    manual: bool

    def as_dict(self) -> dict:
        """The question as ``questions.json`` records it."""
        return {"name": self.name, "points": self.points, "manual": self.manual}

    @classmethod
    def from_dict(cls, record: dict) -> Question:
        """The question :meth:`as_dict` wrote."""
        return cls(str(record["name"]), float(record["points"]), bool(record["manual"]))


def read_notebook(path: Path) -> dict:
    """Return a notebook file's JSON.

    Raises:
        DataError: the file is not JSON, or not a notebook (no list of cells).
    """
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a notebook ({one_line(exc)})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise DataError(f"{path}: not a notebook (no list of cells)")
    return notebook


def assignment_config(path: Path, notebook: dict | None = None) -> dict:
    """Return the YAML of a source notebook's single ``# ASSIGNMENT CONFIG`` cell.

    Raises:
        DataError: no such cell, several, or YAML that is not a mapping with a ``name``.
    """
    blocks = _raw_blocks(path, notebook or read_notebook(path), CONFIG_MARK)
    if len(blocks) != 1:
        raise DataError(f"{path}: expected one raw cell starting {CONFIG_MARK!r}, found {len(blocks)}")
    if not blocks[0].get("name"):
        raise DataError(f"{path}: the {CONFIG_MARK!r} cell gives no 'name:'")
    return blocks[0]


def questions(path: Path, notebook: dict | None = None) -> list[Question]:
    """Return a source notebook's questions, in order, from its ``# BEGIN QUESTION`` cells.

    Raises:
        DataError: a question without a name, with a repeated name, or with points that are not
            a number or a list of numbers.
    """
    found: list[Question] = []
    for block in _raw_blocks(path, notebook or read_notebook(path), QUESTION_MARK):
        name = block.get("name")
        if not name:
            raise DataError(f"{path}: a {QUESTION_MARK!r} cell gives no 'name:'")
        if any(q.name == name for q in found):
            raise DataError(f"{path}: two questions are named {name!r}")
        found.append(Question(str(name), _points(path, name, block.get("points")), bool(block.get("manual", False))))
    return found


def submission_assignment(notebook: dict) -> str | None:
    """The assignment otter recorded in a notebook it wrote (``metadata.otter.assignment_name``), if any."""
    otter = notebook.get("metadata", {}).get("otter")
    name = otter.get("assignment_name") if isinstance(otter, dict) else None
    return str(name) if name else None


def _points(path: Path, question: str, points) -> float:
    """A question's points as one number: otter's default of 1, a number, or a list of per-test points summed."""
    if points is None:
        return 1.0
    if isinstance(points, bool):
        points = None  # YAML's yes/no: not a number
    elif isinstance(points, (int, float)):
        return float(points)
    elif isinstance(points, list) and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in points):
        return float(sum(points))
    raise DataError(f"{path}: question {question!r}: 'points:' must be a number or a list of numbers, not {points!r}")


def _raw_blocks(path: Path, notebook: dict, mark: str) -> list[dict]:
    """The YAML below ``mark`` of every raw cell whose first line is ``mark``."""
    blocks = []
    for cell in notebook["cells"]:
        text = cell_text(cell).strip()
        if cell.get("cell_type") != "raw" or text.splitlines()[0].rstrip() != mark:
            continue
        try:
            block = yaml.safe_load(text[len(mark) :]) or {}
        except yaml.YAMLError as exc:
            raise DataError(f"{path}: the YAML of a {mark!r} cell does not parse ({one_line(exc)})") from None
        if not isinstance(block, dict):
            raise DataError(f"{path}: the YAML of a {mark!r} cell is not a mapping of keys to values")
        blocks.append(block)
    return blocks


def cell_text(cell: dict) -> str:
    """A cell's source as one string (notebook files store it as a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def one_line(text: object) -> str:
    """``text`` (or an exception's message) on one line, its whitespace runs made single spaces."""
    return " ".join(str(text).split())
