"""The book's generated pages, from fake results; its link checker; the commands its pages show."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import nbformat
import pytest
import yaml

from common.report import book, figures
from common.data import manifest
from common.config import registry
from common.errors import StudyError
from common.report.results import project_root, read_metrics, write_json_atomic

BOOK_PAGES = sorted((project_root() / book.BOOK_DIR).glob("*.md"))
# A 1x1 PNG: enough for the overview to copy a headline figure.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
)


def fake_metrics(experiment_id: str, rows: list[dict], figures=(), source="phantoms/chest (chest-0a1b)") -> dict:
    """A metrics.json record with only what the book reads."""
    return {
        "experiment": experiment_id, "profile": "smoke", "seed": 42,
        "data": {"source": source}, "parameters": {},
        "versions": {"python": "3.11", "tensorflow": "2.21.0"}, "started_at": "2026-11-22T00:00:00",
        "wall_time_s": 12.5, "peak_memory_mb": 900.0, "paper_vs_run": rows, "figures": list(figures),
    }


def write_fake_run(results_dir: Path, experiment_id: str, rows: list[dict], figures=(), **metrics) -> None:
    """Write a run folder: executed notebook (title, figure cell), metrics.json, figure PNGs."""
    run_dir = results_dir / experiment_id
    (run_dir / "figures").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {experiment_id}"),
        nbformat.v4.new_code_cell('figures.confusion_matrix(cm, names, path=run.figure_path("confusion_matrix"))'),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    nbformat.write(notebook, run_dir / f"{experiment_id}.ipynb")
    for name in figures:
        (run_dir / "figures" / f"{name}.png").write_bytes(TINY_PNG)
    write_json_atomic(run_dir / "metrics.json", fake_metrics(experiment_id, rows, [f"{n}.png" for n in figures], **metrics))


ROW = {"model": "ResNet50", "metric": "accuracy", "paper": 0.982, "this_run": 0.75, "ci95": [0.25, 1.0]}


def table_rows(markdown: str) -> list[list[str]]:
    """Body rows of the first Markdown table, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_overview_gives_every_experiment_a_row_with_claim_ci_profile_and_data(tmp_path):
    results = tmp_path / "results"
    write_fake_run(results, "resnet50-gradcam", [ROW], figures=("confusion_matrix", "cam_grid", "samples"))
    write_fake_run(results, "iqoth", [], source="iqothnccd (/data/iqothnccd)")
    all_metrics = {e: read_metrics(results / e / "metrics.json") for e in ("resnet50-gradcam", "iqoth")}
    (tmp_path / "figures").mkdir()

    page = book.overview_markdown(all_metrics, tmp_path / "figures", results)

    rows = table_rows(page)
    by_experiment = {}
    for row in rows:
        by_experiment.setdefault(re.match(r"\[([\w-]+)\]", row[0]).group(1), []).append(row)
    assert list(by_experiment) == registry.experiment_ids()
    assert by_experiment["resnet50-gradcam"] == [[
        "[resnet50-gradcam](../experiments/resnet50-gradcam)", "ResNet50", "accuracy", "0.982",
        "0.750 [0.250,\u00a01.000]", "smoke, phantoms/\u200bchest"]]
    # A paper without numbers still gets its row, with this run's profile and data.
    assert by_experiment["iqoth"][0][3] == "no numbers reported"
    assert by_experiment["iqoth"][0][5] == "smoke, iqothnccd"
    assert by_experiment["gradcam-3d"][0][4] == "not run"
    # Headline figures: confusion matrix and heatmaps, not every figure.
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "resnet50-gradcam-cam_grid.png", "resnet50-gradcam-confusion_matrix.png"]
    assert "```{figure} figures/resnet50-gradcam-cam_grid.png" in page


def test_assemble_builds_pages_in_the_given_root_with_banner_and_figure_tags(tmp_path):
    results = tmp_path / "results"
    write_fake_run(results, "iqoth", [], figures=("confusion_matrix",))
    root = book.copy_book_sources(tmp_path / "root")

    found = book.assemble(results, root)

    assert list(found) == ["iqoth"]
    notebook = nbformat.read(root / book.EXPERIMENT_PAGES / "iqoth.ipynb", as_version=4)
    banner = notebook.cells[1]
    assert banner.metadata["tags"] == ["run-banner"]
    assert "profile `smoke`" in banner.source and "phantoms/chest (chest-0a1b)" in banner.source
    assert "wall time 12 s" in banner.source and "TensorFlow 2.21.0" in banner.source
    assert notebook.cells[2].metadata["tags"] == ["figure-confusion_matrix"]
    assert notebook.cells[3].metadata.get("tags", []) == []
    for experiment_id in set(registry.experiment_ids()) - {"iqoth"}:
        missing_page = (root / book.EXPERIMENT_PAGES / f"{experiment_id}.md").read_text()
        assert f"camstudy run {experiment_id}" in missing_page
    assert (root / book.GENERATED / "overview.md").exists()
    assert (root / book.GENERATED / "datasets.md").exists()
    assert sorted(p.name for p in (root / book.BOOK_DIR).glob("*.md")) == [p.name for p in BOOK_PAGES]


@pytest.mark.parametrize("source, tags", [
    ('fig = figures.cam_grid(rows, path=run.figure_path("cam_grid"))', ["figure-cam_grid"]),
    ("a(run.figure_path('roc'))\nb(run.figure_path( 'cm' ))\nc(run.figure_path('roc'))", ["figure-roc", "figure-cm"]),
    ('figures.cam_grid(rows, path=run.figure_path(f"cam_layers_{name}"))', ["figure-cam_layers"]),
    ("figures.cam_grid(rows)", []),
])
def test_figure_tags_name_the_figures_a_cell_saves(source, tags):
    assert book.figure_tags(source) == tags


def test_datasets_section_is_read_from_every_manifest():
    section = book.datasets_markdown()
    for name in manifest.available_manifests():
        record = manifest.load_manifest(name)
        assert f"`data_manifests/{name}.yaml`" in section
        assert book._one_line(record["licence"]) in section
        assert book._one_line(record["citation"]) in section
    assert "- **Used by:** resnet50-gradcam, iqoth" in section
    # Placeholders such as <data dir> must show, not be read as HTML tags.
    assert "&lt;data dir&gt;" in section and "<data dir>" not in section.replace("`", "")


def write_html(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")


def test_broken_links_reports_missing_files_and_anchors_only(tmp_path):
    write_html(tmp_path / "index.html", '<a href="book/a.html#results">ok</a> <a href="https://x.org/y">ext</a>'
                                        '<a href="#top">self</a><h1 id="top">t</h1><img src="_images/f.png">')
    write_html(tmp_path / "book/a.html", '<section id="results"></section>'
                                         '<a href="../index.html#nowhere">bad anchor</a>'
                                         '<a href="b.html">missing page</a><img src="../_images/gone.png">'
                                         '<a href="mailto:a@b.c">mail</a>')
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images/f.png").write_bytes(TINY_PNG)
    write_html(tmp_path / "_static/template.html", "<a href=\"{{ pathto('x') }}\">template</a>")

    assert book.broken_links(tmp_path) == [
        "book/a.html: ../_images/gone.png", "book/a.html: ../index.html#nowhere", "book/a.html: b.html"]


def test_build_refuses_to_empty_a_folder_that_is_not_a_book_build(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="not empty"):
        book.build(results_dir=tmp_path, out_dir=tmp_path)
    assert (tmp_path / "notes.txt").exists()


def toc_files() -> list[str]:
    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


def test_toc_holds_every_experiment_and_every_hand_written_page():
    files = toc_files()
    for experiment_id in registry.experiment_ids():
        assert f"{book.EXPERIMENT_PAGES}/{experiment_id}" in files
    for page in BOOK_PAGES:
        # only_build_toc_files: a page missing from the toc would silently vanish.
        assert f"{book.BOOK_DIR}/{page.stem}" in files
    assert f"{book.GENERATED}/overview" in files


MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", BOOK_PAGES, ids=lambda p: p.name)
def test_internal_links_of_hand_written_pages_point_at_toc_pages(page):
    documents = set(toc_files())
    for target in MARKDOWN_LINK.findall(page.read_text()):
        if "://" in target:
            continue
        resolved = (page.parent / target).resolve().relative_to(project_root()).with_suffix("")
        assert resolved.as_posix() in documents, f"{page.name} links to {target}, not a page of the book"


def commands_in_pages() -> list[tuple[str, list[str]]]:
    """Every ``camstudy run`` and ``papermill`` command in the book's code blocks, tokenised."""
    commands = []
    for page in BOOK_PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith(("camstudy run", "papermill")):
                    commands.append((page.name, shlex.split(line)))
    return commands


def test_every_command_in_the_book_names_real_experiments_and_parameters():
    commands = commands_in_pages()
    assert len(commands) >= 15  # the pages show many; none may go stale
    checked_overrides = 0
    for page, words in commands:
        if words[0] == "camstudy":
            experiment_id = words[2]
            profile = words[words.index("--profile") + 1] if "--profile" in words else "default"
            overrides = registry.parse_overrides([words[i + 1] for i, w in enumerate(words) if w == "-p"])
        else:
            experiment_id = Path(words[1]).stem
            options = yaml.safe_load(words[words.index("-y") + 1]) if "-y" in words else {}
            profile = options.get("profile", "smoke" if "smoke" in words else "default")
            overrides = options.get("overrides", {})
        if experiment_id == "all":
            continue
        assert experiment_id in registry.experiment_ids(), f"{page}: {' '.join(words)}"
        registry.resolve(experiment_id, profile, overrides)  # raises on an unknown parameter or type
        checked_overrides += len(overrides)
    assert checked_overrides >= 8


def fake_bench_record() -> dict:
    """A bench.json record as ``camstudy bench`` writes it: one ratio below its target."""
    return {
        "quick": True, "experiment": "resnet50-gradcam", "model": "ResNet50", "image_size": 96, "batch_size": 32,
        "pipeline_vs_model": {"value": 7.345, "target": 3.0, "meets_target": True, "cold_images_per_s": 210.5,
                              "cached_images_per_s": 880.25, "cold_ratio": 1.757,
                              "model_train_images_per_s": 119.84},
        "pipeline_vs_in_memory": {"value": 0.912, "target": 0.95, "meets_target": False,
                                  "pipeline_train_images_per_s": 109.3, "in_memory_train_images_per_s": 119.84},
        "batched_cam_speedup": {"value": 11.48, "target": 5.0, "meets_target": True,
                                "batched_images_per_s": 45.92, "single_images_per_s": 4.0, "batch_size": 32},
        "notebook_wall_times_s": {"iqoth": {"smoke": 41.3, "default": 612.0}, "gradcam-3d": {"default": 226.1}},
        "machine": {"cpu_count": 2, "processor": "x86_64", "memory_gb": 7.7, "device": "CPU", "gpus": [],
                    "tensorflow": "2.21.0", "load_average_1min": 3.25, "versions": {"python": "3.11.9"}},
        "measured_at": "2026-11-22T10:00:00+0000",
    }


def test_performance_page_renders_every_number_from_the_bench_record(tmp_path):
    page = book.performance_markdown(fake_bench_record(), tmp_path)

    ratio_table = page.split("## Ratios")[1]
    rows = {row[0]: row for row in table_rows(ratio_table)}
    assert rows["`pipeline_vs_model`"][1:4] == ["7.34", "≥ 3.0", "yes"]
    assert rows["`pipeline_vs_in_memory`"][1:4] == ["0.91", "≥ 0.95", "**no**"]
    assert rows["`batched_cam_speedup`"][1:4] == ["11.48", "≥ 5.0", "yes"]
    assert "880.2 img/s cached (210.5 cold" in rows["`pipeline_vs_model`"][4]
    assert "batches of 32: 45.92 vs 4.00" in rows["`batched_cam_speedup`"][4]
    # The ratio figure is drawn beside the page and linked from it.
    assert (tmp_path / book.BENCH_FIGURE).read_bytes()[:4] == b"\x89PNG"
    assert f"```{{figure}} figures/{book.BENCH_FIGURE}" in page
    assert figures.plt.get_fignums() == []  # the page closes its figure
    # The machine, and that it was busy: load 3.25 on 2 CPUs.
    for text in ("**CPUs:** 2 (x86_64)", "**Memory:** 7.7 GB", "**Device:** CPU", "**TensorFlow:** 2.21.0",
                 "when measured:** 3.25 (higher than the CPU count", "with `--quick`"):
        assert text in page
    wall_times = table_rows(page.split("## Notebook wall times")[1])
    # Each time stands beside the registry's budget for that profile (the paper profile has none).
    assert wall_times == [["iqoth", "41 (budget 60)", "612 (budget 300)", "–"],
                          ["gradcam-3d", "– (budget 60)", "226 (budget 300)", "–"]]
    assert "No measurement yet" not in page


def test_performance_page_without_bench_json_says_how_to_make_it(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    root = book.copy_book_sources(tmp_path / "root")

    book.assemble(results, root)

    page = (root / book.GENERATED / "performance.md").read_text()
    assert "There is no `results/bench.json`" in page
    assert "```bash\ncamstudy bench --quick\n" in page
    assert list((root / book.GENERATED / "figures").iterdir()) == []
    assert f"{book.GENERATED}/performance" in toc_files()


def test_assembled_performance_page_takes_wall_times_from_the_run_log_of_the_build(tmp_path):
    # make book measures the ratios before it runs the notebooks: the page shows the runs logged since.
    results = tmp_path / "results"
    results.mkdir()
    (results / "bench.json").write_text(json.dumps(fake_bench_record()))
    (results / "run_log.jsonl").write_text(json.dumps(
        {"experiment": "multi-organ", "profile": "default", "ok": True, "wall_time_s": 135.2, "error": ""}) + "\n")
    root = book.copy_book_sources(tmp_path / "root")

    book.assemble(results, root)

    page = (root / book.GENERATED / "performance.md").read_text()
    wall_times = table_rows(page.split("## Notebook wall times")[1])
    assert wall_times == [["multi-organ", "– (budget 30)", "135 (budget 180)", "–"]]
    assert "11.48" in page  # the ratios still come from bench.json
