"""Tests of common.report.executed: the run's parameters shown once, without the machine's paths."""

import nbformat
import pytest

from common.report import executed
from common.report.results import project_root

TEMPLATE = (
    'profile = "default"  # smoke | default | paper\n'
    "data_dir = None  # root of a real data set\n"
    "overrides = {}  # e.g. {\n"
    '#   "epochs": 3}\n'
    "output_dir = None  # folder this run writes to"
)


def _run(source: str) -> dict:
    names: dict = {}
    exec(compile(source, "<cell>", "exec"), {}, names)
    names.pop("__annotations__", None)
    return names


def test_only_the_assigned_values_change_and_the_cell_still_runs():
    values = {"profile": "smoke", "overrides": {"models": ["VGG16"], "epochs": 2}, "output_dir": "results/iqoth"}
    source = executed.with_values(TEMPLATE, values)
    assert source.splitlines()[0] == 'profile = "smoke"  # smoke | default | paper'
    assert source.splitlines()[1:4] == [
        "data_dir = None  # root of a real data set",  # not in values: as it was
        "overrides = {'models': ['VGG16'], 'epochs': 2}  # e.g. {",
        '#   "epochs": 3}',
    ]
    assert _run(source) == {**values, "data_dir": None}


def test_values_spanning_lines_non_ascii_text_and_annotations_are_replaced_whole():
    source = 'note = "Lungé"; x: int = 1\nmodels = [\n    "VGG16",\n    "ResNet50",\n]  # which\nkeep = 3'
    changed = executed.with_values(source, {"models": ["Xception"], "x": 2, "note": 'say "é"'})
    assert changed.endswith("models = ['Xception']  # which\nkeep = 3")
    assert _run(changed) == {"note": 'say "é"', "x": 2, "models": ["Xception"], "keep": 3}


def test_paths_inside_the_project_are_relative_and_others_as_given():
    assert executed.shown_path(project_root() / "results" / "iqoth", "other") == "results/iqoth"
    assert executed.shown_path("/nowhere/else", "as typed") == "as typed"


def _executed_notebook(path, output_dir: str):
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(TEMPLATE, metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell(
        f'# Parameters\nprofile = "smoke"\ndata_dir = None\noverrides = {{}}\noutput_dir = "{output_dir}"\n',
        metadata={"tags": ["injected-parameters"]},
    )
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title"), parameters, injected, nbformat.v4.new_code_cell("1")]
    notebook.metadata["papermill"] = {
        "input_path": str(project_root() / "notebooks" / "iqoth.ipynb"),
        "output_path": f"{output_dir}/iqoth.ipynb",
        "parameters": {"output_dir": output_dir},
    }
    nbformat.write(notebook, path)
    return path


def test_the_injected_cell_is_hidden_and_no_cell_or_record_keeps_the_temporary_folder(tmp_path):
    running = str(tmp_path / "results" / ".running-iqoth-123")
    notebook_file = _executed_notebook(tmp_path / "iqoth.ipynb", running)
    shown = {"profile": "smoke", "data_dir": None, "overrides": {}, "output_dir": "results/iqoth"}
    executed.tidy_parameters(notebook_file, shown, "results/iqoth/iqoth.ipynb")
    notebook = nbformat.read(notebook_file, as_version=4)
    parameters, injected = notebook.cells[1], notebook.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert parameters.metadata["tags"] == ["parameters"]  # shown in the page
    assert _run(parameters.source) == shown == _run(injected.source)
    text = nbformat.writes(notebook)
    assert ".running-" not in text and str(tmp_path) not in text and str(project_root()) not in text
    assert notebook.metadata["papermill"]["input_path"] == "notebooks/iqoth.ipynb"
    # Tidying again changes nothing (papermill re-tags a fresh injected cell on a rerun).
    executed.tidy_parameters(notebook_file, shown, "results/iqoth/iqoth.ipynb")
    assert nbformat.read(notebook_file, as_version=4) == notebook


@pytest.mark.notebook("iqoth")
def test_a_smoke_runs_page_shows_its_parameters_once_without_machine_paths(smoke_results):
    record = smoke_results("iqoth")
    notebook = nbformat.read(record["dir"] / "iqoth.ipynb", as_version=4)
    shown = [cell for cell in notebook.cells if "remove-cell" not in cell.metadata.get("tags", [])]
    hidden = [cell for cell in notebook.cells if "remove-cell" in cell.metadata.get("tags", [])]
    assert [cell.metadata["tags"] for cell in hidden] == [["injected-parameters", "remove-cell"]]
    parameters = next(cell for cell in shown if "parameters" in cell.metadata.get("tags", []))
    values = _run(parameters.source)
    assert values["profile"] == "smoke" and values["data_dir"] is None
    # The results folder is a temporary one outside the project: shown by its name, not its path.
    assert values["output_dir"] == f"{record['dir'].parent.name}/iqoth"
    for text in (parameters.source, str(notebook.metadata["papermill"])):
        assert ".running-" not in text and str(record["dir"].parent) not in text and "/work" not in text
    assert (record["dir"] / "run.log").stat().st_size > 0
