"""The executed smoke notebooks read like a publication (issue 26): no log noise, no per-epoch lines.

Their outputs become the book's pages. A page may show no TensorFlow C++ or Python log line, no
traceback, no temporary run folder, no stderr text that is not on :data:`ALLOWED_STDERR`, and no
per-epoch training line: training prints one line per trained model when it ends
(:func:`common.training.fit.summary_line`), so at most one such line per model and cell.
"""

from __future__ import annotations

import re
from collections import Counter

import nbformat
import pytest

from common.config import registry
from tests.book_pages import FORBIDDEN

EXPERIMENTS = tuple(registry.experiment_ids())
# The same noise the built pages are checked for (tests/book_pages.py).
NOISE = FORBIDDEN
# The injected-parameters cell holds the run's temporary folder; the runner hides it in the book
# (the book-level test checks the built pages for ".running-"), so only that string skips it.
INJECTED_ONLY = ".running-"
# Regular expressions of stderr text a page may show (anything else there is unexpected): none yet.
ALLOWED_STDERR: tuple[str, ...] = ()
# Keras' progress: "Epoch 3/6", "27/27 - 8s - 307ms/step - ..." (verbose 2) or a bar of "━" (verbose 1).
EPOCH_LINE = re.compile(r"^\s*(Epoch \d+/\d+|\d+/\d+ +(- |━))", re.MULTILINE)
# The one line a trained model prints: "<name>: 6 of 30 epochs in 137 s; best epoch 4: ..."
SUMMARY_LINE = re.compile(r"^(.+?): \d+ of \d+ epochs in \d+ s; best epoch \d+:", re.MULTILINE)
# Lines of training progress a page may show per model and cell: the summary line only.
MAX_TRAINING_LINES_PER_MODEL = 1


def _texts(output) -> list[tuple[str, str]]:
    """(kind, text) of every piece of text in one cell output: stream name, "error" or a MIME type."""
    if output.output_type == "stream":
        return [(output.name, output.text)]
    if output.output_type == "error":
        return [("error", "\n".join([f"{output.ename}: {output.evalue}", *output.traceback]))]
    data = output.get("data", {})
    return [(kind, str(data[kind])) for kind in ("text/plain", "text/html") if kind in data]


def _cells(experiment_id: str, smoke_results):
    notebook = nbformat.read(smoke_results(experiment_id)["dir"] / f"{experiment_id}.ipynb", as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _injected(cell) -> bool:
    return "injected-parameters" in cell.metadata.get("tags", [])


@pytest.mark.notebook(*EXPERIMENTS)
@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
def test_no_log_noise_or_unexpected_stderr_in_any_cell_output(experiment_id, smoke_results):
    found = []
    for index, cell in enumerate(_cells(experiment_id, smoke_results)):
        for output in cell.get("outputs", []):
            for kind, text in _texts(output):
                for noise in NOISE:
                    if noise in text and not (noise == INJECTED_ONLY and _injected(cell)):
                        found.append(f"cell {index} ({kind}): {noise!r} in {text[:300]!r}")
                if kind == "stderr" and not any(re.search(allowed, text) for allowed in ALLOWED_STDERR):
                    found.append(f"cell {index}: unexpected stderr {text[:300]!r}")
    assert not found, "\n".join(found)


@pytest.mark.notebook(*EXPERIMENTS)
@pytest.mark.parametrize("experiment_id", EXPERIMENTS)
def test_training_prints_no_epoch_lines_and_one_line_per_model(experiment_id, smoke_results):
    summaries = []
    for index, cell in enumerate(_cells(experiment_id, smoke_results)):
        stdout = "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream")
        assert not EPOCH_LINE.search(stdout), f"cell {index} prints per-epoch lines:\n{stdout[:1000]}"
        per_model = Counter(SUMMARY_LINE.findall(stdout))
        assert all(n <= MAX_TRAINING_LINES_PER_MODEL for n in per_model.values()), (index, per_model)
        summaries.extend(per_model.elements())
    assert summaries, f"{experiment_id} printed no line for a trained model"


@pytest.mark.notebook("nine-models")
def test_nine_models_prints_one_line_per_model(smoke_results):
    record = smoke_results("nine-models")
    lines = [
        line
        for cell in _cells("nine-models", smoke_results)
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
        for line in output.text.splitlines()
        if SUMMARY_LINE.match(line)
    ]
    names = [line.split(",")[0] for line in lines]
    assert names == list(record["metrics"]["models"]), lines
