"""Tests of common.cli: subcommands parse, errors print one clear line and exit 2."""

import subprocess
import sys

import pytest

from common import cli
from common.errors import LOG_FILE


@pytest.mark.parametrize("argv", [[], ["run"], ["data"]])
def test_missing_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["book", "--help"],
        ["data", "phantoms", "--help"],
        ["data", "verify", "--help"],
        ["data", "fetch", "--help"],
        ["bench", "--help"],
        ["audit", "--help"],
        ["assign", "build", "--help"],
        ["assign", "grade", "--help"],
    ],
)
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    assert "usage: camstudy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nope"], "Unknown experiment 'nope'"),
        (["run", "iqoth", "--profile", "smoke", "-p", "epochs=abc"], "Parameter 'epochs' expects an integer"),
        (["run", "iqoth", "-p", "epochs"], "not of the form name=value"),
        (["run", "iqoth", "--data-dir", "/no/such/folder"], "does not exist"),
        (["data", "verify", "no-such-manifest", "--data-dir", "."], "no-such-manifest"),
    ],
)
def test_user_errors_print_one_line_without_traceback(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_dash_m_common_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "common", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "camstudy" in done.stdout


def test_the_parser_is_built_without_importing_tensorflow():
    # The CAM method names of `predict --method` come from a module that imports TensorFlow;
    # only help or a --method value may read them, so `camstudy run` starts in a second.
    code = (
        "import sys; from common import cli; cli.build_parser(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _camstudy(*argv: str, cwd) -> subprocess.CompletedProcess:
    """The real command in a subprocess, as a user types it."""
    return subprocess.run([sys.executable, "-m", "common", *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ordinary_mistakes_through_the_real_command_end_in_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "broken.yaml").write_text("name: x\n  bad: [\n")
    cli_manifest = tmp_path / "many.yaml"
    cli_manifest.write_text(
        "name: x\ncitation: c\nlicence: l\nsource: {url: u, how_to_obtain: h}\n"
        "label_map: {a: a, b: b}\nexpected_counts: {a: many, b: 2}\n"
    )
    cases = [
        (("run", "multi-organ", "--profile", "smoke", "--results-dir", "a_file"), "a_file: File exists"),
        (("data", "verify", "broken.yaml", "--data-dir", "."), "broken.yaml is not valid YAML at line 2"),
        (("data", "verify", cli_manifest.name, "--data-dir", "."), "expected_counts must be whole numbers"),
    ]
    for argv, message in cases:
        done = _camstudy(*argv, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == cli.EXIT_USER_ERROR, (argv, done.stderr)
        assert message in lines[-1] and lines[-1].startswith("camstudy: error: "), (argv, done.stderr)
        assert "Traceback" not in done.stderr, (argv, done.stderr)


def test_an_unexpected_error_is_one_line_naming_the_log_and_debug_shows_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CAMSTUDY_HOME", str(tmp_path))

    def fails(args):
        raise RuntimeError("kernel died\nsecond line")

    monkeypatch.setattr(cli, "_cmd_verify", fails)
    assert cli.main(["data", "verify", "phantoms", "--data-dir", "."]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: kernel died" in err and "Traceback" not in err
    log = tmp_path / "results" / LOG_FILE
    assert str(log) in err and "Traceback" in log.read_text() and "second line" in log.read_text()
    with pytest.raises(RuntimeError, match="kernel died"):
        cli.main(["--debug", "data", "verify", "phantoms", "--data-dir", "."])


def test_an_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_verify", interrupted)
    assert cli.main(["data", "verify", "phantoms", "--data-dir", "."]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "camstudy: interrupted"


def test_a_study_warning_is_one_line_and_other_warnings_keep_their_form(monkeypatch, capsys):
    import warnings

    from common.errors import StudyWarning

    def warns(args):
        warnings.warn("the book leaves out results/iqoth/metrics.json", StudyWarning, stacklevel=1)
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_cmd_verify", warns)
    with pytest.warns(DeprecationWarning, match="an old API"):  # passed on to Python's own handling
        assert cli.main(["data", "verify", "phantoms", "--data-dir", "."]) == 0
    assert capsys.readouterr().err.splitlines() == ["camstudy: warning: the book leaves out results/iqoth/metrics.json"]


# --- camstudy run: progress lines, summary table, no kernel noise ----------------------------------

TERMINAL_NOISE = ("Kernel is running over TCP", "E0000", "I0000", "W0000", "absl", "cuInit", "node_def_util")


@pytest.mark.notebook("multi-organ")
def test_a_real_smoke_run_shows_its_progress_and_a_summary_and_no_kernel_or_tensorflow_noise(smoke_results):
    record = smoke_results("multi-organ")  # `camstudy run multi-organ --profile smoke --no-progress`
    assert "stderr" in record, "tests/conftest.py's _smoke_run must keep the command's output (h26B-requests.md)"
    terminal = record["stdout"] + record["stderr"]
    assert [noise for noise in TERMINAL_NOISE if noise in terminal] == []
    started, ended = record["stderr"].splitlines()  # nothing else on stderr
    assert started == "multi-organ (smoke): started" and ended.startswith("multi-organ (smoke): done, ")
    header, row = record["stdout"].splitlines()
    assert header.split() == ["experiment", "status", "wall", "time", "headline"]
    assert row.split()[:2] == ["multi-organ", "ok"] and "accuracy" in row
    assert "Kernel is running over TCP" in (record["dir"] / "run.log").read_text()  # kept, off the terminal


def test_a_failed_run_ends_with_the_summary_and_a_line_naming_its_notebook(monkeypatch, tmp_path, capsys):
    from pathlib import Path

    from common import runner

    def fails(experiment_id, profile, data_dir, overrides, results_dir, progress):
        progress.started(experiment_id, profile)
        progress.ended(experiment_id, False, 2.0, "RuntimeError: training diverged")
        notebook = Path(tmp_path, experiment_id, "failed", f"{experiment_id}.ipynb")
        return runner.RunOutcome(
            experiment_id, False, notebook.parents[1], 2.0, "RuntimeError: training diverged", notebook
        )

    monkeypatch.setattr(runner, "run_experiment", fails)
    assert cli.main(["run", "iqoth", "--profile", "smoke", "--no-progress"]) == cli.EXIT_FAILURE
    out, err = capsys.readouterr()
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["experiment", "status", "wall"],
        ["iqoth", "FAILED", "0:02"],
    ]
    assert err.splitlines() == [
        "iqoth (smoke): started",
        "iqoth (smoke): FAILED, 0:02: RuntimeError: training diverged",
        f"failed: iqoth: RuntimeError: training diverged; its notebook and log are in {tmp_path / 'iqoth' / 'failed'},"
        " earlier results untouched",
    ]
