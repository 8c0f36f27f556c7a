"""Reliability and security: bad input, interrupted runs, determinism, safe loading.

The table :data:`BAD_INPUTS` lists bad inputs checked at the library call that
refuses them; each row makes the bad input under ``tmp_path`` and makes the
call. The bad inputs a user can hand the ``camstudy`` command run through the
real command in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from common import cli, runner
from common.data.folders import load_class_folders, read_image
from common.data.manifest import checksum_listing, data_fingerprint
from common.errors import DataError
from tests.conftest import tiny_manifest, write_class_folders

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent


@dataclass(frozen=True)
class BadInput:
    """One row of the bad-input matrix.

    Attributes:
        case: The bad input, in the issue's words.
        error: The error type expected.
        phrase: Text the error message contains.
        run: Makes the bad input under ``tmp_path`` and makes the call.
    """

    case: str
    error: type[BaseException]
    phrase: str
    run: Callable[[Path], object]


def _text_named_dcm(tmp_path: Path) -> object:
    (tmp_path / "scan.dcm").write_text("exported notes, not a DICOM slice")
    return read_image(tmp_path / "scan.dcm")


def _class_folder_of_only_bad_files(tmp_path: Path) -> object:
    root = write_class_folders(tmp_path / "set", {"a": 2})
    (root / "b").mkdir()
    (root / "b" / "broken.png").write_bytes(b"")
    return load_class_folders(root, on_bad_file="skip")


def _model_file(tmp_path: Path, name: str, with_lambda: bool) -> object:
    import keras

    from common.models import saving

    path = tmp_path / name
    if with_lambda:
        inputs = keras.Input((3,))
        keras.Model(inputs, keras.layers.Lambda(lambda t: t + 1.0)(inputs)).save(path)
    else:
        path.write_text("not a model")
    return saving.load_model_safe(path)


BAD_INPUTS = [
    BadInput(
        "text file named .dcm in a class folder", DataError, "scan.dcm: not a readable image", run=_text_named_dcm
    ),
    BadInput(
        "class folder whose every image is unreadable (skip mode)",
        DataError,
        "none of its 1 images could be read",
        run=_class_folder_of_only_bad_files,
    ),
    BadInput(
        "legacy .h5 model with a Lambda layer",
        DataError,
        "Lambda layer or other stored Python code",
        run=lambda tmp_path: _model_file(tmp_path, "lambda.h5", with_lambda=True),
    ),
    BadInput(
        "file named .keras that is not a model",
        DataError,
        "not a readable Keras model",
        run=lambda tmp_path: _model_file(tmp_path, "notes.keras", with_lambda=False),
    ),
]


@pytest.mark.parametrize("row", BAD_INPUTS, ids=lambda r: r.case)
def test_bad_input_is_refused_with_a_clear_message(tmp_path, row):
    with pytest.raises(row.error) as raised:
        row.run(tmp_path)
    assert row.phrase in str(raised.value)
    assert str(tmp_path) in str(raised.value)  # the message names the file or folder


def test_unusual_modes_in_one_class_folder_all_load(tmp_path):
    """CMYK JPEG, 16-bit PNG, palette and RGBA PNG side by side load as one data set."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    root = write_class_folders(tmp_path / "set", {"plain": 2})
    mixed = root / "mixed"
    mixed.mkdir()
    Image.fromarray(rgb).convert("CMYK").save(mixed / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(mixed / "deep.png")
    Image.fromarray(rgb).convert("P").save(mixed / "palette.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(mixed / "alpha.png")
    samples, skipped = load_class_folders(root)
    assert not skipped
    loaded = samples[samples["class_folder"] == "mixed"]
    assert sorted(Path(p).name for p in loaded["path"]) == ["alpha.png", "cmyk.jpg", "deep.png", "palette.png"]
    assert set(zip(loaded["width"], loaded["height"])) == {(12, 10)}
    for path in loaded["path"]:
        assert read_image(path).std() > 10, path  # real content, not a blank decode


@pytest.mark.parametrize(
    "argv_of, status, phrase",
    [
        (lambda d: ["data", "verify", "tiny.yaml", "--data-dir", str(d / "changed")], 1, "1 changed"),
        (lambda d: ["data", "verify", "iqothnccd", "--data-dir", str(d / "nowhere")], 2, "How to obtain it"),
        (lambda d: ["run", "iqoth", "--profile", "fast"], 2, "invalid choice: 'fast'"),
    ],
    ids=["wrong checksum", "missing data dir", "unknown profile"],
)
def test_cli_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys, argv_of, status, phrase):
    import yaml

    monkeypatch.chdir(tmp_path)
    copy = write_class_folders(tmp_path / "copy", {"a": 2, "b": 2})
    manifest = tiny_manifest(checksum_listing(copy))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(manifest))
    (copy / "a" / "a_000.png").write_bytes((copy / "b" / "b_000.png").read_bytes())
    copy.rename(tmp_path / "changed")
    try:
        code = cli.main(argv_of(tmp_path))
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    captured = capsys.readouterr()
    assert code == status
    assert phrase in captured.out + captured.err and "Traceback" not in captured.err


def test_data_fingerprint_names_bytes_and_labels_not_places(tmp_path):
    root = write_class_folders(tmp_path / "set", {"a": 2, "b": 2})
    samples, _ = load_class_folders(root)
    fingerprint = data_fingerprint(samples)
    assert len(fingerprint) == 64
    moved = tmp_path / "moved"
    root.rename(moved)
    moved_samples, _ = load_class_folders(moved)
    assert data_fingerprint(moved_samples.iloc[::-1]) == fingerprint  # place and row order do not matter
    relabelled = moved_samples.assign(label=moved_samples["label"].replace({"a": "b", "b": "a"}))
    assert data_fingerprint(relabelled) != fingerprint
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(moved / "a" / "a_000.png")
    assert data_fingerprint(moved_samples) != fingerprint
    assert data_fingerprint(moved_samples.iloc[1:]) != data_fingerprint(moved_samples)


# --- no pickle, no unsafe loading ------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _unsafe_calls(tree: ast.AST) -> list[str]:
    """Imports of pickle-like modules and calls that could unpickle or run stored code."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            found += [f"import {name}" for name in names if name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            keywords = {kw.arg: ast.unparse(kw.value) for kw in node.keywords}
            if func.endswith("read_pickle") or func.endswith("torch.load"):
                found.append(func)
            if keywords.get("allow_pickle") == "True" or keywords.get("safe_mode") == "False":
                found.append(ast.unparse(node))
            if func in ("np.load", "numpy.load") and keywords.get("allow_pickle") != "False":
                found.append(f"{ast.unparse(node)} without allow_pickle=False")
    return found


def _code_to_check() -> dict[str, str]:
    """Every module of ``common`` and every code cell of the experiment notebooks."""
    sources = {str(path.relative_to(PROJECT_ROOT)): path.read_text() for path in (PROJECT_ROOT / "src").rglob("*.py")}
    for notebook in (PROJECT_ROOT / "notebooks").glob("*.ipynb"):
        cells = nbformat.read(notebook, as_version=4).cells
        code = "\n".join(cell.source for cell in cells if cell.cell_type == "code" and not cell.source.startswith("%"))
        sources[str(notebook.relative_to(PROJECT_ROOT))] = code
    return sources


def test_unsafe_call_finder_finds_each_kind():
    sample = (
        "import pickle\nimport numpy as np\nnp.load(p)\nnp.load(p, allow_pickle=True)\n"
        "keras.saving.load_model(p, safe_mode=False)\npd.read_pickle(p)\nnp.load(p, allow_pickle=False)\n"
    )
    assert len(_unsafe_calls(ast.parse(sample))) == 6


def test_no_pickle_and_no_unsafe_loading_anywhere():
    offenders = {
        name: calls for name, source in _code_to_check().items() if (calls := _unsafe_calls(ast.parse(source)))
    }
    assert offenders == {}


# --- failed runs lose nothing ----------------------------------------------------

# Runs in a child process: the runner with each experiment's notebook swapped for a sleeping one.
RUNNER_SCRIPT = """
import json, pathlib, sys
from common import runner
notebooks = json.loads(sys.argv[1])
runner.notebook_path = lambda experiment_id: pathlib.Path(notebooks[experiment_id])
runner.run_all("smoke", results_dir=sys.argv[2], experiments=list(notebooks), progress_bar=False, jobs=int(sys.argv[3]))
"""


def _sleeping_notebook(path: Path, marker: Path) -> Path:
    """A notebook that writes its kernel's pid to ``marker`` and then sleeps (training that never ends)."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('profile = "default"\ndata_dir = None\noverrides = {}\noutput_dir = None')
    parameters.metadata["tags"] = ["parameters"]
    body = f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\ntime.sleep(600)"
    notebook.cells = [parameters, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("jobs", [1, 2], ids=["one-run", "two-runs-at-once"])
def test_a_run_killed_mid_training_keeps_the_previous_results(tmp_path, stop_signal, jobs):
    results = tmp_path / "results"
    experiments = ["iqoth", "multi-organ"][:jobs]
    notebooks, markers = {}, {}
    for experiment_id in experiments:
        previous = results / experiment_id / "metrics.json"
        previous.parent.mkdir(parents=True)
        previous.write_text('{"from": "the previous run"}')
        markers[experiment_id] = tmp_path / f"{experiment_id}-training-started"
        notebooks[experiment_id] = str(_sleeping_notebook(tmp_path / f"{experiment_id}.ipynb", markers[experiment_id]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    # Own process group, so the signal reaches the run as Ctrl-C or `kill` would, and not pytest.
    # stderr goes to a file, not a pipe: nobody reads a pipe while the run is going, and a
    # run that writes more than the pipe holds (tracebacks on interrupt) would block on it.
    stderr_file = tmp_path / "run.stderr"
    with open(stderr_file, "wb") as stderr:
        # A child inherits ignored signals; when the test process ignores SIGINT (as it did in
        # full-suite runs), Python in the child never turns Ctrl-C into KeyboardInterrupt.
        # A user's shell starts the run with the default handler, so the test does too.
        child = subprocess.Popen(
            [sys.executable, "-c", RUNNER_SCRIPT, json.dumps(notebooks), str(results), str(jobs)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for(
            lambda: all(m.exists() for m in markers.values()) or child.poll() is not None, 120, "the notebooks to start"
        )
        assert all(m.exists() for m in markers.values()), stderr_file.read_text(errors="replace")[-2000:]
        os.killpg(child.pid, stop_signal)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode != 0
    assert not [path.name for path in results.iterdir() if path.name.startswith(".")]  # no .running-*, .old-*
    for experiment_id in experiments:
        assert (results / experiment_id / "metrics.json").read_text() == '{"from": "the previous run"}'
        failed = nbformat.read(results / experiment_id / "failed" / f"{experiment_id}.ipynb", as_version=4)
        assert "training-started" in failed.cells[-1].source
        kernel_pid = int(markers[experiment_id].read_text())
        _wait_for(lambda pid=kernel_pid: not _alive(pid), 30, f"the notebook kernel {kernel_pid} to end")


def test_run_all_continues_after_failures_and_exits_non_zero_listing_them(tmp_path, monkeypatch, capsys):
    """``camstudy run all``: one notebook fails, one is refused, the others still run."""
    ran = []

    def fake_run(experiment_id, profile, data_dir, overrides, results_dir, progress_bar=True, log_output=False):
        ran.append(experiment_id)
        if experiment_id == "nine-models":
            return runner.RunOutcome(experiment_id, False, tmp_path, 1.0, error="RuntimeError: training diverged")
        if experiment_id == "iqoth":
            raise DataError("Data folder /x does not exist")
        return runner.RunOutcome(experiment_id, True, tmp_path, 1.0)

    monkeypatch.setattr(runner, "run_experiment", fake_run)
    assert cli.main(["run", "all", "--profile", "smoke", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert ran == runner.registry.experiment_ids()
    assert "failed: nine-models: RuntimeError: training diverged" in err
    assert "failed: iqoth: Data folder /x does not exist" in err
    assert "failed: multi-organ" not in err
