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
from dataclasses import dataclass
from pathlib import Path

import nbformat

from common.config import registry
from common.data import manifest
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


@dataclass(frozen=True)
class RunColumns:
    """The run behind an overview row: its profile and the name of its data."""

    profile: str
    data: str


@dataclass(frozen=True)
class Claim:
    """One paper claim beside this run's value, as fractions (a ``paper_vs_run`` row)."""

    model: str
    metric: str
    paper: float | None
    this_run: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class OverviewRow:
    """One row of the overview table.

    Attributes:
        experiment: The experiment id.
        run: The run's profile and data; None when the experiment has not been run.
        claim: The claim and measured value; None when the paper reports no numbers.
    """

    experiment: str
    run: RunColumns | None = None
    claim: Claim | None = None


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
    """Return an executed notebook with a run banner after its title and figure tags on its cells.

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


def _overview_rows(experiment_id: str, metrics: dict | None) -> list[OverviewRow]:
    """The overview rows of one experiment: one per claim, or one saying why there is none."""
    if metrics is None:
        return [OverviewRow(experiment_id)]
    # The data's name only ("phantoms/chest", "iqothnccd"); its folder is in the page's banner.
    data_name = metrics.get("data", {}).get("source", "?").split(" (")[0]
    run = RunColumns(metrics["profile"], data_name)
    rows = metrics.get("paper_vs_run") or []
    if not rows:
        return [OverviewRow(experiment_id, run)]
    claims = []
    for row in rows:
        low, high = row.get("ci95") or [None, None]
        claims.append(Claim(row["model"], row["metric"], row.get("paper"), row.get("this_run"), low, high))
    return [OverviewRow(experiment_id, run, claim) for claim in claims]


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


def overview_markdown(all_metrics: dict[str, dict], figure_dir: Path, results_dir: Path) -> str:
    """Return the results overview page: one table of paper claims vs this study's runs.

    Every row comes from a ``metrics.json`` (its ``paper_vs_run`` rows, written
    by the notebook from the registry's claims); nothing is typed here. Every
    experiment of the registry gets at least one row, also when its paper
    reports no numbers or it has not been run. The headline figures are copied
    into ``figure_dir``.

    Args:
        all_metrics: ``{experiment id: metrics.json record}`` of the finished runs.
        figure_dir: Folder beside the page to copy headline figures into
            (the page links them as ``figures/<file>``).
        results_dir: The results folder the runs were read from.
    """
    rows = [
        row
        for experiment_id in registry.experiment_ids()
        for row in _overview_rows(experiment_id, all_metrics.get(experiment_id))
    ]
    shown = []
    for experiment_id, metrics in all_metrics.items():
        for caption, name in headline_figures(metrics):
            target = figure_dir / f"{experiment_id}-{name}.png"
            shutil.copyfile(results_dir / experiment_id / "figures" / f"{name}.png", target)
            shown.append(HeadlineFigure(experiment_id, caption, target.name, metrics["profile"]))
    return render("overview.md.j2", rows=rows, figures=shown)


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
