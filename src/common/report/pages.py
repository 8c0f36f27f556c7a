"""The book's generated pages: results overview, data sets, experiment pages.

Python gathers the values and rows here; the prose is in the Jinja2 MyST
templates of ``templates/`` (:mod:`common.report.render`). The overview is read
from every run's ``metrics.json``, the data-set section from
``data_manifests/*.yaml``, and an experiment's page is its executed notebook
with a run banner on top (or, without a finished run, a page saying how to run
it). The performance page is :mod:`common.report.performance`.

Example:
    >>> from common.report import pages
    >>> pages.figure_tags('figures.cam_grid(rows, path=run.figure_path("cam_grid"))')
    ['figure-cam_grid']
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from common.config import registry
from common.data import manifest
from common.evaluation import tables
from common.report.figures import paper_vs_run_forest, plt
from common.report.labels import run_comparability
from common.report.render import render
from common.report.results import run_banner

# Overview figures per experiment: the first of each group the run saved
# (multi-organ shows its heatmaps as contour maps, the others as a CAM grid).
HEADLINE_FIGURES = {
    "confusion matrix": ("confusion_matrix",),
    "heatmaps": ("cam_grid", "cam_contours"),
}
# A notebook saves a figure with ``run.figure_path("name")``; the cell gets the tag ``figure-name``.
FIGURE_CALL = re.compile(r"""figure_path\(\s*f?["']([^"']+)["']""")
FIGURE_TAG_PREFIX = "figure-"
BANNER_TAG = "run-banner"
# The metrics of the overview's tables: the two every paper with numbers claims, so a table of nine models fits
# a 1400 px window without scrolling; every claimed metric is in the forest plot and on the experiment's page.
HEADLINE_METRICS = ("accuracy", "f1")
# The overview's forest plot of every paper claim against this study's runs (beside the headline figures).
FOREST_FIGURE = "paper-vs-run.png"


@dataclass(frozen=True)
class RunColumns:
    """The run behind an experiment's overview table: its profile, the name of its data and its wall time.

    Attributes:
        profile: The run's profile.
        data: The name of its data (``phantoms/chest``, ``iqothnccd``).
        wall_time: Its wall time as a reader takes it in.
        comparable: Whether its numbers can be compared with the paper's (:mod:`common.report.labels`).
        reason: Why not, in short (``phantoms``); None when comparable.
    """

    profile: str
    data: str
    wall_time: str
    comparable: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class ExperimentOverview:
    """One experiment's part of the overview: a compact table, models by headline metrics.

    Attributes:
        experiment: The experiment id.
        title: Its title in the registry.
        run: The run's profile, data and wall time; None when the experiment has not been run.
        claims: Whether the run has paper claims to set its values beside.
        header: The table's column names (model, ``n``, then the metrics); empty without a run.
        rows: One row of cell texts per model.
        shortcuts: The run's shortcut-audit warnings when the audit flagged its data (else empty).
    """

    experiment: str
    title: str
    run: RunColumns | None = None
    claims: bool = False
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    shortcuts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HeadlineFigure:
    """A figure of the overview, copied beside the page as ``figures/<file>``."""

    experiment: str
    caption: str
    file: str
    profile: str


@dataclass(frozen=True)
class DatasetEntry:
    """What the methods page says about one data set, read from its manifest."""

    name: str
    title: str
    used_by: list[str]
    citation: str | None
    licence: str | None
    url: str | None
    how_to_obtain: str | None
    modality: str | None
    counts: dict[str, int]
    count_unit: str | None
    notes: str | None


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


def with_banner(notebook_file: Path, metrics: dict) -> nbformat.NotebookNode:
    """Return an executed notebook with a run banner right after its title and figure tags on its cells.

    The banner opens with the run's label (:func:`~common.report.labels.run_label`: what
    ran, and whether it can be compared with the paper). When the first cell holds the
    title and more text, the text moves into a cell of its own after the banner, so
    the label is the first thing under the title.

    Args:
        notebook_file: The executed notebook (``results/<id>/<id>.ipynb``).
        metrics: The run's ``metrics.json`` record.
    """
    notebook = nbformat.read(notebook_file, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            tags = cell.metadata.get("tags", [])
            cell.metadata["tags"] = tags + [t for t in figure_tags(cell.source) if t not in tags]
    # A cell's source has no final newline.
    source = render("banner.md.j2", summary=run_banner(metrics)).removesuffix("\n")
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(source, metadata={"tags": [BANNER_TAG]}))
    first = notebook.cells[0]
    if first.cell_type == "markdown" and first.source.startswith("# "):
        heading, _, rest = first.source.partition("\n")
        if rest.strip():
            first.source = heading
            notebook.cells.insert(2, nbformat.v4.new_markdown_cell(rest.strip("\n")))
    return notebook


def missing_page(experiment_id: str, unreadable: str | None = None) -> str:
    """Return the page of an experiment without a readable finished run: its title and how to run it.

    Args:
        experiment_id: The experiment's id in the registry.
        unreadable: Why its run record could not be read, when there is one (the page says
            that it cannot be read); None: there is no run.
    """
    title = registry.experiment(experiment_id)["title"]
    return render("missing.md.j2", title=title, experiment_id=experiment_id, unreadable=unreadable)


def _wall_time(seconds: float | None) -> str:
    """A run's wall time as a reader takes it in: ``"48 s"``, ``"5 min 3 s"``; a dash when unknown."""
    if seconds is None:
        return tables.MISSING
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _as_table(table) -> tuple[list[str], list[list[str]]]:
    """A display table (index: model) as the header and rows of a Markdown table."""
    header = [table.index.name or "model", *map(str, table.columns)]
    return header, [[str(model), *map(str, values)] for model, values in zip(table.index, table.to_numpy())]


def judged_rows(metrics: dict) -> list[dict]:
    """A run's paper-vs-run rows, each saying whether the run is comparable with the paper.

    A row written before the rows carried ``comparable`` takes the run's
    :func:`~common.report.labels.run_comparability`, and its ``paper_inside_ci`` is
    dropped unless the run is comparable.

    Args:
        metrics: The run's ``metrics.json`` record.
    """
    rows = metrics.get("paper_vs_run") or []
    if all("comparable" in row for row in rows):
        return list(rows)
    against = run_comparability(metrics)
    older = {} if against.comparable else {"paper_inside_ci": None}
    return [row if "comparable" in row else {**row, **older, **against.record()} for row in rows]


def experiment_overview(experiment_id: str, metrics: dict | None) -> ExperimentOverview:
    """One experiment's overview: its run and a table of models by headline metrics.

    The columns are the paper's claims (``metrics.json``'s ``paper_vs_run``) of the
    :data:`HEADLINE_METRICS` (all its claims when it claims none of them), each paper
    value beside this run's value with its interval, and whether the claim is inside
    it for a run comparable with the paper, else "not comparable (phantoms)"
    (:func:`~common.evaluation.tables.paper_beside_run`). A run whose paper reports no
    numbers shows its own values of the :data:`HEADLINE_METRICS`.
    Every table has a column ``n``: the test units each model was measured on, or its folds.

    Args:
        experiment_id: The experiment's id in the registry.
        metrics: Its run's ``metrics.json`` record, or None when it has not been run.
    """
    title = registry.experiment(experiment_id)["title"]
    if metrics is None:
        return ExperimentOverview(experiment_id, title)
    # The data's name only ("phantoms/chest", "iqothnccd"); its folder is in the page's banner.
    data_name = metrics.get("data", {}).get("source", "?").split(" (")[0]
    against = run_comparability(metrics)
    run = RunColumns(
        metrics["profile"], data_name, _wall_time(metrics.get("wall_time_s")), against.comparable, against.reason
    )
    audit = metrics.get("shortcut_audit") or {}
    shortcuts = list(audit.get("warnings") or []) if audit.get("flagged") else []
    models = metrics.get("models") or {}
    claims = judged_rows(metrics)
    claims = [row for row in claims if row["metric"] in HEADLINE_METRICS] or claims
    if claims:
        sizes = {model: tables.sample_size(entry) for model, entry in models.items()}
        table = tables.paper_beside_run(claims, sizes)
    elif models:
        table = tables.metrics_table(models, HEADLINE_METRICS)
    else:
        return ExperimentOverview(experiment_id, title, run, shortcuts=shortcuts)
    header, rows = _as_table(table)
    return ExperimentOverview(experiment_id, title, run, bool(claims), header, rows, shortcuts)


def headline_figures(metrics: dict) -> list[tuple[str, str]]:
    """Return ``(caption, figure name)`` of the overview figures a run saved.

    Args:
        metrics: The run's ``metrics.json`` record (its ``figures`` list).
    """
    saved = set(metrics.get("figures", []))
    chosen = []
    for caption, names in HEADLINE_FIGURES.items():
        name = next((n for n in names if f"{n}.png" in saved), None)
        if name:
            chosen.append((caption, name))
    return chosen


def _forest_figure(all_metrics: dict[str, dict], figure_dir: Path) -> str | None:
    """Draw the paper-vs-run forest plot into ``figure_dir``; its file name, or None without any claim."""
    claims = {experiment_id: judged_rows(metrics) for experiment_id, metrics in all_metrics.items()}
    if not any(claims.values()):
        return None
    plt.close(paper_vs_run_forest(claims, path=figure_dir / FOREST_FIGURE))
    return FOREST_FIGURE


def overview_markdown(all_metrics: dict[str, dict], figure_dir: Path, results_dir: Path) -> str:
    """Return the results overview page: per experiment a compact table of paper claims vs this run.

    Every value comes from a ``metrics.json`` (its ``paper_vs_run`` rows, written
    by the notebook from the registry's claims, and its ``models``); nothing is
    typed here. Every experiment of the registry gets its section, also when its
    paper reports no numbers or it has not been run. A forest plot of every claim
    against this run's interval is drawn (a run not comparable with the paper in
    grey), and the headline figures copied, into ``figure_dir``.

    Args:
        all_metrics: ``{experiment id: metrics.json record}`` of the finished runs.
        figure_dir: Folder beside the page to write figures into
            (the page links them as ``figures/<file>``).
        results_dir: The results folder the runs were read from.
    """
    experiments = [
        experiment_overview(experiment_id, all_metrics.get(experiment_id))
        for experiment_id in registry.experiment_ids()
    ]
    shown = []
    for experiment_id, metrics in all_metrics.items():
        for caption, name in headline_figures(metrics):
            target = figure_dir / f"{experiment_id}-{name}.png"
            shutil.copyfile(results_dir / experiment_id / "figures" / f"{name}.png", target)
            shown.append(HeadlineFigure(experiment_id, caption, target.name, metrics["profile"]))
    forest = _forest_figure(all_metrics, figure_dir)
    from common import seeds

    noise = seeds.overview_sentence(results_dir)
    return render("overview.md.j2", experiments=experiments, forest=forest, figures=shown, noise=noise)


def _users_of_manifests() -> dict[str, list[str]]:
    """``{manifest name: experiment ids}`` of the registry's real data, and the phantoms."""
    used_by: dict[str, list[str]] = {}
    for experiment_id in registry.experiment_ids():
        name = registry.experiment(experiment_id)["real_data"].get("manifest")
        used_by.setdefault(name, []).append(experiment_id)
    # Without --data-dir every experiment runs on the phantoms (registry.resolve's manifest).
    used_by["phantoms"] = registry.experiment_ids()
    return used_by


def dataset_entries() -> list[DatasetEntry]:
    """Return what the methods page says of each data set, from ``data_manifests/*.yaml``."""
    used_by = _users_of_manifests()
    entries = []
    for name in manifest.available_manifests():
        record = manifest.load_manifest(name)
        source = record["source"] or {}
        entries.append(
            DatasetEntry(
                name=name,
                title=record.get("title", name),
                used_by=used_by.get(name, []),
                citation=record["citation"],
                licence=record["licence"],
                url=source.get("url"),
                how_to_obtain=source.get("how_to_obtain"),
                modality=record.get("modality"),
                counts=record["expected_counts"],
                count_unit=record.get("count_unit"),
                notes=record.get("notes"),
            )
        )
    return entries


def datasets_markdown() -> str:
    """Return the methods page's data-set section, read from ``data_manifests/*.yaml``.

    Each manifest gives its title, the experiments that use it (from the
    registry), citation, licence, source, how to obtain it and its expected
    class counts, so the page can never disagree with what ``camstudy data
    verify`` checks.
    """
    return render("datasets.md.j2", datasets=dataset_entries())
