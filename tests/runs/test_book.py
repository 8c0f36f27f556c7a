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
from tests.browser import headless_chromium

SCREENSHOT = project_root() / "_build" / "screenshots" / "overview.png"
# Cells are tagged by the figures they save (book.figure_tags); the names differ per experiment.
CONFUSION_CELLS = 'div.cell[class*="tag_figure-confusion"]'
HEATMAP_CELLS = 'div.cell[class*="tag_figure-cam"]'


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
    out_dir = tmp_path_factory.mktemp("book") / "html"
    started = time.perf_counter()
    index = book.build(results_dir=smoke_results.root, out_dir=out_dir)
    seconds = time.perf_counter() - started
    print(f"\nbook build: {seconds:.1f} s for {len(ran)} experiment pages")
    return index.parent, ran, seconds


def page_of(html_dir: Path, experiment_id: str) -> Path:
    return html_dir / book.EXPERIMENT_PAGES / f"{experiment_id}.html"


@pytest.mark.notebook(*experiments_with_notebooks())
def test_book_builds_with_warnings_as_errors_and_no_broken_links(built_book):
    html_dir, ran, _ = built_book
    # build() ran jupyter-book with -W -n and checked the links; check again what it left.
    assert book.broken_links(html_dir) == []
    for experiment_id in ran:
        html = page_of(html_dir, experiment_id).read_text(encoding="utf-8")
        assert "Run summary" in html and "profile <code" in html, experiment_id
    overview = (html_dir / book.GENERATED / "overview.html").read_text(encoding="utf-8")
    assert "<table" in overview


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


def load(driver, page: Path) -> None:
    driver.get(page.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, f"{page} did not finish loading"
        time.sleep(0.2)


def image_widths(driver, selector: str = "img") -> list[tuple[str, int]]:
    """``(src, naturalWidth)`` of the images matching a CSS selector; 0 means it did not load."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(img => [img.getAttribute('src'), img.complete ? img.naturalWidth : 0]);",
        selector,
    )


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks())
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
@pytest.mark.notebook(*experiments_with_notebooks())
def test_experiment_pages_show_confusion_matrix_and_heatmaps(built_book, browser):
    html_dir, ran, _ = built_book
    for experiment_id in ran:
        load(browser, page_of(html_dir, experiment_id))
        for what, selector in (("confusion matrix", CONFUSION_CELLS), ("heatmap", HEATMAP_CELLS)):
            shown = [w for _, w in image_widths(browser, f"{selector} img") if w > 0]
            assert shown, f"{experiment_id}: no {what} figure among the notebook's outputs"


@pytest.mark.browser
@pytest.mark.notebook(*experiments_with_notebooks())
def test_overview_table_has_a_row_per_experiment_and_is_screenshotted(built_book, browser):
    html_dir, ran, _ = built_book
    load(browser, html_dir / book.GENERATED / "overview.html")
    first_cells = [
        cell.text.strip() for cell in browser.find_elements("css selector", "main table tbody tr td:first-child")
    ]
    for experiment_id in registry.experiment_ids():
        assert experiment_id in first_cells, f"overview has no row for {experiment_id}"
    for experiment_id in ran:
        rows = browser.find_elements("xpath", f"//main//table//tr[td[1][normalize-space()='{experiment_id}']]")
        assert "not run" not in rows[0].text, f"{experiment_id} ran but the overview says it did not"
    # Tall enough for the whole table and the start of the headline figures.
    table_bottom = browser.execute_script(
        "return document.querySelector('main table').getBoundingClientRect().bottom + window.scrollY"
    )
    browser.set_window_size(1400, int(table_bottom) + 700)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
