"""Tests of common.report.progress: the terminal's progress lines and the summary after the runs."""

import io
import json
import re
import threading
from pathlib import Path
from types import SimpleNamespace

from common.report.progress import RunProgress, clock, headline, summary_table

ANSI = re.compile(r"\x1b\[(\d*)([FJ])")


def screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: cursor-up-to-line-start (F) and clear-below (J) applied."""
    lines: list[str] = []
    position = 0
    for match in ANSI.finditer(text):
        lines.extend(text[position : match.start()].splitlines())
        count, code = match.groups()
        if code == "F":
            del lines[len(lines) - int(count or 1) :]
        position = match.end()
    lines.extend(text[position:].splitlines())
    return lines


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_each_notebook_prints_one_line_as_it_starts_and_one_as_it_ends():
    out = io.StringIO()
    with RunProgress(out) as lines:  # a StringIO is no terminal
        lines.started("nine-models", "smoke")
        lines.started("iqoth", "smoke")
        for done in range(1, 31):
            lines.cells("nine-models", done, 30)
        lines.callback("iqoth")(4, 12)
        lines.ended("iqoth", False, 75, "RuntimeError: training diverged")
        lines.ended("nine-models", True, 3725)
    assert out.getvalue().splitlines() == [
        "nine-models (smoke): started",
        "iqoth (smoke): started",
        "iqoth (smoke): FAILED in cell 4/12, 1:15: RuntimeError: training diverged",
        "nine-models (smoke): done, 30/30 cells, 1:02:05",
    ]
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_the_running_notebooks_are_a_block_redrawn_in_place():
    out = FakeTerminal()
    lines = RunProgress(out)
    assert lines.live
    lines.started("nine-models", "default")
    lines.started("iqoth", "default")
    for done in range(1, 6):
        lines.cells("iqoth", done, 40)
    assert [row.split(", ")[0] for row in screen(out.getvalue())] == [
        "nine-models (default): starting",
        "iqoth (default): 5/40 cells",
    ]
    lines.ended("iqoth", True, 61.5)
    lines.cells("nine-models", 7, 30)
    shown = screen(out.getvalue())
    # The finished notebook's final line stays above the block of the one still running.
    assert shown[0] == "iqoth (default): done, 5/40 cells, 1:02"
    assert len(shown) == 2 and shown[1].startswith("nine-models (default): 7/30 cells, 0:0")
    lines.ended("nine-models", True, 3600)
    assert screen(out.getvalue()) == [
        "iqoth (default): done, 5/40 cells, 1:02",
        "nine-models (default): done, 7/30 cells, 1:00:00",
    ]


def test_runs_in_threads_never_break_each_others_lines():
    out = io.StringIO()
    lines = RunProgress(out, live=False)

    def run(name: str) -> None:
        lines.started(name, "smoke")
        for done in range(200):
            lines.cells(name, done, 200)
        lines.ended(name, True, 1.0)

    threads = [threading.Thread(target=run, args=(f"e{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(out.getvalue().splitlines()) == sorted(
        [f"e{i} (smoke): started" for i in range(4)] + [f"e{i} (smoke): done, 199/200 cells, 0:01" for i in range(4)]
    )


def test_clock_reads_minutes_and_hours():
    assert [clock(s) for s in (0, 59.4, 61, 3599, 3600, 7384)] == [
        "0:00",
        "0:59",
        "1:01",
        "59:59",
        "1:00:00",
        "2:03:04",
    ]


def _metrics(**accuracies) -> dict:
    return {"models": {name: {"accuracy": {"value": v, "ci95": [v - 0.1, v + 0.05]}} for name, v in accuracies.items()}}


def test_the_headline_is_the_best_models_accuracy_with_its_interval():
    assert headline(_metrics(VGG16=0.8, DenseNet121=0.9091)) == "accuracy 0.909 (0.80–0.96), DenseNet121"
    assert headline(_metrics(CNN=0.5)) == "accuracy 0.500 (0.40–0.55)"  # one model: no need to name it
    assert headline({"models": {"CNN": {"auc": 0.7}}}) == "–"
    # A baseline the run adds is not the headline: the best of the models the paper reports on is.
    claims = _metrics(ResNet50=0.5, plain_cnn=0.75) | {"paper_vs_run": [{"model": "ResNet50", "metric": "accuracy"}]}
    assert headline(claims) == "accuracy 0.500 (0.40–0.55)"


def _outcome(results: Path, experiment: str, ok: bool, seconds: float, metrics: dict | None = None):
    (results / experiment).mkdir(parents=True)
    if metrics is not None:
        (results / experiment / "metrics.json").write_text(json.dumps(metrics))
    return SimpleNamespace(experiment=experiment, ok=ok, wall_time_s=seconds, output_dir=results / experiment)


def test_the_summary_has_a_row_per_experiment_with_status_wall_time_and_headline(tmp_path):
    outcomes = [
        _outcome(tmp_path, "iqoth", True, 61, _metrics(ResNet50=0.75)),
        _outcome(tmp_path, "nine-models", False, 3600),
        _outcome(tmp_path, "multi-organ", True, 5, None),  # its metrics.json is gone: said, not raised
    ]
    rows = summary_table(outcomes).splitlines()
    assert [row.split() for row in rows[:3]] == [
        ["experiment", "status", "wall", "time", "headline"],
        ["iqoth", "ok", "1:01", "accuracy", "0.750", "(0.65–0.80)"],
        ["nine-models", "FAILED", "1:00:00", "–"],
    ]
    assert rows[3].split()[:3] == ["multi-organ", "ok", "0:05"] and "unreadable" in rows[3]
    starts = {row.find(word) for row, word in zip(rows, ["wall time", "1:01", "1:00:00", "0:05"], strict=True)}
    assert len(starts) == 1  # the wall-time column is aligned


def test_the_headline_leads_with_the_overviews_first_headline_metric():
    from common.report.pages import HEADLINE_METRICS

    other = next(m for m in ("f1", "auc", "accuracy") if m != HEADLINE_METRICS[0])
    metrics = {"models": {"CNN": {HEADLINE_METRICS[0]: 0.25, other: 0.75}}}
    assert headline(metrics) == f"{HEADLINE_METRICS[0]} 0.250"
