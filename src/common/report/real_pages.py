"""The book's "Real scans" part: pages of runs on real data, their opening page and the table of contents.

The runs come from ``results/real/<experiment>/`` (:mod:`common.real_runs`).
Each page is the executed notebook as for a phantom run, titled as a real-data
page, with a second note under the run banner: the data set's citation and
licence from its manifest, whether the local copy matched the manifest when the
run read it, and the shortcut audit's verdict. The part's opening page tabulates
the runs; the part is added to the book's table of contents only when there is
a real-data run, so the default book is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from common.data import manifest
from common.evaluation import tables
from common.report.pages import BANNER_TAG, with_banner
from common.report.render import render

REAL_PAGES = "book/real"
REAL_SCANS_PAGE = "book/generated/real-scans"
PART_CAPTION = "Real scans"
REAL_NOTE_TAG = "real-data-note"


@dataclass(frozen=True)
class RealData:
    """What a real-data page says about its data (:func:`real_data`)."""

    name: str
    title: str
    citation: str
    licence: str
    verification: str
    shortcut: str


@dataclass(frozen=True)
class RealRun:
    """One row of the part's opening page (:func:`real_run`)."""

    experiment: str
    data: str
    profile: str
    n: str | None
    accuracy: str | None
    leakage: str
    shortcut: str
    warnings: list[str] = field(default_factory=list)


def shortcut_text(record: dict[str, Any] | None) -> str:
    """A sentence from a run's ``shortcut_audit`` record."""
    if not record:
        return "not run."
    if record.get("flagged"):
        return "**flagged**: " + " ".join(record.get("warnings") or [])
    values = [entry["balanced_accuracy"]["value"] for entry in (record.get("metadata") or {}).values()]
    values = [value for value in values if value is not None]
    best = f"metadata classifiers at most {max(values):.2f}, " if values else ""
    return f"nothing flagged ({best}chance {record.get('chance', 0):.2f})."


def real_data(metrics: dict[str, Any]) -> RealData:
    """The data note of a real-data run, from its manifest and its ``metrics.json``."""
    name = metrics.get("parameters", {}).get("manifest", "?")
    entry = manifest.load_manifest(name)
    return RealData(
        name=name,
        title=entry.get("title", name),
        citation=entry.get("citation", ""),
        licence=entry.get("licence", ""),
        verification=manifest.verification_sentence(metrics.get("data", {}).get("verification")),
        shortcut=shortcut_text(metrics.get("shortcut_audit")),
    )


def real_page(notebook_file: Path, metrics: dict[str, Any]) -> nbformat.NotebookNode:
    """The executed notebook of a real-data run as a page: run banner, data note, title naming the data."""
    notebook = with_banner(notebook_file, metrics)
    data = real_data(metrics)
    title_cell = notebook.cells[0]
    if title_cell.cell_type == "markdown" and title_cell.source.startswith("# "):
        heading, _, rest = title_cell.source.partition("\n")
        title_cell.source = f"# Real scans: {heading[2:]}\n{rest}".rstrip("\n")
    banner_at = next(i for i, cell in enumerate(notebook.cells) if BANNER_TAG in cell.metadata.get("tags", []))
    note = render("real_banner.md.j2", data=data).removesuffix("\n")
    notebook.cells.insert(banner_at + 1, nbformat.v4.new_markdown_cell(note, metadata={"tags": [REAL_NOTE_TAG]}))
    return notebook


def _leakage_text(metrics: dict[str, Any]) -> str:
    audit = metrics.get("audit")
    if not audit:
        return "not run"
    share = metrics.get("train_test_duplicate_share")
    text = f"{audit['exact_groups']} exact, {audit['near_groups']} near-duplicate groups"
    return text + (f"; {share:.1%} of training images with a copy in test" if share is not None else "")


def real_run(experiment_id: str, metrics: dict[str, Any]) -> RealRun:
    """The opening page's row of one real-data run: its first model's accuracy and both audits."""
    models = metrics.get("models") or {}
    first = next(iter(models.values()), {})
    accuracy = first.get("accuracy")
    shortcut = metrics.get("shortcut_audit") or {}
    return RealRun(
        experiment=experiment_id,
        data=metrics.get("parameters", {}).get("manifest", "?"),
        profile=metrics.get("profile", "?"),
        n=tables.sample_size(first) if first else None,
        accuracy=None if accuracy is None else tables.format_estimate(accuracy),
        leakage=_leakage_text(metrics),
        shortcut=("flagged" if shortcut.get("flagged") else "nothing flagged") if shortcut else "not run",
        warnings=list(shortcut.get("warnings") or []) if shortcut.get("flagged") else [],
    )


def real_scans_markdown(found: dict[str, dict[str, Any]]) -> str:
    """The part's opening page: one row per real-data run (``{experiment id: metrics.json record}``)."""
    return render("real_scans.md.j2", runs=[real_run(e, m) for e, m in found.items()])


def toc_with_real_part(toc_file: Path, experiments: list[str]) -> dict[str, Any]:
    """The book's table of contents with a "Real scans" part after the phantom experiments."""
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    part = {
        "caption": PART_CAPTION,
        "chapters": [
            {"file": REAL_SCANS_PAGE, "sections": [{"file": f"{REAL_PAGES}/{e}"} for e in experiments]},
        ],
    }
    toc["parts"].insert(1, part)
    return toc
