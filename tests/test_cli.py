"""Tests of common.cli: subcommands parse, errors print one clear line and exit 2."""

import subprocess
import sys

import pytest

from common import cli


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
        (["run", "iqoth", "--profile", "smoke", "-p", "epochs=abc"], "Parameter 'epochs' expects a int"),
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
