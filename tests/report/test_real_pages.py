"""The book's "Real scans" part, assembled from fake real-data runs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import yaml

from common.data import manifest
from common.report import book, real_pages
from tests.report.fakes import write_fake_run

SHORTCUTS = {
    "flagged": True,
    "warnings": ["59 images at 623 x 512 and 801 x 512: 100 % malignant"],
    "summary": "",
}
VERIFIED = {"ok": True, "files_checked": 1097, "missing": [], "changed": [], "extra": [], "count_mismatches": {}}


def _real_run(results: Path, experiment_id: str = "iqoth") -> None:
    write_fake_run(results / "real", experiment_id, [], source="iqothnccd (/data/iqothnccd)")
    metrics_file = results / "real" / experiment_id / "metrics.json"
    record = json.loads(metrics_file.read_text())
    record["data"]["verification"] = VERIFIED
    record.update(
        parameters={"manifest": "iqothnccd", "data_dir": "/data/iqothnccd"},
        shortcut_audit=SHORTCUTS,
        audit={"exact_groups": 42, "near_groups": 138, "threshold": 0.98},
        train_test_duplicate_share=0.0,
        models={"ResNet50": {"n": 165, "accuracy": {"value": 0.8, "ci95": [0.7, 0.9], "n": 165}}},
    )
    metrics_file.write_text(json.dumps(record))


def test_without_real_runs_the_book_keeps_its_own_table_of_contents(tmp_path: Path):
    results = tmp_path / "results"
    write_fake_run(results, "iqoth", [])
    root = book.copy_book_sources(tmp_path / "root")
    book.assemble(results, root)
    assert not (root / book.GENERATED_TOC).exists()
    assert list((root / real_pages.REAL_PAGES).iterdir()) == []


def test_a_real_run_gets_a_page_with_its_data_note_an_opening_page_and_a_part(tmp_path: Path):
    results = tmp_path / "results"
    write_fake_run(results, "iqoth", [])
    _real_run(results)
    root = book.copy_book_sources(tmp_path / "root")
    book.assemble(results, root)

    page = nbformat.read(root / real_pages.REAL_PAGES / "iqoth.ipynb", as_version=4)
    assert page.cells[0].source == "# Real scans: iqoth"
    assert page.cells[1].metadata["tags"] == ["run-banner"]
    note = page.cells[2]
    assert note.metadata["tags"] == [real_pages.REAL_NOTE_TAG]
    assert "Alyasriy" in note.source and "Licence: CC BY 4.0" in note.source
    assert "matches its manifest (all 1097 files have the manifest's SHA-256" in note.source
    assert "**flagged**: 59 images at 623 x 512" in note.source

    opening = (root / f"{real_pages.REAL_SCANS_PAGE}.md").read_text()
    assert "| [iqoth](../real/iqoth) | iqothnccd | `smoke` | 165 | 0.800 (0.70–0.90) |" in opening
    assert "42 exact, 138 near-duplicate groups; 0.0% of training images with a copy in test" in opening
    assert ":::{warning}" in opening and "623 x 512" in opening

    toc = yaml.safe_load((root / book.GENERATED_TOC).read_text())
    part = next(p for p in toc["parts"] if p["caption"] == real_pages.PART_CAPTION)
    assert part["chapters"] == [{"file": real_pages.REAL_SCANS_PAGE, "sections": [{"file": "book/real/iqoth"}]}]
    assert toc["parts"][0]["caption"] == "Experiments"  # the phantom pages stay first


def test_a_copy_that_does_not_match_its_manifest_says_so(tmp_path: Path):
    record = {"ok": False, "missing": ["a.jpg"], "changed": [], "extra": ["b.jpg", "c.jpg"], "count_mismatches": {}}
    text = manifest.verification_sentence(record)
    assert text == "**the local copy does not match its manifest** (1 missing; 2 extra)."
    assert manifest.verification_sentence(None) == "not recorded by this run."
    assert real_pages.shortcut_text(None) == "not run."


def test_an_unflagged_audit_gives_its_best_metadata_score_against_chance():
    record = {
        "flagged": False,
        "chance": 0.5,
        "metadata": {
            "random_forest": {"balanced_accuracy": {"value": 0.52, "ci95": [0.4, 0.6]}},
            "logistic_regression": {"balanced_accuracy": {"value": 0.47, "ci95": [0.4, 0.6]}},
        },
    }
    assert real_pages.shortcut_text(record) == "nothing flagged (metadata classifiers at most 0.52, chance 0.50)."
