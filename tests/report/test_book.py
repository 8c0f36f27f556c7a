"""Assembling the book from fake results; its table of contents; the commands its pages show."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import nbformat
import pytest
import yaml

from common.config import registry
from common.errors import StudyError, StudyWarning
from common.report import book
from common.report.results import project_root
from tests.report.fakes import fake_bench_record, table_rows, write_fake_run

BOOK_PAGES = sorted((project_root() / book.BOOK_DIR).glob("*.md"))


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


@pytest.mark.parametrize("damage", ["truncated", "not_an_object", "not_utf8"])
def test_assemble_leaves_out_an_unreadable_run_record_and_says_so(tmp_path, damage):
    results = tmp_path / "results"
    for experiment_id in ("iqoth", "multi-organ"):
        write_fake_run(results, experiment_id, [])
    metrics_file = results / "iqoth" / "metrics.json"
    text = metrics_file.read_text()
    metrics_file.write_bytes(
        {
            "truncated": text[: len(text) // 2].encode(),
            "not_an_object": b"[1, 2]",
            "not_utf8": b"\xff\xfe" + text.encode(),
        }[damage]
    )
    root = book.copy_book_sources(tmp_path / "root")

    with pytest.warns(StudyWarning, match=r"the book leaves out .*iqoth/metrics\.json: .*run the experiment again"):
        found = book.assemble(results, root)

    assert list(found) == ["multi-organ"]
    page = (root / book.EXPERIMENT_PAGES / "iqoth.md").read_text()
    assert "`results/iqoth/metrics.json` cannot be read" in page and "camstudy run iqoth" in page
    assert str(tmp_path) not in page
    assert not (root / book.EXPERIMENT_PAGES / "iqoth.ipynb").exists()
    assert (root / book.EXPERIMENT_PAGES / "multi-organ.ipynb").exists()


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
    assert f"{book.GENERATED}/overview" in files and f"{book.GENERATED}/which-cam" in files


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
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
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
    (results / "run_log.jsonl").write_text(
        json.dumps({"experiment": "multi-organ", "profile": "default", "ok": True, "wall_time_s": 135.2, "error": ""})
        + "\n"
    )
    root = book.copy_book_sources(tmp_path / "root")

    book.assemble(results, root)

    page = (root / book.GENERATED / "performance.md").read_text()
    wall_times = table_rows(page.split("## Notebook wall times")[1])
    assert wall_times == [["multi-organ", "– (budget 30)", "135 (budget 180)", "–"]]
    assert "11.48" in page  # the ratios still come from bench.json
