"""The smoke run of iqoth on the real IQ-OTH/NCCD copy: both audits find what is known to be there.

The copy (``../shared/data/iqothnccd``, never inside the repository) holds 42
groups of byte-identical slices and 59 malignant images in two sizes no other
class has (31 at 623 x 512, 28 at 801 x 512). The run must find both, keep
every duplicate group on one side of its grouped split, and record that the
copy matches its manifest. Skipped where the copy is absent.
"""

from __future__ import annotations

import nbformat
import pytest

from common.data import manifest

pytestmark = pytest.mark.notebook(real=("iqoth",))


@pytest.fixture(scope="module")
def real_run(smoke_results) -> dict:
    return smoke_results.real("iqoth")


def test_the_leakage_audit_finds_the_exact_duplicates_and_the_grouped_split_keeps_them_apart(real_run):
    metrics = real_run["metrics"]
    assert metrics["audit"]["exact_groups"] == 42
    assert metrics["parameters"]["split"] == "grouped"
    assert metrics["train_test_duplicate_share"] == 0.0
    assert metrics["data"]["n_images"] == 1097 and metrics["data"]["skipped_files"] == []


def test_the_shortcut_audit_names_the_two_malignant_image_sizes(real_run):
    audit = real_run["metrics"]["shortcut_audit"]
    subgroups = {(group["feature"], group["value"]): group for group in audit["subgroups"]}
    for size, count in (("623x512", 31), ("801x512", 28)):
        group = subgroups[("size", size)]
        assert group["n"] == count and group["label"] == "malignant" and group["purity"] == 1.0
    assert audit["flagged"] and audit["grouped"]  # folds over the leakage audit's groups
    assert any("623 x 512" in warning for warning in audit["warnings"])
    for part in ("metadata", "file_size", "intensity"):
        for classifier, score in audit[part].items():
            low, high = score["balanced_accuracy"]["ci95"]
            assert 0 <= low <= score["balanced_accuracy"]["value"] <= high <= 1, (part, classifier)


def test_the_run_records_that_the_copy_matches_its_manifest_and_shows_the_warning(real_run):
    verification = real_run["metrics"]["data"]["verification"]
    assert verification["ok"] and verification["files_checked"] == len(manifest.load_manifest("iqothnccd")["files"])
    notebook = nbformat.read(real_run["dir"] / "iqoth.ipynb", as_version=4)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    shown = "\n".join(str(output.get("data", {}).get("text/markdown", "")) for output in outputs)
    assert "**Warning: possible shortcut.** Pure subgroup: 31 images at 623 x 512: 100% malignant" in shown
    assert "**Data check** against manifest `iqothnccd`: the local copy matches its manifest" in shown


def test_on_scans_without_masks_the_cam_benchmark_reports_faithfulness_only(real_run):
    found = real_run["metrics"]["cam_benchmark"]
    params = real_run["metrics"]["parameters"]
    assert found["localisation"] == "no masks" and found["layer"] == params["cam_layer_candidates"][0]
    for scores in found["methods"].values():
        # Faithfulness and the sanity check need no mask; localisation does.
        assert set(scores) == {
            "deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence", "randomisation_spearman"
        }  # fmt: skip
        assert 0 <= scores["deletion_auc"]["value"] <= 1 and scores["deletion_auc"]["n"] == found["n"] > 0
    notebook = nbformat.read(real_run["dir"] / "iqoth.ipynb", as_version=4)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    shown = "\n".join(str(output.get("data", {}).get("text/plain", "")) for output in outputs)
    assert "no masks" in shown and "deletion AUC (lower is better)" in shown
