"""The book built from the smoke runs of every experiment, checked as HTML and in headless Chromium.

The build uses ``book.build(results_dir=..., out_dir=...)``, so the project's own
``_build/html`` and ``book/experiments`` are never touched; only the overview's
screenshot goes to the project's ``_build/screenshots/overview.png``, for a person
to look at.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from common import runner
from common.config import registry
from common.report import book
from common.report.results import project_root
from tests.book_pages import load, page_problems
from tests.browser import headless_chromium
from tests.conftest import IQOTH_DIR

SCREENSHOTS = project_root() / "_build" / "screenshots"
SCREENSHOT = SCREENSHOTS / "overview.png"
# The project's own book, built by `make book` (default profile): checked like the smoke build when present.
DEFAULT_BUILD = project_root() / "_build" / "html"
# Cells are tagged by the figures they save (book.figure_tags); the names differ per experiment.
CONFUSION_CELLS = 'div.cell[class*="tag_figure-confusion"]'
HEATMAP_CELLS = 'div.cell[class*="tag_figure-cam"]'
# Experiments also run on the real IQ-OTH/NCCD copy (when it is there), for the book's "Real scans" part.
REAL = ("iqoth",)


def experiments_with_notebooks() -> list[str]:
    return [e for e in registry.experiment_ids() if runner.notebook_path(e).exists()]


def test_every_registered_experiment_has_a_notebook():
    missing = [str(runner.notebook_path(e)) for e in registry.experiment_ids() if not runner.notebook_path(e).exists()]
    assert not missing, f"the book needs every experiment's notebook; missing: {missing}"


@pytest.fixture(scope="module")
def built_book(smoke_results, tmp_path_factory):
    """Run every experiment that has a notebook (smoke), build the book from those runs.

    Returns ``(html folder, experiment ids run, build seconds)``.
    """
    ran = experiments_with_notebooks()
    for experiment_id in ran:
        smoke_results(experiment_id)
    for experiment_id in REAL if IQOTH_DIR.is_dir() else ():
        smoke_results.real(experiment_id)
    out_dir = tmp_path_factory.mktemp("book") / "html"
    started = time.perf_counter()
    index = book.build(results_dir=smoke_results.root, out_dir=out_dir)
    seconds = time.perf_counter() - started
    print(f"\nbook build: {seconds:.1f} s for {len(ran)} experiment pages")
    return index.parent, ran, seconds


def page_of(html_dir: Path, experiment_id: str) -> Path:
    return html_dir / book.EXPERIMENT_PAGES / f"{experiment_id}.html"


@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_book_builds_with_warnings_as_errors_and_no_broken_links(built_book):
    html_dir, ran, _ = built_book
    # build() ran jupyter-book with -W -n and checked the links; check again what it left.
    assert book.broken_links(html_dir) == []
    for experiment_id in ran:
        html = page_of(html_dir, experiment_id).read_text(encoding="utf-8")
        assert "Run summary" in html and "profile <code" in html, experiment_id
    overview = (html_dir / book.GENERATED / "overview.html").read_text(encoding="utf-8")
    assert "<table" in overview


@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_real_scans_part_holds_the_real_runs_with_their_data_note(built_book):
    html_dir, _, _ = built_book
    if not IQOTH_DIR.is_dir():
        assert not (html_dir / "book" / "real").exists()  # no real run: the default book has no such part
        pytest.skip(f"real IQ-OTH/NCCD copy not found at {IQOTH_DIR}")
    opening = (html_dir / "book" / "generated" / "real-scans.html").read_text(encoding="utf-8")
    page = (html_dir / "book" / "real" / "iqoth.html").read_text(encoding="utf-8")
    assert 'href="../real/iqoth.html"' in opening and "iqothnccd" in opening
    assert "Real scans: ResNet50 on IQ-OTH/NCCD" in page and "Alyasriy" in page and "CC BY 4.0" in page
    assert "the local copy matches its manifest (all" in page
    assert "Shortcut audit" in page and "623" in page  # the flagged 623 x 512 images
    intro = (html_dir / "book" / "intro.html").read_text(encoding="utf-8")
    assert '<p aria-level="2" class="caption" role="heading"><span class="caption-text">Real scans</span>' in intro


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through selenium; skips when Chromium or its driver is not installed."""
    profile_dir = Path(tempfile.mkdtemp(prefix="camstudy-chromium-"))
    driver = headless_chromium(profile_dir, "1400x1000")
    # Pages refer to a CDN for MathJax; offline that request fails and must not hang the test.
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


def image_widths(driver, selector: str = "img") -> list[tuple[str, int]]:
    """``(src, naturalWidth)`` of the images matching a CSS selector; 0 means it did not load."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(img => [img.getAttribute('src'), img.complete ? img.naturalWidth : 0]);",
        selector,
    )


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_every_page_shows_its_images_in_chromium(built_book, browser):
    html_dir, _, _ = built_book
    pages = sorted((html_dir / book.BOOK_DIR).rglob("*.html"))
    assert len(pages) >= len(registry.experiment_ids()) + 4
    for page in pages:
        load(browser, page)
        assert browser.find_element("css selector", "article h1").text.strip(), f"{page} has no title"
        missing = [src for src, width in image_widths(browser) if width == 0]
        assert not missing, f"{page.relative_to(html_dir)}: images that did not load: {missing}"


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_experiment_pages_show_confusion_matrix_and_heatmaps(built_book, browser):
    html_dir, ran, _ = built_book
    for experiment_id in ran:
        load(browser, page_of(html_dir, experiment_id))
        for what, selector in (("confusion matrix", CONFUSION_CELLS), ("heatmap", HEATMAP_CELLS)):
            shown = [w for _, w in image_widths(browser, f"{selector} img") if w > 0]
            assert shown, f"{experiment_id}: no {what} figure among the notebook's outputs"


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_overview_has_a_table_per_experiment_above_the_fold_and_is_screenshotted(built_book, browser):
    html_dir, ran, _ = built_book
    load(browser, html_dir / book.GENERATED / "overview.html")
    for experiment_id in registry.experiment_ids():
        assert browser.find_elements("css selector", f"main section#{experiment_id}"), f"no section for {experiment_id}"
    browser.set_window_size(1400, 900)
    for experiment_id in ran:
        section = browser.find_element("css selector", f"main section#{experiment_id}")
        assert "not run" not in section.text, f"{experiment_id} ran but the overview says it did not"
        # Above the fold: scrolled to its heading, the experiment's table ends inside a 1400 x 900 window.
        browser.execute_script("arguments[0].scrollIntoView()", section)
        bottom = browser.execute_script(
            "return arguments[0].querySelector('table').getBoundingClientRect().bottom", section
        )
        fold = browser.execute_script("return window.innerHeight")
        assert bottom <= fold, f"{experiment_id}'s table is below the fold"
    # Tall enough for the whole table and the start of the headline figures.
    table_bottom = browser.execute_script(
        "return document.querySelector('main table').getBoundingClientRect().bottom + window.scrollY"
    )
    browser.set_window_size(1400, int(table_bottom) + 700)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def built_pages(html_dir: Path) -> list[Path]:
    return sorted((html_dir / book.BOOK_DIR).rglob("*.html"))


@pytest.mark.browser
def test_page_problems_finds_noise_paths_and_wrapped_values(browser, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><main><h1>T</h1><pre>E0000 00:00 node_def_util.cc:682] NodeDef mentions</pre>"
        f"<p>output_dir = '{tmp_path}/results/.running-iqoth-1'</p>"
        "<table><tr><td style='width:40px'>0.909 (0.82–0.98) n=44</td><td>ok</td></tr></table></main></body></html>",
        encoding="utf-8",
    )
    problems = page_problems(browser, page, [tmp_path])
    assert "shows 'E0000'" in problems and "shows 'node_def_util'" in problems and "shows '.running-'" in problems
    assert f"shows the machine path {tmp_path}" in problems
    assert any(p.startswith("a table cell wraps onto") and "0.909" in p for p in problems)
    clean = "<html><body><main><h1>T</h1><table><tr><td>0.909 (0.82–0.98)</td></tr></table></main></body></html>"
    page.write_text(clean, encoding="utf-8")
    assert page_problems(browser, page, [tmp_path]) == []


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks(), real=REAL)
def test_no_page_shows_log_noise_machine_paths_or_wrapped_values(built_book, browser, smoke_results):
    html_dir, _, _ = built_book
    machine_paths = [project_root(), smoke_results.root, html_dir]
    problems = {page.name: page_problems(browser, page, machine_paths) for page in built_pages(html_dir)}
    assert not {name: found for name, found in problems.items() if found}


def _screenshot(browser, element, name: str) -> Path:
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    path = SCREENSHOTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert element.screenshot(str(path))
    return path


@pytest.mark.browser
@pytest.mark.skipif(not (DEFAULT_BUILD / "index.html").exists(), reason="no `make book` build in _build/html")
def test_the_default_build_is_clean_and_screenshotted(browser):
    """The `make book` build (not only the smoke one): no noise, no machine paths, no wrapped values."""
    problems = {
        page.name: page_problems(browser, page, [project_root(), project_root() / "results"])
        for page in built_pages(DEFAULT_BUILD)
    }
    assert not {name: found for name, found in problems.items() if found}
    load(browser, DEFAULT_BUILD / book.GENERATED / "overview.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "default-overview.png"))
    load(browser, page_of(DEFAULT_BUILD, "nine-models"))
    # The comparison: a table with an accuracy column and a row per model (not the parameters table).
    comparison = "//main//table[.//th[contains(., 'accuracy')] and contains(., 'DenseNet121')]"
    tables = browser.find_elements("xpath", comparison)
    assert tables, "the nine-models page has no comparison table"
    _screenshot(browser, tables[0], "default-nine-models-table.png")
    grids = browser.find_elements("css selector", f"{HEATMAP_CELLS} img")
    assert grids, "the nine-models page has no CAM grid"
    _screenshot(browser, grids[0], "default-nine-models-cam-grid.png")
