"""Assemble and build the Jupyter Book from the executed notebooks in ``results/``.

The book never executes anything. :func:`assemble` copies each experiment's
executed notebook into ``book/experiments/`` with a run-summary banner on top,
and generates the results overview (from every ``results/*/metrics.json``) and
the data-set section of the methods page (from ``data_manifests/*.yaml``).
:func:`build` then runs ``jupyter-book build`` with warnings as errors and
checks that every internal link and image of the HTML resolves
(:func:`broken_links`).

Example:
    >>> from common import book
    >>> book.build()                                     # doctest: +SKIP
    PosixPath('.../_build/html/index.html')
    >>> book.build(results_dir=tmp / "results", out_dir=tmp / "html")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat

from common import manifest, registry
from common.errors import StudyError
from common.results import project_root, read_metrics, results_root, run_banner

BOOK_DIR = "book"
EXPERIMENT_PAGES = "book/experiments"
GENERATED = "book/generated"
# What a separate build root needs: the configuration and the hand-written pages.
BOOK_SOURCE_FILES = ("_config.yml", "_toc.yml")
# Overview figures per experiment: the first of each group the run saved
# (multi-organ shows its heatmaps as contour maps, the others as a CAM grid).
HEADLINE_FIGURES = {
    "confusion matrix": ("confusion_matrix",),
    "heatmaps": ("cam_grid", "cam_contours"),
}
# A notebook saves a figure with ``run.figure_path("name")``; the cell gets the tag ``figure-name``.
FIGURE_CALL = re.compile(r"""figure_path\(\s*f?["']([^"']+)["']""")
FIGURE_TAG_PREFIX = "figure-"


def figure_tags(source: str) -> list[str]:
    """Return the ``figure-<name>`` tags of the figures a code cell saves.

    The tags become CSS classes (``tag_figure-<name>``) of the cell in the HTML,
    so a reader's tools and the browser test can find, say, the confusion matrix.

    Args:
        source: A code cell's source.
    """
    # An f-string name ("cam_layers_{model}") is tagged by its fixed start ("cam_layers").
    names = (name.split("{")[0].rstrip("_-") for name in FIGURE_CALL.findall(source))
    return [FIGURE_TAG_PREFIX + name for name in dict.fromkeys(names) if name]


def _with_banner(notebook_file: Path, metrics: dict) -> nbformat.NotebookNode:
    """Return the executed notebook with a run banner after its title and figure tags on its cells."""
    notebook = nbformat.read(notebook_file, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            tags = cell.metadata.get("tags", [])
            cell.metadata["tags"] = tags + [t for t in figure_tags(cell.source) if t not in tags]
    banner = nbformat.v4.new_markdown_cell(
        ":::{note}\n" + run_banner(metrics) + "\n:::", metadata={"tags": ["run-banner"]}
    )
    notebook.cells.insert(1, banner)
    return notebook


def _missing_page(experiment_id: str) -> str:
    entry = registry.experiment(experiment_id)
    return (
        f"# {entry['title']}\n\n"
        f"This experiment has no finished run in `results/{experiment_id}/` yet. "
        f"Run it with\n\n```bash\ncamstudy run {experiment_id}\n```\n\n"
        "and build the book again.\n"
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _headline_figures(metrics: dict) -> list[tuple[str, str]]:
    """Return ``(caption, figure name)`` of the overview figures a run saved."""
    saved = set(metrics.get("figures", []))
    chosen = []
    for caption, names in HEADLINE_FIGURES.items():
        name = next((n for n in names if f"{n}.png" in saved), None)
        if name:
            chosen.append((caption, name))
    return chosen


def overview_markdown(all_metrics: dict[str, dict], figure_dir: Path, results_dir: Path) -> str:
    """Return the results overview page: one table of paper claims vs this study's runs.

    Every row comes from a ``metrics.json`` (its ``paper_vs_run`` rows, written
    by the notebook from the registry's claims); nothing is typed here. Every
    experiment of the registry gets at least one row, also when its paper
    reports no numbers or it has not been run.

    Args:
        all_metrics: ``{experiment id: metrics.json record}`` of the finished runs.
        figure_dir: Folder beside the page to copy headline figures into
            (the page links them as ``figures/<file>``).
        results_dir: The results folder the runs were read from.
    """
    lines = [
        "# Results overview",
        "",
        "Each row sets a paper's claim beside the value this study measured, with its 95% "
        "confidence interval, and says which profile and data the run used. A phantom run "
        "(`default` or `smoke` profile) checks that the pipeline learns and explains on data "
        "with known lesions; it does not reproduce the paper's number, which needs the "
        "`paper` profile on the real data set ([](../real-data.md)). Values are fractions "
        "(a paper's 98.2% is 0.982); a dash marks a value the paper or the run does not give.",
        "",
        "| experiment | model | metric | paper | this run [95% CI] | profile, data |",
        "|---|---|---|---|---|---|",
    ]
    for experiment_id in registry.experiment_ids():
        page = f"[{experiment_id}](../experiments/{experiment_id})"
        metrics = all_metrics.get(experiment_id)
        if metrics is None:
            lines.append(f"| {page} | – | – | – | not run | – |")
            continue
        # The data's name only ("phantoms/chest", "iqothnccd"); its folder is in the page's banner.
        data_name = metrics.get("data", {}).get("source", "?").split(" (")[0]
        # A zero-width space lets a narrow column wrap "phantoms/chest_volumes" after the slash.
        run_columns = f"{metrics['profile']}, {data_name.replace('/', '/' + chr(0x200B))} |"
        rows = metrics.get("paper_vs_run") or []
        if not rows:
            lines.append(f"| {page} | – | – | no numbers reported | – | {run_columns}")
        for row in rows:
            low, high = row.get("ci95") or [None, None]
            lines.append(
                f"| {page} | {row['model']} | {row['metric']} | {_fmt(row.get('paper'))} | "
                # A no-break space keeps the interval on one line.
                f"{_fmt(row.get('this_run'))} [{_fmt(low)},\u00a0{_fmt(high)}] | {run_columns}"
            )
    lines += ["", "## Headline figures", ""]
    for experiment_id, metrics in all_metrics.items():
        for caption, name in _headline_figures(metrics):
            target = figure_dir / f"{experiment_id}-{name}.png"
            shutil.copyfile(results_dir / experiment_id / "figures" / f"{name}.png", target)
            lines += [f"```{{figure}} figures/{target.name}", f":alt: {experiment_id} {caption}",
                      ":width: 75%", "", f"{experiment_id}: {caption} ({metrics['profile']} profile)",
                      "```", ""]
    return "\n".join(lines) + "\n"


def _one_line(text: object) -> str:
    """Collapse a YAML value to one line of Markdown text (list items need one line).

    Angle brackets outside code spans are escaped, so a placeholder such as
    ``<data dir>`` is shown rather than read as an HTML tag.
    """
    if not text:
        return "–"
    pieces = " ".join(str(text).split()).split("`")
    # Even pieces lie outside code spans.
    for index in range(0, len(pieces), 2):
        pieces[index] = pieces[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(pieces)


def datasets_markdown() -> str:
    """Return the methods page's data-set section, read from ``data_manifests/*.yaml``.

    Each manifest gives its title, the experiments that use it (from the
    registry), citation, licence, source, how to obtain it and its expected
    class counts, so the page can never disagree with what ``camstudy data
    verify`` checks.
    """
    used_by: dict[str, list[str]] = {}
    for experiment_id in registry.experiment_ids():
        name = registry.experiment(experiment_id)["real_data"].get("manifest")
        used_by.setdefault(name, []).append(experiment_id)
    # Without --data-dir every experiment runs on the phantoms (registry.resolve's manifest).
    used_by["phantoms"] = registry.experiment_ids()
    lines = []
    for name in manifest.available_manifests():
        record = manifest.load_manifest(name)
        source = record["source"] or {}
        counts = record["expected_counts"]
        count_text = (
            ", ".join(f"{folder}: {n}" for folder, n in counts.items())
            + f" ({record['count_unit']})" if counts else "not fixed"
        )
        lines += [
            f"### {_one_line(record.get('title', name))}",
            "",
            f"- **Manifest:** `data_manifests/{name}.yaml`"
            f" (`camstudy data verify {name} --data-dir <folder>`)",
            f"- **Used by:** {', '.join(used_by.get(name, [])) or '–'}",
            f"- **Citation:** {_one_line(record['citation'])}",
            f"- **Licence:** {_one_line(record['licence'])}",
            f"- **Source:** {_one_line(source.get('url'))}",
            f"- **How to obtain:** {_one_line(source.get('how_to_obtain'))}",
            f"- **Modality:** {_one_line(record.get('modality'))}",
            f"- **Expected counts:** {count_text}",
            f"- **Notes:** {_one_line(record.get('notes'))}",
            "",
        ]
    return "\n".join(lines)


def assemble(results_dir: Path | None = None, book_root: Path | None = None) -> dict[str, dict]:
    """Copy executed notebooks into the book and generate its overview and data-set pages.

    Args:
        results_dir: Where the runs are (default ``results/``).
        book_root: The book's top folder, holding ``_toc.yml`` and ``book/``
            (default: the project's top folder).

    Returns:
        ``{experiment id: metrics.json record}`` of the runs found.
    """
    book_root = book_root or project_root()
    results_dir = results_dir or results_root()
    pages = book_root / EXPERIMENT_PAGES
    generated = book_root / GENERATED
    for folder in (pages, generated):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (generated / "figures").mkdir()
    found: dict[str, dict] = {}
    for experiment_id in registry.experiment_ids():
        run_dir = results_dir / experiment_id
        notebook_file = run_dir / f"{experiment_id}.ipynb"
        metrics_file = run_dir / "metrics.json"
        if notebook_file.exists() and metrics_file.exists():
            metrics = read_metrics(metrics_file)
            found[experiment_id] = metrics
            nbformat.write(_with_banner(notebook_file, metrics), pages / f"{experiment_id}.ipynb")
        else:
            (pages / f"{experiment_id}.md").write_text(_missing_page(experiment_id), encoding="utf-8")
    (generated / "overview.md").write_text(
        overview_markdown(found, generated / "figures", results_dir), encoding="utf-8"
    )
    (generated / "datasets.md").write_text(datasets_markdown(), encoding="utf-8")
    return found


def copy_book_sources(target: Path) -> Path:
    """Copy the book's configuration and hand-written pages (``book/*.md``) into ``target``."""
    top = project_root()
    target.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCE_FILES:
        shutil.copyfile(top / name, target / name)
    (target / BOOK_DIR).mkdir(exist_ok=True)
    for page in (top / BOOK_DIR).glob("*.md"):
        shutil.copyfile(page, target / BOOK_DIR / page.name)
    return target


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
    pages: dict[Path, _LinkCollector] = {}
    for page in html_dir.rglob("*.html"):
        if page.relative_to(html_dir).parts[0] == "_static":
            continue  # the themes' Jinja templates, shipped as .html, not pages
        collector = _LinkCollector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = collector
    broken = []
    for page, collector in pages.items():
        for url in collector.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            fragment = unquote(parts.fragment)
            if not target.exists():
                broken.append(f"{page.relative_to(html_dir)}: {url}")
            elif fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if fragment not in ids:
                    broken.append(f"{page.relative_to(html_dir)}: {url}")
    return sorted(broken)


def _run_jupyter_book(book_root: Path, warnings_as_errors: bool) -> Path:
    """Run ``jupyter-book build`` in ``book_root``; return its ``_build/html``."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_root),
               "--builder", "html"]
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
