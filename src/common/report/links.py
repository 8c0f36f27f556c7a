"""Check a built HTML book for internal links and images that point nowhere.

Example:
    >>> from common.report.links import broken_links
    >>> broken_links(Path("_build/html"))  # doctest: +SKIP
    []
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _LinkCollector(HTMLParser):
    """Collects the ids of one HTML page and the local URLs it refers to."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for anchor in ("id", "name") if tag == "a" else ("id",):
            if attributes.get(anchor):
                self.ids.add(attributes[anchor])
        for url_attribute in ("href", "src"):
            url = attributes.get(url_attribute)
            if url and tag in ("a", "img", "link", "script", "source"):
                self.urls.append(url)


def _collect_pages(html_dir: Path) -> dict[Path, _LinkCollector]:
    """The ids and URLs of every page under ``html_dir``, skipping the theme templates in ``_static/``."""
    pages: dict[Path, _LinkCollector] = {}
    for page in html_dir.rglob("*.html"):
        if page.relative_to(html_dir).parts[0] == "_static":
            continue  # the themes' Jinja templates, shipped as .html, not pages
        collector = _LinkCollector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = collector
    return pages


def _resolves(page: Path, url: str, pages: dict[Path, _LinkCollector]) -> bool:
    """Whether an internal ``url`` of ``page`` names an existing file (and, for HTML, an existing id)."""
    parts = urlsplit(url)
    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if target.is_dir():
        target = target / "index.html"
    fragment = unquote(parts.fragment)
    if not target.exists():
        return False
    if fragment and target.suffix == ".html":
        return fragment in (pages[target].ids if target in pages else set())
    return True


def broken_links(html_dir: Path) -> list[str]:
    """Return every internal link of a built HTML book that points nowhere.

    A link is internal when it has no scheme and no host (``../x.html#y``,
    ``_images/a.png``, ``#y``); the theme templates in ``_static/`` are not
    pages and are skipped. It is broken when its file does not exist or,
    for an HTML target with a ``#fragment``, no element has that id.

    Args:
        html_dir: The built book (``_build/html``).

    Returns:
        ``"<page>: <link>"`` per broken link, sorted; empty when all resolve.
    """
    html_dir = Path(html_dir).resolve()
    pages = _collect_pages(html_dir)
    broken = []
    for page, collector in pages.items():
        for url in collector.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("//"):
                continue
            if not _resolves(page, url, pages):
                broken.append(f"{page.relative_to(html_dir)}: {url}")
    return sorted(broken)
