"""An executed notebook as a reader sees it: the run's parameters once, without the machine's paths.

papermill adds a cell tagged ``injected-parameters`` after the template's
``parameters`` cell, with the values it passed, among them the temporary
folder the run wrote to (``.../results/.running-<id>-<pid>``). After a run,
:func:`tidy_parameters` tags that cell ``remove-cell`` (Jupyter Book leaves it
out of the page) and writes the values the run used into the template's
cell, the one the page shows, as a reader would pass them: paths inside the
project relative to it, the results folder as ``results/<id>``. The cells stay
plain assignments, so the notebook runs again with papermill as it is.

Example:
    >>> with_values('profile = "default"  # smoke | default | paper', {"profile": "smoke"})
    'profile = "smoke"  # smoke | default | paper'
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from common.report.results import project_root

INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
HIDDEN_TAG = "remove-cell"


def shown_path(path: str | Path, otherwise: str) -> str:
    """A path as the book shows it: relative to the project when inside it, else ``otherwise``.

    Args:
        path: An absolute path.
        otherwise: What to show for a path outside the project (no machine path:
            what the user typed, or a name).
    """
    try:
        return Path(path).resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return otherwise


def literal(value: Any) -> str:
    """``value`` as Python source; strings in double quotes, as the templates write them."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def with_values(source: str, values: Mapping[str, Any]) -> str:
    """Return ``source`` with the value of each top-level assignment to a name in ``values`` replaced.

    Only the assigned expression changes; comments and every other line stay.

    Args:
        source: A parameters cell's code.
        values: ``{name: value}``; a name ``source`` does not assign is ignored.
    """
    data = source.encode("utf-8")  # ast's column offsets count UTF-8 bytes
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits = []
    for node in ast.parse(source).body:
        name = _assigned_name(node)
        if name in values:
            value = node.value
            begin = starts[value.lineno - 1] + value.col_offset
            end = starts[value.end_lineno - 1] + value.end_col_offset
            edits.append((begin, end, literal(values[name]).encode("utf-8")))
    for begin, end, text in reversed(edits):
        data = data[:begin] + text + data[end:]
    return data.decode("utf-8")


def _assigned_name(node: ast.stmt) -> str | None:
    """The one name a statement assigns a value to (``x = ...``, ``x: T = ...``); None for anything else."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def tidy_parameters(notebook_file: Path, shown: Mapping[str, Any], notebook_shown: str) -> None:
    """Hide the injected-parameters cell and show the run's values in the parameters cell, in place.

    Args:
        notebook_file: The executed notebook, rewritten in place.
        shown: ``{parameter: value as the page shows it}`` (no machine paths).
        notebook_shown: Where the executed notebook is, as the page may show it
            (papermill's record of its own output path).
    """
    notebook = nbformat.read(notebook_file, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or not {INJECTED_TAG, PARAMETERS_TAG} & set(tags):
            continue
        cell.source = with_values(cell.source, shown)
        if INJECTED_TAG in tags and HIDDEN_TAG not in tags:
            cell.metadata["tags"] = [*tags, HIDDEN_TAG]
    record = notebook.metadata.get("papermill")
    if record is not None:
        record["parameters"] = dict(shown)
        record["input_path"] = shown_path(record.get("input_path", ""), Path(record.get("input_path", "")).name)
        record["output_path"] = notebook_shown
    nbformat.write(notebook, notebook_file)
