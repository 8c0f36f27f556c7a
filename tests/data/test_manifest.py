"""Data manifests load, agree with the registry, and catch a copy that differs from the release."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from common.data.manifest import (
    MANIFEST_DIR,
    REQUIRED_FIELDS,
    available_manifests,
    checksum_listing,
    file_sha256,
    format_report,
    load_manifest,
    verify,
)
from common.errors import DataError, ParameterError
from tests import conftest

REGISTRY_FILE = Path(__file__).resolve().parents[2] / "src/common/config/registry.yaml"
EXPECTED_MANIFESTS = {"iqothnccd", "ct_pneumonia_lung_pet_ct_dx", "multi_organ", "lung_pet_ct_dx", "phantoms"}


def tiny_manifest(data_dir: Path, **fields) -> dict:
    """The shared tiny manifest of the set in ``data_dir`` (3 images of ``a``, 2 of ``b``), with its checksums."""
    return conftest.tiny_manifest(checksum_listing(data_dir), **{"expected_counts": {"a": 3, "b": 2}, **fields})


def test_every_manifest_loads_with_required_fields():
    assert EXPECTED_MANIFESTS <= set(available_manifests())
    for name in available_manifests():
        manifest = load_manifest(name)
        assert all(field in manifest for field in REQUIRED_FIELDS)
        assert manifest["name"] == name
        assert set(manifest["expected_counts"] or {}) <= set(manifest["label_map"])


def test_manifest_label_maps_match_the_registry():
    if not REGISTRY_FILE.is_file():
        pytest.skip("registry.yaml not present yet")
    registry = yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))
    for experiment_id, entry in registry["experiments"].items():
        real = entry.get("real_data") or {}
        if not real.get("manifest") or real.get("label_map") is None:
            continue
        manifest = load_manifest(real["manifest"])
        assert set(real["label_map"]) == set(manifest["label_map"]), experiment_id


def test_iqoth_manifest_facts():
    manifest = load_manifest("iqothnccd")
    assert "10.17632/bhmdr45bh2" in manifest["citation"]
    assert manifest["licence"] == "CC BY 4.0"
    assert manifest["expected_counts"] == {"Bengin cases": 120, "Malignant cases": 561, "Normal cases": 416}
    assert len(manifest["files"]) == 1098  # 1097 slices and the release's read-me
    assert all(len(digest) == 64 for digest in manifest["files"].values())


def test_load_by_path_and_errors(tmp_path):
    manifest = load_manifest(MANIFEST_DIR / "phantoms.yaml")
    assert manifest["files"] == {} and manifest["count_unit"] == "images"
    with pytest.raises(ParameterError, match="available: .*iqothnccd"):
        load_manifest("no_such_set")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\ncitation: x\n")
    with pytest.raises(DataError, match=r"lacks the field\(s\) \['licence'"):
        load_manifest(broken)


def test_verify_tiny_copy_detects_missing_changed_and_extra(make_class_folders):
    root = make_class_folders({"a": 3, "b": 2})
    manifest = tiny_manifest(root)
    assert verify(manifest, root)["ok"]

    removed = root / "a" / "a_001.png"
    removed.unlink()
    report = verify(manifest, root)
    assert not report["ok"]
    assert report["missing"] == ["a/a_001.png"]
    assert report["count_mismatches"] == {"a": {"expected": 3, "found": 2}}

    shutil.copy(root / "a" / "a_000.png", removed)  # same name, other bytes
    (root / "b" / "stray.png").write_bytes((root / "b" / "b_000.png").read_bytes())
    report = verify(manifest, root)
    assert report["changed"] == ["a/a_001.png"] and report["extra"] == ["b/stray.png"]
    text = format_report(report)
    assert "DOES NOT MATCH" in text and "a/a_001.png" in text and "b: expected 2, found 3" in text


def test_verify_without_checksums_checks_counts_only(make_class_folders, tmp_path):
    root = make_class_folders({"a": 3, "b": 2})
    report = verify(tiny_manifest(root, files={}), root)
    assert report["ok"] and report["files_checked"] == 0
    assert "only class counts" in format_report(report)
    with pytest.raises(DataError, match="How to obtain it: write it"):
        verify(tiny_manifest(root), tmp_path / "absent")


def test_verify_counts_series_folders(tmp_path):
    for case in ("p1", "p2"):
        (tmp_path / "tumor" / case).mkdir(parents=True)
        (tmp_path / "tumor" / case / "1.dcm").write_bytes(b"x")
    (tmp_path / "normal" / "p3").mkdir(parents=True)
    manifest = tiny_manifest(
        tmp_path,
        files={},
        label_map={"normal": "normal", "tumor": "tumor"},
        expected_counts={"normal": 1, "tumor": 2},
        count_unit="series",
    )
    assert verify(manifest, tmp_path)["ok"]


# --- the real release -------------------------------------------------------------


def link_farm(source: Path, target: Path, leave_out: str | None = None) -> Path:
    """Mirror ``source`` as symlinks (no copy of the images), optionally without one file."""
    for path in source.rglob("*"):
        relative = path.relative_to(source).as_posix()
        if path.is_file() and relative != leave_out:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target / relative)
    return target


def test_real_copy_passes(iqoth_dir):
    report = verify("iqothnccd", iqoth_dir)
    assert report["ok"], format_report(report)
    assert report["files_checked"] == 1098


def test_real_copy_with_one_file_removed_fails(iqoth_dir, tmp_path):
    gone = "Malignant cases/Malignant case (10).jpg"
    farm = link_farm(iqoth_dir, tmp_path / "copy", leave_out=gone)
    report = verify("iqothnccd", farm)
    assert not report["ok"]
    assert report["missing"] == [gone] and not report["changed"]
    assert report["count_mismatches"] == {"Malignant cases": {"expected": 561, "found": 560}}


def test_real_copy_with_one_changed_file_fails(iqoth_dir, tmp_path):
    altered = "Normal cases/Normal case (1).jpg"
    farm = link_farm(iqoth_dir, tmp_path / "copy")
    (farm / altered).unlink()
    data = bytearray((iqoth_dir / altered).read_bytes())
    data[-3] ^= 0xFF  # one byte inside the JPEG's last scan
    (farm / altered).write_bytes(bytes(data))
    assert file_sha256(farm / altered) != file_sha256(iqoth_dir / altered)
    report = verify("iqothnccd", farm)
    assert not report["ok"] and report["changed"] == [altered] and not report["missing"]
