"""Assemble and build the Jupyter Book from the executed notebooks in ``results/``.

The book never executes anything. :func:`assemble` copies each experiment's
executed notebook into ``book/experiments/`` with a run-summary banner on top
(and, when ``results/<id>/seeds.json`` exists, its spread over seeds before "Recording the
run"), and generates the results overview (from every ``results/*/metrics.json``), the
performance page (from ``results/bench.json``, written by ``camstudy bench``) and
the data-set section of the methods page (from ``data_manifests/*.yaml``).
:func:`build` then runs ``jupyter-book build`` with warnings as errors and
checks that every internal link and image of the HTML resolves
(:func:`broken_links`).

The pages are rendered by :mod:`common.report.pages` and
:mod:`common.report.performance` from the templates in ``templates/``; the
link checker is :mod:`common.report.links`. Their public names are importable
from here too (``book.overview_markdown``, ``book.broken_links``, ...).

Example:
    >>> from common.report import book
    >>> book.build()                                     # doctest: +SKIP
    PosixPath('.../_build/html/index.html')
    >>> book.build(results_dir=tmp / "results", out_dir=tmp / "html")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import nbformat
import yaml

from common.config import registry
from common.errors import DataError, StudyError, StudyWarning
from common.real_runs import REAL_RESULTS
from common.report import real_pages
from common.report.links import broken_links
from common.report.pages import (
    datasets_markdown,
    figure_tags,
    missing_page,
    overview_markdown,
    with_banner,
)
from common.report.performance import (
    BENCH_FIGURE,
    BENCH_FILE,
    performance_markdown,
    read_bench,
    with_current_wall_times,
)
from common.report.results import project_root, read_metrics, results_root
from common.report.which_cam import which_cam_markdown

__all__ = [
    "BENCH_FIGURE",
    "BENCH_FILE",
    "BOOK_DIR",
    "BOOK_SOURCE_FILES",
    "EXPERIMENT_PAGES",
    "GENERATED",
    "assemble",
    "broken_links",
    "build",
    "copy_book_sources",
    "datasets_markdown",
    "figure_tags",
    "overview_markdown",
    "performance_markdown",
    "read_bench",
    "with_seed_section",
]

BOOK_DIR = "book"
EXPERIMENT_PAGES = "book/experiments"
GENERATED = "book/generated"
# The table of contents with the "Real scans" part, written only when there are real-data runs.
GENERATED_TOC = "book/generated/_toc.yml"
# What a separate build root needs: the configuration and the hand-written pages.
BOOK_SOURCE_FILES = ("_config.yml", "_toc.yml")
# An experiment's page shows its spread over seeds (results/<id>/seeds.json) before this heading, or at its end.
SEED_SECTION_BEFORE = "Recording the run"
SEED_SECTION_TAG = "seed-spread"
# The book's stylesheet (tables scroll inside their box, values do not wrap); Jupyter Book adds every CSS file in it.
STATIC_DIR = "_static"


def _fresh_folder(folder: Path) -> Path:
    """Empty ``folder`` (creating it) and return it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def assemble(results_dir: Path | None = None, book_root: Path | None = None) -> dict[str, dict]:
    """Copy executed notebooks into the book and generate its overview, performance and data-set pages.

    Args:
        results_dir: Where the runs are (default ``results/``).
        book_root: The book's top folder, holding ``_toc.yml`` and ``book/``
            (default: the project's top folder).

    Returns:
        ``{experiment id: metrics.json record}`` of the runs found.
    """
    book_root = book_root or project_root()
    results_dir = results_dir or results_root()
    pages = _fresh_folder(book_root / EXPERIMENT_PAGES)
    generated = _fresh_folder(book_root / GENERATED)
    (generated / "figures").mkdir()
    found: dict[str, dict] = {}
    for experiment_id in registry.experiment_ids():
        run_dir = results_dir / experiment_id
        metrics, unreadable = _readable_run(run_dir, experiment_id)
        if metrics is not None:
            found[experiment_id] = metrics
            page = with_seed_section(with_banner(run_dir / f"{experiment_id}.ipynb", metrics), run_dir, pages)
            nbformat.write(page, pages / f"{experiment_id}.ipynb")
        else:
            (pages / f"{experiment_id}.md").write_text(missing_page(experiment_id, unreadable), encoding="utf-8")
    _assemble_real(results_dir, book_root)
    (generated / "overview.md").write_text(
        overview_markdown(found, generated / "figures", results_dir), encoding="utf-8"
    )
    (generated / "datasets.md").write_text(datasets_markdown(), encoding="utf-8")
    (generated / "which-cam.md").write_text(which_cam_markdown(found), encoding="utf-8")
    record = with_current_wall_times(read_bench(results_dir), results_dir)
    (generated / "performance.md").write_text(performance_markdown(record, generated / "figures"), encoding="utf-8")
    return found


def _seed_section_position(notebook: nbformat.NotebookNode) -> int:
    """Where the seed section goes: before the Markdown cell that opens :data:`SEED_SECTION_BEFORE`, else last."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and any(
            line.lstrip("#").strip() == SEED_SECTION_BEFORE for line in cell.source.splitlines() if line.startswith("#")
        ):
            return index
    return len(notebook.cells)


def with_seed_section(notebook: nbformat.NotebookNode, run_dir: Path, pages: Path) -> nbformat.NotebookNode:
    """Add the spread over seeds to an experiment's page when its run folder holds a ``seeds.json``.

    The section (:func:`common.seeds.seed_section`) becomes a Markdown cell before
    the page's "Recording the run" heading (at the end when there is none), and
    its figure is copied to ``<pages>/figures/<id>-seed_spread.png``, which the
    section links. An unreadable ``seeds.json`` is left out with a warning.

    Args:
        notebook: The page (the executed notebook with its banner); changed in place.
        run_dir: The run's folder (``results/<id>``).
        pages: The folder the page is written to.

    Returns:
        ``notebook``.
    """
    from common import seeds

    seeds_file = run_dir / seeds.SEEDS_FILE
    if not seeds_file.exists():
        return notebook
    try:
        result = seeds.read_aggregate(seeds_file)
    except DataError as error:
        warnings.warn(f"the book leaves out the seed spread: {error}", StudyWarning, stacklevel=2)
        return notebook
    figure = run_dir / "figures" / f"{seeds.SEED_FIGURE}.png"
    link = None
    if figure.exists():
        target = pages / "figures" / f"{run_dir.name}-{figure.name}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(figure, target)
        link = f"figures/{target.name}"
    cell = nbformat.v4.new_markdown_cell(seeds.seed_section(result, link), metadata={"tags": [SEED_SECTION_TAG]})
    notebook.cells.insert(_seed_section_position(notebook), cell)
    return notebook


def _readable_run(run_dir: Path, experiment_id: str) -> tuple[dict | None, str | None]:
    """``(metrics, None)`` of a finished run; ``(None, why)`` when unreadable; ``(None, None)`` when absent."""
    if not ((run_dir / f"{experiment_id}.ipynb").exists() and (run_dir / "metrics.json").exists()):
        return None, None
    try:
        return read_metrics(run_dir / "metrics.json"), None
    except DataError as error:
        warnings.warn(f"the book leaves out {error}", StudyWarning, stacklevel=3)
        return None, str(error)


def _assemble_real(results_dir: Path, book_root: Path) -> dict[str, dict]:
    """Pages of the runs in ``results/real`` and the "Real scans" part's opening page and table of contents.

    Without any real-data run nothing is written but an empty ``book/real``, and
    the book keeps its own ``_toc.yml``.
    """
    pages = _fresh_folder(book_root / real_pages.REAL_PAGES)
    toc_file = book_root / GENERATED_TOC
    toc_file.unlink(missing_ok=True)
    found: dict[str, dict] = {}
    for experiment_id in registry.experiment_ids():
        run_dir = results_dir / REAL_RESULTS / experiment_id
        metrics, _ = _readable_run(run_dir, experiment_id)
        if metrics is not None:
            found[experiment_id] = metrics
            page = real_pages.real_page(run_dir / f"{experiment_id}.ipynb", metrics)
            nbformat.write(page, pages / f"{experiment_id}.ipynb")
    if found:
        (book_root / f"{real_pages.REAL_SCANS_PAGE}.md").write_text(
            real_pages.real_scans_markdown(found), encoding="utf-8"
        )
        toc = real_pages.toc_with_real_part(book_root / "_toc.yml", list(found))
        toc_file.write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    return found


def copy_book_sources(target: Path) -> Path:
    """Copy the book's configuration and hand-written pages (``book/*.md``) into ``target``.

    Args:
        target: The new build root (created if missing).

    Returns:
        ``target``.
    """
    top = project_root()
    target.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCE_FILES:
        shutil.copyfile(top / name, target / name)
    shutil.copytree(top / STATIC_DIR, target / STATIC_DIR, dirs_exist_ok=True)
    (target / BOOK_DIR).mkdir(exist_ok=True)
    for page in (top / BOOK_DIR).glob("*.md"):
        shutil.copyfile(page, target / BOOK_DIR / page.name)
    return target


def _run_jupyter_book(book_root: Path, warnings_as_errors: bool) -> Path:
    """Run ``jupyter-book build`` in ``book_root``; return its ``_build/html``."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_root), "--builder", "html"]
    if (book_root / GENERATED_TOC).exists():  # the book with its "Real scans" part
        command += ["--toc", str(book_root / GENERATED_TOC)]
    if warnings_as_errors:
        command += ["-W", "-n", "--keep-going"]
    done = subprocess.run(command, cwd=book_root, capture_output=True, text=True)
    if done.returncode != 0:
        raise StudyError(f"jupyter-book build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return book_root / "_build" / "html"


def _prepare_out_dir(out_dir: Path) -> None:
    """Empty ``out_dir`` for a new build, refusing to empty a folder that is not a book build."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / ".buildinfo").exists():
            raise StudyError(
                f"{out_dir} is not empty and holds no earlier book build (.buildinfo); "
                "give an empty or new folder as the book's output folder."
            )
        shutil.rmtree(out_dir)


def build(
    results_dir: Path | None = None,
    out_dir: Path | None = None,
    warnings_as_errors: bool = True,
) -> Path:
    """Assemble the book from ``results_dir`` and build its HTML; return ``index.html``.

    Without ``out_dir`` the book is assembled in the project (``book/experiments``,
    ``book/generated``) and built to ``_build/html``, as ``camstudy book`` does.
    With ``out_dir`` the book sources are copied into a temporary build root, so
    the project's own ``_build/`` and ``book/experiments`` stay untouched, and
    the HTML lands in ``out_dir``.

    Args:
        results_dir: Where the runs are (default ``results/``).
        out_dir: Folder for the HTML; created, or replaced if it holds an earlier build.
        warnings_as_errors: Build with ``-W -n`` and fail on broken internal links.

    Returns:
        The built book's ``index.html``.

    Raises:
        StudyError: when ``jupyter-book build`` fails (its output is included),
            when ``warnings_as_errors`` and a link is broken, or when ``out_dir``
            is a non-empty folder that is not a book build.
    """
    if out_dir is None:
        assemble(results_dir)
        html_dir = _run_jupyter_book(project_root(), warnings_as_errors)
    else:
        out_dir = Path(out_dir).resolve()
        _prepare_out_dir(out_dir)
        with tempfile.TemporaryDirectory(prefix="camstudy-book-") as scratch:
            book_root = copy_book_sources(Path(scratch))
            assemble(results_dir, book_root)
            shutil.copytree(_run_jupyter_book(book_root, warnings_as_errors), out_dir)
        html_dir = out_dir
    if warnings_as_errors:
        broken = broken_links(html_dir)
        if broken:
            raise StudyError(f"The book in {html_dir} has broken internal links:\n" + "\n".join(broken))
    return html_dir / "index.html"
