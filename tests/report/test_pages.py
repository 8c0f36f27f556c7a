"""The generated pages: overview, data sets, experiment pages (common.report.pages), and their golden text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.config import registry
from common.data import manifest
from common.report import book, pages
from common.report.render import one_line
from common.report.results import read_metrics
from tests.report.fakes import (
    ROW,
    golden_metrics,
    table_rows,
    use_golden_registry,
    write_fake_run,
)

GOLDEN = Path(__file__).parent / "golden"


def test_overview_gives_every_experiment_a_row_with_claim_ci_profile_and_data(tmp_path):
    results = tmp_path / "results"
    write_fake_run(results, "resnet50-gradcam", [ROW], figures=("confusion_matrix", "cam_grid", "samples"))
    write_fake_run(results, "iqoth", [], source="iqothnccd (/data/iqothnccd)")
    all_metrics = {e: read_metrics(results / e / "metrics.json") for e in ("resnet50-gradcam", "iqoth")}
    (tmp_path / "figures").mkdir()

    page = pages.overview_markdown(all_metrics, tmp_path / "figures", results)

    rows = table_rows(page)
    by_experiment = {}
    for row in rows:
        by_experiment.setdefault(re.match(r"\[([\w-]+)\]", row[0]).group(1), []).append(row)
    assert list(by_experiment) == registry.experiment_ids()
    assert by_experiment["resnet50-gradcam"] == [
        [
            "[resnet50-gradcam](../experiments/resnet50-gradcam)",
            "ResNet50",
            "accuracy",
            "0.982",
            "0.750 [0.250,\u00a01.000]",
            "smoke, phantoms/\u200bchest",
        ]
    ]
    # A paper without numbers still gets its row, with this run's profile and data.
    assert by_experiment["iqoth"][0][3] == "no numbers reported"
    assert by_experiment["iqoth"][0][5] == "smoke, iqothnccd"
    assert by_experiment["gradcam-3d"][0][4] == "not run"
    # Headline figures: confusion matrix and heatmaps, not every figure.
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "resnet50-gradcam-cam_grid.png",
        "resnet50-gradcam-confusion_matrix.png",
    ]
    assert "```{figure} figures/resnet50-gradcam-cam_grid.png" in page


@pytest.mark.parametrize(
    "source, tags",
    [
        ('fig = figures.cam_grid(rows, path=run.figure_path("cam_grid"))', ["figure-cam_grid"]),
        (
            "a(run.figure_path('roc'))\nb(run.figure_path( 'cm' ))\nc(run.figure_path('roc'))",
            ["figure-roc", "figure-cm"],
        ),
        ('figures.cam_grid(rows, path=run.figure_path(f"cam_layers_{name}"))', ["figure-cam_layers"]),
        ("figures.cam_grid(rows)", []),
    ],
)
def test_figure_tags_name_the_figures_a_cell_saves(source, tags):
    assert pages.figure_tags(source) == tags


def test_datasets_section_is_read_from_every_manifest():
    section = pages.datasets_markdown()
    for name in manifest.available_manifests():
        record = manifest.load_manifest(name)
        assert f"`data_manifests/{name}.yaml`" in section
        assert one_line(record["licence"]) in section
        assert one_line(record["citation"]) in section
    assert "- **Used by:** resnet50-gradcam, iqoth" in section
    # Placeholders such as <data dir> must show, not be read as HTML tags.
    assert "&lt;data dir&gt;" in section and "<data dir>" not in section.replace("`", "")


def test_pages_are_importable_from_book_as_before():
    assert book.overview_markdown is pages.overview_markdown
    assert book.datasets_markdown is pages.datasets_markdown
    assert book.figure_tags is pages.figure_tags


def test_overview_missing_page_and_banner_render_their_golden_text(tmp_path, monkeypatch):
    # The golden files were rendered by the book module before its prose moved into templates.
    use_golden_registry(monkeypatch)
    metrics = golden_metrics()
    for experiment_id, record in metrics.items():
        write_fake_run(
            tmp_path / "results",
            experiment_id,
            record["paper_vs_run"],
            figures=[name.removesuffix(".png") for name in record["figures"]],
            source=record["data"]["source"],
        )
    (tmp_path / "figures").mkdir()

    overview = pages.overview_markdown(metrics, tmp_path / "figures", tmp_path / "results")
    notebook = pages.with_banner(tmp_path / "results" / "alpha" / "alpha.ipynb", metrics["alpha"])

    assert overview == (GOLDEN / "overview.md").read_text(encoding="utf-8")
    assert pages.missing_page("gamma") == (GOLDEN / "missing.md").read_text(encoding="utf-8")
    assert notebook.cells[1].source == (GOLDEN / "banner.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "alpha-cam_contours.png",
        "alpha-confusion_matrix.png",
    ]
