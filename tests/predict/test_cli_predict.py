"""Tests of ``camstudy predict`` end to end: help, the printed table, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import cli
from common.predict import outputs
from tests.predict.helpers import EXPERIMENT


def test_predict_and_app_have_help(capsys):
    for command in ("predict", "app"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
    assert "--experiment ID" in capsys.readouterr().out


def _predict_argv(image: str, tiny_run, out: Path) -> list[str]:
    """``camstudy predict IMAGE`` with the tiny run's model, writing to ``out``."""
    return [
        "predict",
        image,
        "--experiment",
        EXPERIMENT,
        "--results-dir",
        str(tiny_run["results_dir"]),
        "--out",
        str(out),
        "--no-progress",
    ]


def test_cli_prints_the_table_and_exits_1_when_an_input_is_bad(tiny_run, tmp_path, capsys):
    good = tiny_run["samples"]["path"].iloc[0]
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    argv = [*_predict_argv(good, tiny_run, tmp_path / "out"), "--method", "scorecam"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Research use only" in out and "phantom" in out and Path(good).name in out
    assert (tmp_path / "out" / f"{outputs.output_stem(good)}_contours.png").is_file()

    assert cli.main(argv[:1] + [str(garbage)] + argv[1:]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err.splitlines()
    assert "broken.jpg: not a readable image" in err[0] and "Traceback" not in "".join(err)
    assert err[1] == "camstudy: 1 of 2 input(s) could not be predicted (above)"


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert cli.main(["predict", str(image), "--experiment", "iqoth", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.keras: no saved model" in err and "camstudy run iqoth" in err


def test_a_13000_pixel_square_png_is_refused_before_it_is_decoded(tiny_run, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (13000, 13000)).save(huge)  # a few hundred KB on disk, 169 M pixels
    # The real command's entry point, in a process that reports its own peak memory as it ends: VmHWM, the
    # high-water mark of this program's memory (ru_maxrss would also count the pytest process it was forked from).
    measured = (
        "import sys; from common import cli; status = cli.main(sys.argv[1:]); "
        "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')); "
        "print('PEAK_KB', peak.split()[1], file=sys.stderr); sys.exit(status)"
    )
    argv = _predict_argv(str(huge), tiny_run, tmp_path / "out")
    done = subprocess.run([sys.executable, "-c", measured, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == cli.EXIT_FAILURE, done.stderr[-2000:]
    assert "huge.png: the image is 13000 x 13000 = 169,000,000 pixels, above the limit" in done.stderr
    assert "Traceback" not in done.stderr
    peak_kb = int(next(line for line in done.stderr.splitlines() if line.startswith("PEAK_KB")).split()[1])
    assert peak_kb < 2 * 1024 * 1024  # under 2 GB with TensorFlow and the model: the image is never decoded
