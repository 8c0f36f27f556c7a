"""A tiny otter assignment of the course tests: numpy only, so each otter call takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "tiny"
# Text that must reach only the instructor: solution lines, the written model answer, the hidden tests.
SOLUTION_LINES = ("float(np.mean(values))", "return x * x")
MODEL_ANSWER = "The mean weighs every value equally"
HIDDEN_TESTS = ("m == 2.0", "square(-3) == 9")
PUBLIC_TESTS = ("isinstance(m, float)", "square(2) == 4")
# q1 is worth 2, q2 1 + 2 (points per test case), q3 is written and worth 2.
QUESTIONS = [
    {"name": "q1", "points": 2.0, "manual": False},
    {"name": "q2", "points": 3.0, "manual": False},
    {"name": "q3", "points": 2.0, "manual": True},
]
AUTOGRADED_POINTS = 5.0


def _raw(text: str) -> dict:
    return {"cell_type": "raw", "metadata": {}, "source": text}


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}


def _autograded(name: str, points: str, prompt: str, solution: str, public: str, hidden: str) -> list[dict]:
    """The cells of one autograded question with one public and one hidden test (doctest-style asserts)."""
    return [
        _raw(f"# BEGIN QUESTION\nname: {name}\npoints: {points}"),
        _markdown(prompt),
        _raw("# BEGIN SOLUTION"),
        _code(solution),
        _raw("# END SOLUTION"),
        _raw("# BEGIN TESTS"),
        _code(f"assert {public}"),
        _code(f'""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\nassert {hidden}'),
        _raw("# END TESTS"),
        _raw("# END QUESTION"),
    ]


def source_cells() -> list[dict]:
    """The source notebook's cells: config, two autograded questions and one written question."""
    config = "# ASSIGNMENT CONFIG\nname: tiny\nexport_cell: false\ncheck_all_cell: false\ngenerate: true\n"
    return [
        _raw(config + "requirements: null\nsave_environment: false\n"),
        _markdown("# A tiny assignment"),
        _code("import numpy as np\n\nvalues = [1, 2, 3]"),
        *_autograded(
            "q1", "2", "Put the average of `values` into `m`.", "m = float(np.mean(values))  # SOLUTION", *_pair(0)
        ),
        *_autograded("q2", "[1, 2]", "Write `square(x)`.", "def square(x):\n    return x * x  # SOLUTION", *_pair(1)),
        _raw("# BEGIN QUESTION\nname: q3\nmanual: true\npoints: 2"),
        _markdown("Why is the average a fair summary here?"),
        _raw("# BEGIN SOLUTION"),
        _markdown(f"{MODEL_ANSWER}, and the values have no outlier."),
        _raw("# END SOLUTION"),
        _raw("# END QUESTION"),
    ]


def _pair(index: int) -> tuple[str, str]:
    return PUBLIC_TESTS[index], HIDDEN_TESTS[index]


def write_source(folder: Path) -> Path:
    """Write ``folder/tiny.ipynb`` (kernel ``camstudy``, which ``make install`` registers) and return it."""
    notebook = {
        "cells": source_cells(),
        "metadata": {"kernelspec": {"name": "camstudy", "display_name": "camstudy", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.ipynb"
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def with_answer_replaced(notebook_path: Path, target: Path, starts: str, code: str) -> Path:
    """Copy a notebook to ``target`` with the code cell starting ``starts`` replaced by ``code``."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).startswith(starts)]
    assert len(cells) == 1, f"expected one code cell starting {starts!r} in {notebook_path}"
    cells[0]["source"] = code
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook), encoding="utf-8")
    return target
