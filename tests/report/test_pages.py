"""The generated pages: overview, data sets, experiment pages (common.report.pages), and their golden text."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from common.config import registry
from common.data import manifest
from common.report import book, pages
from common.report.render import one_line
from common.report.results import read_metrics
from tests.report.fakes import (
    ROW,
    fake_metrics,
    golden_metrics,
    table_rows,
    use_golden_registry,
    write_fake_run,
)

GOLDEN = Path(__file__).parent / "golden"


def sections(page: str) -> dict[str, str]:
    """The overview's text under each ``## <experiment>`` heading."""
    parts = re.split(r"^## ", page, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


def test_overview_gives_every_experiment_a_compact_table_of_models_by_headline_metrics(tmp_path):
    results = tmp_path / "results"
    claims = [
        ROW,
        {**ROW, "metric": "precision", "paper": 0.973, "this_run": 0.5, "ci95": [0.2, 0.8]},
        {**ROW, "metric": "f1", "paper": 0.98, "this_run": 0.6, "ci95": [0.3, 0.9]},
        {"model": "plain_cnn", "metric": "accuracy", "paper": 0.8, "this_run": 0.5, "ci95": [0.123, 0.871]},
    ]
    write_fake_run(results, "resnet50-gradcam", claims, figures=("confusion_matrix", "cam_grid", "samples"))
    write_fake_run(results, "iqoth", [], source="iqothnccd (/data/iqothnccd)")
    all_metrics = {e: read_metrics(results / e / "metrics.json") for e in ("resnet50-gradcam", "iqoth")}
    all_metrics["resnet50-gradcam"]["models"] = {"ResNet50": {"n": 4}, "plain_cnn": {"n": 4}}
    all_metrics["resnet50-gradcam"]["wall_time_s"] = 303.4
    (tmp_path / "figures").mkdir()

    page = pages.overview_markdown(all_metrics, tmp_path / "figures", results)

    by_experiment = sections(page)
    assert list(by_experiment)[:-1] == registry.experiment_ids()
    resnet = by_experiment["resnet50-gradcam"]
    assert "`smoke` profile, data phantoms/chest, wall time 5 min 3 s." in resnet
    assert "Not comparable with the paper's numbers (phantoms)" in resnet
    assert "(../experiments/resnet50-gradcam)" in resnet
    # Rows are models; the headline metrics' claims stand beside the run's values (precision is in the figure);
    # a phantom run judges no claim against its intervals.
    assert table_rows(resnet) == [
        ["ResNet50", "4", "0.982", "0.750 (0.25–1.00)", "0.980", "0.600 (0.30–0.90)", "not comparable (phantoms)"],
        ["plain_cnn", "4", "0.800", "0.500 (0.12–0.88)", "–", "–", "not comparable (phantoms)"],
    ]
    assert "| model | n | accuracy paper | accuracy run | f1 paper | f1 run | inside CI |" in resnet
    # A paper without numbers: the run's own values; an experiment not run says so.
    assert "The paper reports no numbers." in by_experiment["iqoth"]
    assert table_rows(by_experiment["iqoth"]) == []
    assert "not run." in by_experiment["gradcam-3d"] and "|" not in by_experiment["gradcam-3d"]
    # The forest plot and the headline figures (confusion matrix and heatmaps, not every figure).
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        pages.FOREST_FIGURE,
        "resnet50-gradcam-cam_grid.png",
        "resnet50-gradcam-confusion_matrix.png",
    ]
    assert f"```{{figure}} figures/{pages.FOREST_FIGURE}" in page
    assert "```{figure} figures/resnet50-gradcam-cam_grid.png" in page


def test_a_paper_profile_run_on_the_real_data_says_whether_each_claim_is_inside_its_interval(tmp_path):
    rows = [
        {**ROW, "paper_inside_ci": True, "comparable": True, "reason": None},
        {**ROW, "metric": "f1", "paper": 0.98, "this_run": 0.6, "ci95": [0.3, 0.9], "paper_inside_ci": False}
        | {"comparable": True, "reason": None},
    ]
    metrics = fake_metrics("resnet50-gradcam", rows, source="iqothnccd (../shared/data/iqothnccd)")
    metrics["profile"] = "paper"
    metrics["parameters"] = {"data_dir": "/data/iqothnccd", "manifest": "iqothnccd", "weights": "imagenet"}
    overview = pages.experiment_overview("resnet50-gradcam", metrics)
    assert overview.run is not None and overview.run.comparable and overview.run.reason is None
    metrics["models"] = {"ResNet50": {"n": 120}}
    overview = pages.experiment_overview("resnet50-gradcam", metrics)
    assert overview.header == [
        "model",
        "n",
        "accuracy paper",
        "accuracy run",
        "accuracy inside CI",
        "f1 paper",
        "f1 run",
        "f1 inside CI",
    ]
    # 0.982 lies in [0.25, 1.0]; 0.98 lies above [0.3, 0.9].
    assert overview.rows == [
        ["ResNet50", "120", "0.982", "0.750 (0.25–1.00)", "yes", "0.980", "0.600 (0.30–0.90)", "no"]
    ]
    (tmp_path / "figures").mkdir()
    section = sections(pages.overview_markdown({"resnet50-gradcam": metrics}, tmp_path / "figures", tmp_path))
    resnet = section["resnet50-gradcam"]
    assert "`paper` profile, data iqothnccd" in resnet and "Comparable with the paper's numbers" in resnet
    assert "not comparable" not in resnet.lower()


def test_rows_written_before_they_said_whether_the_run_is_comparable_take_the_runs_verdict(tmp_path):
    # An older phantom record: its rows claim the paper inside the interval, which a phantom run cannot tell.
    older = fake_metrics("resnet50-gradcam", [{**ROW, "paper_inside_ci": True}])
    assert pages.judged_rows(older) == [{**ROW, "paper_inside_ci": None, "comparable": False, "reason": "phantoms"}]
    assert pages.experiment_overview("resnet50-gradcam", older).rows[0][-1] == "not comparable (phantoms)"
    (tmp_path / "figures").mkdir()
    page = pages.overview_markdown({"resnet50-gradcam": older}, tmp_path / "figures", tmp_path)
    assert "not comparable (phantoms)" in page and "Not comparable with the paper's numbers (phantoms)" in page
    assert "is grey" in page  # the forest plot's caption says how it draws a phantom run


def test_a_run_without_claims_shows_its_own_headline_values_and_folds_as_n():
    metrics = fake_metrics("iqoth", [], source="iqothnccd (/data/iqothnccd)")
    metrics["models"] = {
        "ResNet50": {
            "n": 30,
            "accuracy": {"value": 0.9, "ci95": [0.81, 0.96]},
            "f1": {"value": 0.88, "ci95": [0.79, 0.95]},
            "auc": {"value": 0.95, "ci95": [0.9, 0.99]},
        }
    }
    overview = pages.experiment_overview("iqoth", metrics)
    assert not overview.claims
    assert overview.header == ["model", "n", *pages.HEADLINE_METRICS]
    assert overview.rows == [["ResNet50", "30", "0.900 (0.81–0.96)", "0.880 (0.79–0.95)"]]
    folds = fake_metrics("gradcam-3d", [{**ROW, "model": "CNN3D"}])
    folds["models"] = {"CNN3D": {"accuracy": {"value": 0.75, "ci95": [0.25, 1.0], "folds": [0.5, 1.0]}}}
    assert pages.experiment_overview("gradcam-3d", folds).rows == [
        ["CNN3D", "2 folds", "0.982", "0.750 (0.25–1.00)", "not comparable (phantoms)"]
    ]
    assert pages.experiment_overview("gradcam-3d", None).run is None


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
    # missing.md and banner.md were rendered by the book module before its prose moved into templates;
    # overview.md was regenerated for issue 26's compact tables and read by eye; overview.md and banner.md
    # again for issue 30's honest labels (the run label, "inside CI", a phantom run not comparable).
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
        pages.FOREST_FIGURE,
    ]


def test_the_run_label_is_the_first_thing_under_the_page_title(tmp_path):
    notebook = nbformat.v4.new_notebook()
    intro = "*A reproduction protocol for* a paper.\n\n**What the paper did.** A CNN."
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# Alpha\n\n{intro}"), nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(notebook, tmp_path / "alpha.ipynb")
    metrics = fake_metrics("resnet50-gradcam", [ROW])

    page = pages.with_banner(tmp_path / "alpha.ipynb", metrics)

    assert [cell.cell_type for cell in page.cells] == ["markdown", "markdown", "markdown", "code"]
    assert page.cells[0].source == "# Alpha"
    assert page.cells[1].metadata["tags"] == [pages.BANNER_TAG]
    assert page.cells[1].source.startswith(":::{note}\n**What ran:** the `smoke` profile on the phantom set")
    assert "not comparable with the paper (phantoms" in page.cells[1].source
    assert page.cells[2].source == intro
