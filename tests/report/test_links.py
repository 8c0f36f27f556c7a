"""The link checker of a built HTML book (common.report.links)."""

from __future__ import annotations

from pathlib import Path

from common.report import book, links
from tests.report.fakes import TINY_PNG


def write_html(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")


def test_broken_links_reports_missing_files_and_anchors_only(tmp_path):
    write_html(
        tmp_path / "index.html",
        '<a href="book/a.html#results">ok</a> <a href="https://x.org/y">ext</a>'
        '<a href="#top">self</a><h1 id="top">t</h1><img src="_images/f.png">',
    )
    write_html(
        tmp_path / "book/a.html",
        '<section id="results"></section>'
        '<a href="../index.html#nowhere">bad anchor</a>'
        '<a href="b.html">missing page</a><img src="../_images/gone.png">'
        '<a href="mailto:a@b.c">mail</a>',
    )
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images/f.png").write_bytes(TINY_PNG)
    write_html(tmp_path / "_static/template.html", "<a href=\"{{ pathto('x') }}\">template</a>")

    assert links.broken_links(tmp_path) == [
        "book/a.html: ../_images/gone.png",
        "book/a.html: ../index.html#nowhere",
        "book/a.html: b.html",
    ]


def test_broken_links_is_importable_from_book_as_before():
    assert book.broken_links is links.broken_links
