"""Assemble and build the Jupyter Book from the executed notebooks in ``results/``.

The book never executes anything. :func:`assemble` copies each experiment's
executed notebook into ``book/experiments/`` with a run-summary banner on top,
and generates the results overview (from every ``results/*/metrics.json``), the
performance page (from ``results/bench.json``, written by ``camstudy bench``) and
the data-set section of the methods page (from ``data_manifests/*.yaml``).
:func:`build` then runs ``jupyter-book build`` with warnings as errors and
checks that every internal link and image of the HTML resolves
(:func:`broken_links`).

Example:
    >>> from common.report import book
    >>> book.build()                                     # doctest: +SKIP
    PosixPath('.../_build/html/index.html')
    >>> book.build(results_dir=tmp / "results", out_dir=tmp / "html")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat

from common.data import manifest
from common.config import registry
from common.errors import StudyError
from common.report.results import project_root, read_metrics, results_root, run_banner

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
# ``camstudy bench`` writes this file into the results folder (common.bench).
BENCH_FILE = "bench.json"
BENCH_FIGURE = "bench_ratios.png"
# What each ratio of bench.json measures: its name on the page and one sentence.
# No numbers here: values and targets are read from bench.json.
BENCH_RATIOS = {
    "pipeline_vs_model": (
        "input pipeline / model",
        "Images per second the input pipeline delivers on its own (decode, resize, augment, batch; "
        "the cached second pass) over the images per second the model trains on. The pipeline must be "
        "faster than the model it feeds by at least the target factor, so the model does not wait for data.",
    ),
    "pipeline_vs_in_memory": (
        "pipeline training / in-memory training",
        "Training images per second through the project's `tf.data` pipeline over training on the "
        "same batches already held in memory as tensors (the upper limit). Close to 1, the pipeline "
        "costs training almost nothing. The two are timed in alternating rounds, the best round of each "
        "counting, so a burst of other work on the machine does not fall on one side only.",
    ),
    "batched_cam_speedup": (
        "batched / one-at-a-time Grad-CAM",
        "Grad-CAM images per second in batches over one image at a time, through one explainer, so "
        "preparing the model is not counted.",
    ),
}


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


def read_bench(results_dir: Path) -> dict | None:
    """Return the ``bench.json`` record in ``results_dir``, or None when there is none.

    Raises:
        StudyError: when the file exists but is not JSON.
    """
    path = Path(results_dir) / BENCH_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{path} is not valid JSON ({error}); run `camstudy bench --quick` again.") from None


def _cell(value: object) -> str:
    """A value as the text of one Markdown table cell."""
    return "–" if value is None else str(value).replace("|", "\\|")


def _number(value: object, digits: int = 2) -> str:
    return "–" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.{digits}f}"


def _bench_details(key: str, entry: dict) -> str:
    """How one ratio was measured: its two throughputs, from the record."""
    if key == "pipeline_vs_model":
        return (f"pipeline {_number(entry.get('cached_images_per_s'), 1)} img/s cached "
                f"({_number(entry.get('cold_images_per_s'), 1)} cold, ratio {_number(entry.get('cold_ratio'))}); "
                f"model trains {_number(entry.get('model_train_images_per_s'), 1)} img/s")
    if key == "pipeline_vs_in_memory":
        return (f"{_number(entry.get('pipeline_train_images_per_s'), 1)} vs "
                f"{_number(entry.get('in_memory_train_images_per_s'), 1)} training img/s")
    if key == "batched_cam_speedup":
        return (f"batches of {entry.get('batch_size', '?')}: {_number(entry.get('batched_images_per_s'))} vs "
                f"{_number(entry.get('single_images_per_s'))} img/s one at a time; the bare compiled gradient "
                f"runs at {_number(entry.get('gradient_floor_images_per_s'))} img/s, a ceiling of "
                f"{_number(entry.get('ceiling'))} for any batching here")
    return "–"


def _wall_time_table(wall_times: dict[str, dict[str, float]]) -> list[str]:
    """Rows of notebook wall times (seconds) per experiment and profile."""
    if not wall_times:
        return ["No notebook run had been logged (`results/run_log.jsonl`) when the benchmark ran.", ""]
    known = registry.experiment_ids()
    order = [e for e in known if e in wall_times] + [e for e in wall_times if e not in known]
    lines = ["Each cell: the latest logged wall time in seconds, then the budget of the registry "
             "(`budget_s`) where it sets one.", "",
             "| experiment | " + " | ".join(f"{p} (s)" for p in registry.PROFILES) + " |",
             "|---|" + "---:|" * len(registry.PROFILES)]
    for experiment_id in order:
        times = wall_times[experiment_id]
        budgets = registry.experiment(experiment_id).get("budget_s", {}) if experiment_id in known else {}
        cells = [_number(times.get(p), 0) + (f" (budget {budgets[p]})" if p in budgets else "")
                 for p in registry.PROFILES]
        lines.append(f"| {experiment_id} | " + " | ".join(cells) + " |")
    return lines + [""]


def _with_current_wall_times(record: dict | None, results_dir: Path) -> dict | None:
    """The bench record with the wall times of the run log as it is now.

    ``make book`` measures the ratios before it runs the notebooks, so the
    wall times the benchmark saw are those of earlier runs (none on a fresh
    clone); the book shows the runs it was built from.
    """
    from common import bench

    return None if record is None else {**record, "notebook_wall_times_s": bench.notebook_wall_times(results_dir)}


def performance_markdown(record: dict | None, figure_dir: Path) -> str:
    """Return the page "Performance on this machine", rendered from a ``bench.json`` record.

    Every number on the page is read from ``record``; without a record the page
    says how to make one.

    Args:
        record: The ``bench.json`` record (see :mod:`common.bench`), or None.
        figure_dir: Folder beside the page for the ratio figure (linked as ``figures/<file>``).
    """
    lines = [
        "# Performance on this machine",
        "",
        "`camstudy bench` measures three ratios. Absolute times depend on the machine and on what "
        "else runs on it; the two measurements of each ratio are taken back to back in one process, "
        "on the same model and images, so a slow or busy machine moves both alike and the ratio can "
        "be compared between runs and machines. Higher is better for all three.",
        "",
    ]
    lines += [f"`{key}` ({name})\n: {text}\n" for key, (name, text) in BENCH_RATIOS.items()]
    lines += ["How to run the study on GPUs, and the speed-ups used there: [](../gpu.md).", ""]
    if record is None:
        lines += [
            "## No measurement yet",
            "",
            f"There is no `results/{BENCH_FILE}`: the benchmark has not been run on this machine. "
            "Measure it (the quick version takes a few minutes at most) and build the book again:",
            "",
            "```bash",
            "camstudy bench --quick",
            "camstudy book --no-run",
            "```",
            "",
        ]
        return "\n".join(lines)
    from common.report import figures

    lines += [
        "## Ratios",
        "",
        f"Measured with the `{_cell(record.get('experiment'))}` experiment's model "
        f"({_cell(record.get('model'))}, input {_cell(record.get('image_size'))} px, "
        f"batch {_cell(record.get('batch_size'))}) on phantom images.",
        "",
        "| ratio | measured | target | met | how measured |",
        "|---|---:|---:|---|---|",
    ]
    for key in BENCH_RATIOS:
        entry = record.get(key)
        if not isinstance(entry, dict):
            lines.append(f"| `{key}` | – | – | not measured | – |")
            continue
        met = "yes" if entry.get("meets_target") else "**no**"
        lines.append(f"| `{key}` | {_number(entry.get('value'))} | ≥ {_cell(entry.get('target'))} | {met} | "
                     f"{_cell(_bench_details(key, entry))} |")
    figure = figures.bench_ratios(record, path=figure_dir / BENCH_FIGURE)
    figures.plt.close(figure)
    lines += [
        "",
        f"```{{figure}} figures/{BENCH_FIGURE}",
        ":alt: each benchmark ratio as a bar beside its target",
        ":width: 100%",
        "",
        "Each ratio (bar) against its target (dashed line); a green bar meets its target, a red one does not.",
        "```",
        "",
    ]
    machine = record.get("machine", {})
    gpus = machine.get("gpus") or []
    load = machine.get("load_average_1min")
    cpus = machine.get("cpu_count")
    busy = (" (higher than the CPU count: the machine was busy, so rerun on an idle machine to be sure)"
            if isinstance(load, (int, float)) and isinstance(cpus, int) and load > cpus else "")
    lines += [
        "## The machine",
        "",
        f"- **CPUs:** {_cell(cpus)} ({_cell(machine.get('processor'))})",
        f"- **Memory:** {_cell(machine.get('memory_gb'))} GB",
        f"- **Device:** {_cell(machine.get('device'))}" + (f" ({', '.join(map(str, gpus))})" if gpus else ""),
        f"- **TensorFlow:** {_cell(machine.get('tensorflow'))}, Python "
        f"{_cell(machine.get('versions', {}).get('python'))}",
        f"- **Load average (1 min) when measured:** {_cell(load)}{busy}",
        f"- **Measured at:** {_cell(record.get('measured_at'))}, "
        + ("with `--quick` (smaller measurements)" if record.get("quick") else "full measurements (without `--quick`)"),
        "",
        "## Notebook wall times",
        "",
        "The latest successful run of each notebook per profile, in seconds, from the run log "
        "(`results/run_log.jsonl`) when the book was built; a dash marks a profile not run. "
        "These are absolute times on the machine above.",
        "",
    ]
    lines += _wall_time_table(record.get("notebook_wall_times_s") or {})
    return "\n".join(lines)


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
    (generated / "performance.md").write_text(
        performance_markdown(_with_current_wall_times(read_bench(results_dir), results_dir), generated / "figures"),
        encoding="utf-8"
    )
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
