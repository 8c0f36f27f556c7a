"""The page "Performance on this machine" (common.report.performance), from bench.json records."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import registry
from common.errors import StudyError
from common.report import book, figures, performance
from tests.report.fakes import (
    fake_bench_record,
    golden_bench_record,
    table_rows,
    use_golden_registry,
)

GOLDEN = Path(__file__).parent / "golden"


def test_performance_page_renders_every_number_from_the_bench_record(tmp_path):
    figures.plt.close("all")  # figures other tests left open (a drawing that raised)
    page = performance.performance_markdown(fake_bench_record(), tmp_path)

    ratio_table = page.split("## Ratios")[1]
    rows = {row[0]: row for row in table_rows(ratio_table)}
    assert rows["`pipeline_vs_model`"][1:4] == ["7.34", "≥ 3.0", "yes"]
    assert rows["`pipeline_vs_in_memory`"][1:4] == ["0.91", "≥ 0.95", "**no**"]
    assert rows["`cam_fraction_of_ceiling`"][1:4] == ["0.92", "≥ 0.9", "yes"]
    assert "880.2 img/s cached (210.5 cold" in rows["`pipeline_vs_model`"][4]
    assert (
        "fastest of 5 whole epochs of each, timed in alternating pairs (the pairs' ratios 0.88 to 0.95, median 0.91)"
        in rows["`pipeline_vs_in_memory`"][4]
    )
    assert "batches of 32: 45.92 img/s vs 50.00 img/s for the bare compiled" in rows["`cam_fraction_of_ceiling`"][4]
    assert "a speed-up of 11.48, information" in rows["`cam_fraction_of_ceiling`"][4]
    # The ratio figure is drawn beside the page and linked from it.
    assert (tmp_path / performance.BENCH_FIGURE).read_bytes()[:4] == b"\x89PNG"
    assert f"```{{figure}} figures/{performance.BENCH_FIGURE}" in page
    assert figures.plt.get_fignums() == []  # the page closes its figure
    # The machine, and that it was busy: load 3.25 on 2 CPUs.
    for text in (
        "**CPUs:** 2 (x86_64)",
        "**Memory:** 7.7 GB",
        "**Device:** CPU",
        "**TensorFlow:** 2.21.0",
        "when measured:** 3.25 (higher than the CPU count",
        "with `--quick`",
    ):
        assert text in page
    wall_times = table_rows(page.split("## Notebook wall times")[1])
    # Each time stands beside the registry's budget for that profile (the paper profile has none).
    iqoth, gradcam_3d = (registry.experiment(e)["budget_s"] for e in ("iqoth", "gradcam-3d"))
    assert wall_times == [
        ["iqoth", f"41 (budget {iqoth['smoke']})", f"612 (budget {iqoth['default']})", "–"],
        ["gradcam-3d", f"– (budget {gradcam_3d['smoke']})", f"226 (budget {gradcam_3d['default']})", "–"],
    ]
    assert "No measurement yet" not in page


def test_performance_page_explains_every_ratio_it_tabulates(tmp_path):
    page = performance.performance_markdown(fake_bench_record(), tmp_path)
    figures.plt.close("all")
    for key in performance.RATIO_KEYS:
        assert f"`{key}` (" in page.split("## Ratios")[0], f"the page does not say what {key} measures"
        assert f"| `{key}` |" in page


def test_performance_page_renders_its_golden_text(tmp_path, monkeypatch):
    # The golden files were rendered by the book module before its prose moved into templates.
    use_golden_registry(monkeypatch)
    page = performance.performance_markdown(golden_bench_record(), tmp_path)
    assert page == (GOLDEN / "performance.md").read_text(encoding="utf-8")
    assert performance.performance_markdown(None, tmp_path) == (GOLDEN / "performance-none.md").read_text(
        encoding="utf-8"
    )


def test_read_bench_returns_none_without_a_file_and_refuses_broken_json(tmp_path):
    assert performance.read_bench(tmp_path) is None
    (tmp_path / performance.BENCH_FILE).write_text("{not json")
    with pytest.raises(StudyError, match="not valid JSON"):
        performance.read_bench(tmp_path)
    assert book.read_bench is performance.read_bench
