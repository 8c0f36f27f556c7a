"""``camstudy assign build``: the student and autograder versions of each source notebook, made by ``otter assign``.

Layout of one built assignment ``NAME`` in the output folder::

    NAME/student/NAME.ipynb                  handed out: no solution, no hidden test
    NAME/autograder/NAME.ipynb               the instructor's version, solutions in
    NAME/autograder/NAME-autograder.zip      what ``otter run`` grades a submission with
    NAME/questions.json                      [{"name": "q1", "points": 2.0, "manual": false}, ...]
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.course import notebooks, process
from common.course.notebooks import Question
from common.errors import DataError, ParameterError


def default_source_dir() -> Path:
    """The source notebooks' folder: ``assignments/`` in the project."""
    from common.report.results import project_root

    return project_root() / "assignments"


def default_out_dir() -> Path:
    """Where built assignments go (and where grading finds the autograders): ``_build/assignments/``."""
    from common.report.results import project_root

    return project_root() / "_build" / "assignments"


def student_notebook(out_dir: Path, name: str) -> Path:
    """The student version of assignment ``name`` built in ``out_dir``."""
    return Path(out_dir) / name / "student" / f"{name}.ipynb"


def autograder_notebook(out_dir: Path, name: str) -> Path:
    """The instructor's version (solutions in) of assignment ``name`` built in ``out_dir``."""
    return Path(out_dir) / name / "autograder" / f"{name}.ipynb"


def autograder_zip(out_dir: Path, name: str) -> Path:
    """The autograder ``otter run`` grades submissions of ``name`` with."""
    return Path(out_dir) / name / "autograder" / f"{name}-autograder.zip"


def questions_file(out_dir: Path, name: str) -> Path:
    """The questions of assignment ``name``, as its build recorded them."""
    return Path(out_dir) / name / "questions.json"


def read_built_questions(out_dir: Path, name: str) -> list[Question]:
    """The questions a build of ``name`` recorded in ``questions.json``."""
    records = json.loads(questions_file(out_dir, name).read_text(encoding="utf-8"))
    return [Question.from_dict(record) for record in records]


def built_names(out_dir: Path) -> list[str]:
    """The assignments built in ``out_dir`` (those with an autograder zip and ``questions.json``), sorted."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    names = (d.name for d in folder.iterdir() if d.is_dir())
    return sorted(n for n in names if autograder_zip(folder, n).is_file() and questions_file(folder, n).is_file())


@dataclass(frozen=True)
class BuiltAssignment:
    """One source notebook after ``otter assign``.

    Attributes:
        name: The assignment's name (the source notebook's stem and its config's ``name:``).
        source: The source notebook.
        out_dir: The output folder holding ``name/``.
        questions: Its questions, in order.
        seconds: Wall time of ``otter assign``.
        error: ``None`` when built; otherwise one line naming the assignment, then the end of otter's output.
    """

    name: str
    source: Path
    out_dir: Path
    questions: tuple[Question, ...]
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether both versions were written."""
        return self.error is None

    @property
    def folder(self) -> Path:
        """``OUT/NAME``."""
        return Path(self.out_dir) / self.name

    @property
    def student(self) -> Path:
        """The student version."""
        return student_notebook(self.out_dir, self.name)

    @property
    def autograder(self) -> Path:
        """The instructor's version."""
        return autograder_notebook(self.out_dir, self.name)

    @property
    def zip(self) -> Path:
        """The autograder zip."""
        return autograder_zip(self.out_dir, self.name)


def source_notebooks(source_dir: Path, names: list[str] | None = None) -> list[Path]:
    """The source notebooks to build: every ``*.ipynb`` in ``source_dir``, or those named, sorted.

    Raises:
        DataError: ``source_dir`` is not a folder or holds no notebook.
        ParameterError: a name with no ``NAME.ipynb`` in ``source_dir`` (the message lists the known ones).
    """
    folder = Path(source_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of source notebooks")
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb")) if p.is_file()}
    if not found:
        raise DataError(f"{folder}: no source notebook (*.ipynb) in it")
    unknown = [n for n in names or [] if n not in found]
    if unknown:
        raise ParameterError(f"Unknown assignment(s) {', '.join(unknown)}; {folder} has {', '.join(found)}")
    return [found[n] for n in sorted(set(names))] if names else list(found.values())


def check_source(source: Path) -> list[Question]:
    """Check a source notebook before otter sees it and return its questions.

    Raises:
        DataError: it is not a notebook, its config is missing or names another assignment than its
            file's stem, or its questions do not parse.
    """
    notebook = notebooks.read_notebook(source)
    name = str(notebooks.assignment_config(source, notebook)["name"])
    if name != source.stem:
        raise DataError(f"{source}: its config's name is {name!r}; rename the file or the config to match")
    found = notebooks.questions(source, notebook)
    if not found:
        raise DataError(f"{source}: no {notebooks.QUESTION_MARK!r} cell")
    return found


def build_assignment(source: Path, out_dir: Path, check: bool = True) -> BuiltAssignment:
    """Build one source notebook with ``otter assign`` into ``out_dir/NAME/`` (replacing an earlier build).

    Args:
        source: The source notebook (solutions and tests in).
        out_dir: The output folder.
        check: Let otter run the tests against the solutions (``--no-run-tests`` when false).

    Returns:
        The built assignment; its ``error`` is set when otter failed (the others can still be built).
    """
    source = Path(source).resolve()
    return _build_checked(source, check_source(source), Path(out_dir).resolve(), check)


def _build_checked(source: Path, questions: list[Question], out_dir: Path, check: bool) -> BuiltAssignment:
    """:func:`build_assignment` of a source whose questions :func:`check_source` has read."""
    name = source.stem
    folder = out_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    args = ["assign", str(source), str(folder), "--no-pdfs", *([] if check else ["--no-run-tests"])]
    done = process.otter(args, cwd=source.parent)
    error: str | None
    if done.returncode != 0:
        error = f"{name}: otter assign failed (exit status {done.returncode}); the end of its output:\n{done.tail()}"
    else:
        error = _settle_outputs(out_dir, name)
    if error is None:
        questions_file(out_dir, name).write_text(json.dumps([q.as_dict() for q in questions], indent=2) + "\n")
    return BuiltAssignment(name, source, out_dir, tuple(questions), done.seconds, error)


def _settle_outputs(out_dir: Path, name: str) -> str | None:
    """Give otter's time-stamped autograder zip its stable name; the error when an output is missing."""
    target = autograder_zip(out_dir, name)
    stamped = sorted(target.parent.glob(f"{name}-autograder_*.zip"))
    if len(stamped) != 1:
        return f"{name}: otter assign wrote {len(stamped)} autograder zips in {target.parent}, expected one"
    stamped[0].replace(target)
    missing = [str(p) for p in (student_notebook(out_dir, name), autograder_notebook(out_dir, name)) if not p.is_file()]
    return f"{name}: otter assign did not write {', '.join(missing)}" if missing else None


def build_assignments(
    names: list[str] | None = None,
    source_dir: Path | None = None,
    out_dir: Path | None = None,
    check: bool = True,
    on_built: Callable[[BuiltAssignment], None] | None = None,
) -> list[BuiltAssignment]:
    """Build the source notebooks (all, or those named), one ``otter assign`` at a time.

    Every source notebook is checked (:func:`check_source`) before the first is built.

    Args:
        names: Assignments to build (source notebook stems); ``None`` or empty for all.
        source_dir: Folder of source notebooks (default :func:`default_source_dir`).
        out_dir: Output folder (default :func:`default_out_dir`).
        check: Let otter run the tests against the solutions.
        on_built: Called with each assignment as soon as it is built (or failed).

    Returns:
        One :class:`BuiltAssignment` per source notebook, in name order.

    Raises:
        DataError, ParameterError: see :func:`source_notebooks` and :func:`check_source`.
    """
    checked = [
        (source.resolve(), check_source(source))
        for source in source_notebooks(source_dir or default_source_dir(), names)
    ]
    out_dir = Path(out_dir or default_out_dir()).resolve()
    results = []
    for source, questions in checked:
        results.append(_build_checked(source, questions, out_dir, check))
        if on_built:
            on_built(results[-1])
    return results


def describe_build(built: BuiltAssignment) -> str:
    """The terminal line of a built assignment (its error when it failed)."""
    if built.error:
        return built.error
    return f"{built.name}: student and autograder versions in {built.folder} ({built.seconds:.0f} s)"
