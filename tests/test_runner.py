"""Tests of common.runner: papermill runs never lose earlier results."""

import json

import nbformat
import pytest

from common import runner
from common.errors import DataError, ParameterError


def _notebook(path, body):
    """A minimal experiment notebook: the parameters cell and one cell of ``body``."""
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\ndata_dir = None\noverrides = {}\noutput_dir = None')
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [params, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


WRITES_METRICS = (
    "import json, pathlib\n"
    "pathlib.Path(output_dir, 'metrics.json').write_text(\n"
    "    json.dumps({'profile': profile, 'epochs': overrides.get('epochs')}))"
)


@pytest.fixture
def fake_notebooks(tmp_path, monkeypatch):
    """Point the runner at tiny notebooks instead of the experiments' real ones."""
    notebooks = {
        "ok": _notebook(tmp_path / "ok.ipynb", WRITES_METRICS),
        "fails": _notebook(tmp_path / "fails.ipynb", "raise RuntimeError('training diverged')"),
    }
    current = {"name": "ok"}
    monkeypatch.setattr(runner, "notebook_path", lambda experiment_id: notebooks[current["name"]])
    return current


def test_a_finished_run_replaces_the_results_and_passes_parameters(tmp_path, fake_notebooks):
    outcome = runner.run_experiment("iqoth", "smoke", overrides={"epochs": 2}, results_dir=tmp_path / "results")
    assert outcome.ok
    written = json.loads((tmp_path / "results" / "iqoth" / "metrics.json").read_text())
    assert written == {"profile": "smoke", "epochs": 2}
    assert (tmp_path / "results" / "iqoth" / "iqoth.ipynb").exists()
    assert not list((tmp_path / "results").glob(".running-*"))


def test_a_relative_results_folder_is_the_callers_not_the_kernels(tmp_path, fake_notebooks, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    outcome = runner.run_experiment("iqoth", "smoke", results_dir="rel")
    assert outcome.ok and outcome.output_dir == elsewhere / "rel" / "iqoth"
    assert json.loads((elsewhere / "rel" / "iqoth" / "metrics.json").read_text())["profile"] == "smoke"


def test_a_failed_run_keeps_the_previous_results_and_the_failed_notebook(tmp_path, fake_notebooks):
    results = tmp_path / "results"
    assert runner.run_experiment("iqoth", "smoke", results_dir=results).ok
    before = (results / "iqoth" / "metrics.json").read_text()
    fake_notebooks["name"] = "fails"
    outcome = runner.run_experiment("iqoth", "smoke", results_dir=results)
    assert not outcome.ok
    assert "training diverged" in outcome.error
    assert (results / "iqoth" / "metrics.json").read_text() == before
    failed = nbformat.read(results / "iqoth" / "failed" / "iqoth.ipynb", as_version=4)
    assert "papermill-error-cell-tag" in json.dumps(failed.cells[0])  # the error shows at the top


def test_earlier_failures_are_kept_by_time_and_a_success_keeps_the_history(tmp_path, fake_notebooks):
    results = tmp_path / "results"
    fake_notebooks["name"] = "fails"
    first = runner.run_experiment("iqoth", "smoke", results_dir=results)
    second = runner.run_experiment("iqoth", "smoke", results_dir=results)
    assert first.notebook == second.notebook == results / "iqoth" / "failed" / "iqoth.ipynb"
    history = sorted(path.name for path in (results / "iqoth" / "failed").iterdir())
    assert len(history) == 4 and history[-2:] == ["iqoth.ipynb", "iqoth.log"] and history[0].startswith("iqoth-")
    assert history[0].removesuffix(".ipynb") == history[1].removesuffix(".log")  # each notebook beside its log
    fake_notebooks["name"] = "ok"
    assert runner.run_experiment("iqoth", "smoke", results_dir=results).ok
    assert sorted(path.name for path in (results / "iqoth" / "failed").iterdir()) == history
    assert (results / "iqoth" / "metrics.json").is_file()


def test_run_all_continues_after_a_failure_and_reports_it(tmp_path, fake_notebooks):
    fake_notebooks["name"] = "fails"
    outcomes = runner.run_all("smoke", results_dir=tmp_path, experiments=["iqoth", "multi-organ"], progress_bar=False)
    assert [o.experiment for o in outcomes] == ["iqoth", "multi-organ"]
    assert not any(o.ok for o in outcomes)


def test_run_all_runs_notebooks_at_once_and_reports_them_in_the_order_asked(tmp_path, monkeypatch):
    notebooks = {
        "iqoth": _notebook(tmp_path / "ok.ipynb", WRITES_METRICS),
        "multi-organ": _notebook(tmp_path / "fails.ipynb", "raise RuntimeError('training diverged')"),
        "gradcam-3d": _notebook(tmp_path / "ok2.ipynb", WRITES_METRICS),
    }
    monkeypatch.setattr(runner, "notebook_path", lambda experiment_id: notebooks[experiment_id])
    outcomes = runner.run_all(
        "smoke", results_dir=tmp_path / "results", experiments=list(notebooks), progress_bar=False, jobs=2
    )
    assert [(o.experiment, o.ok) for o in outcomes] == [("iqoth", True), ("multi-organ", False), ("gradcam-3d", True)]
    assert "training diverged" in outcomes[1].error
    for experiment_id in ("iqoth", "gradcam-3d"):
        assert json.loads((tmp_path / "results" / experiment_id / "metrics.json").read_text())["profile"] == "smoke"
    with pytest.raises(ParameterError, match="jobs"):
        runner.run_all("smoke", results_dir=tmp_path / "results", experiments=["iqoth"], jobs=0)


def test_bad_names_and_folders_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ParameterError, match="Unknown experiment"):
        runner.run_experiment("nope", results_dir=tmp_path)
    with pytest.raises(ParameterError, match="expects an integer"):
        runner.run_experiment("iqoth", "smoke", overrides={"epochs": "abc"}, results_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        runner.run_experiment("iqoth", "smoke", data_dir=tmp_path / "missing", results_dir=tmp_path)


def test_every_run_is_logged_with_its_wall_time(tmp_path, fake_notebooks):
    from common.report.results import read_run_log

    runner.run_experiment("iqoth", "smoke", results_dir=tmp_path)
    fake_notebooks["name"] = "fails"
    runner.run_experiment("iqoth", "smoke", results_dir=tmp_path)
    log = read_run_log(tmp_path)
    assert [(e["experiment"], e["profile"], e["ok"]) for e in log] == [
        ("iqoth", "smoke", True),
        ("iqoth", "smoke", False),
    ]
    assert all(e["wall_time_s"] > 0 for e in log)


def test_notebooks_show_figures_even_when_the_parent_chose_a_file_only_backend(tmp_path, monkeypatch):
    # importing Streamlit sets MPLBACKEND=Agg; a kernel inheriting it would produce no images
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plots = _notebook(tmp_path / "plots.ipynb", "import matplotlib.pyplot as plt\nplt.plot([1, 2])")
    monkeypatch.setattr(runner, "notebook_path", lambda experiment_id: plots)
    outcome = runner.run_experiment("iqoth", "smoke", results_dir=tmp_path / "results")
    executed = nbformat.read(outcome.notebook, as_version=4)
    assert any("image/png" in output.get("data", {}) for output in executed.cells[-1].outputs)
    assert runner.os.environ["MPLBACKEND"] == "Agg"  # the parent's setting is restored


def test_runs_in_threads_keep_the_backend_unset_until_the_last_one_ends(monkeypatch):
    import threading

    monkeypatch.setenv("MPLBACKEND", "Agg")
    second_in, first_out, seen = threading.Event(), threading.Event(), []

    def second():
        with runner._inline_figures():
            second_in.set()
            first_out.wait(5)
            seen.append(runner.os.environ.get("MPLBACKEND"))  # the first run has ended by now

    with runner._inline_figures():
        thread = threading.Thread(target=second)
        thread.start()
        second_in.wait(5)
    first_out.set()
    thread.join(5)
    assert seen == [None]
    assert runner.os.environ["MPLBACKEND"] == "Agg"


NOISY = (
    "import os, sys\n"
    "os.write(2, b'E0000 00:00 node_def_util.cc:682] from the kernel process\\n')\n"
    "print('printed by a cell')"
)


def test_the_kernels_own_output_goes_to_the_run_log_never_to_the_terminal(tmp_path, monkeypatch, capfd):
    notebooks = {"ok": _notebook(tmp_path / "noisy.ipynb", NOISY), "fails": _notebook(tmp_path / "f.ipynb", "1 / 0")}
    current = {"name": "ok"}
    monkeypatch.setattr(runner, "notebook_path", lambda experiment_id: notebooks[current["name"]])
    outcome = runner.run_experiment("iqoth", "smoke", results_dir=tmp_path / "results")
    log = (outcome.output_dir / "run.log").read_text()
    assert "E0000 00:00 node_def_util.cc:682] from the kernel process" in log  # written to the kernel's fd 2
    assert "Kernel is running over TCP" in log  # ipykernel's own warning, on the kernel's stderr
    assert "printed by a cell" in log
    current["name"] = "fails"
    failed = runner.run_experiment("iqoth", "smoke", results_dir=tmp_path / "results")
    assert "ZeroDivisionError: division by zero" in failed.notebook.with_suffix(".log").read_text()
    assert (outcome.output_dir / "run.log").read_text() == log  # the failure left the finished run's log alone
    terminal = capfd.readouterr()
    assert terminal.out == "" and terminal.err == ""  # no progress asked for, and nothing from the kernels


def test_the_executed_notebook_hides_the_injected_parameters_and_shows_no_temporary_path(tmp_path, fake_notebooks):
    outcome = runner.run_experiment("iqoth", "smoke", overrides={"epochs": 2}, results_dir=tmp_path / "results")
    cells = nbformat.read(outcome.notebook, as_version=4).cells
    assert cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert 'profile = "smoke"' in cells[0].source and 'output_dir = "results/iqoth"' in cells[0].source
    assert "{'epochs': 2}" in cells[0].source
    assert not any(str(tmp_path) in cell.source for cell in cells[:2])
    # the notebook reads output_dir from its parameters: it ran in the temporary folder, then moved
    assert json.loads((outcome.output_dir / "metrics.json").read_text())["epochs"] == 2


def test_progress_shows_one_line_per_notebook_start_and_end_and_the_cells_run(tmp_path, fake_notebooks, capfd):
    fake_notebooks["name"] = "fails"
    runner.run_all("smoke", results_dir=tmp_path, experiments=["iqoth", "multi-organ"], jobs=2)
    lines = capfd.readouterr().err.splitlines()  # stderr is no terminal here: no lines redrawn
    assert sorted(line.split(":")[0] for line in lines) == ["iqoth (smoke)"] * 2 + ["multi-organ (smoke)"] * 2
    assert {"iqoth (smoke): started", "multi-organ (smoke): started"} <= set(lines)
    ends = [line for line in lines if "FAILED" in line]
    assert len(ends) == 2 and all("FAILED in cell 3/3," in line and "training diverged" in line for line in ends)
