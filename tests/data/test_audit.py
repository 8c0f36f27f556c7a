"""Leakage audit: planted exact and near duplicates are found, distinct images are not,
grouped splits keep duplicates together, and ``camstudy audit`` writes its outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import cli
from common.data import audit, folders, manifest, splits
from common.data.phantoms import make_chest_slices
from common.errors import ParameterError

CLASSES = ("normal", "benign", "malignant")
# Phantoms at 128 px: a 1 px shift is a quarter of a descriptor pixel, as on real 512 px slices.
PHANTOM_SIZE = 128


def _original(images: Path, class_name: str, index: int) -> Path:
    return images / class_name / f"{class_name}_{index:04d}.png"


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _plant_duplicates(images: Path) -> dict[str, list[frozenset[str]]]:
    """Add known duplicates to a phantom class-folder set; return the planted pairs by kind."""
    exact, near = [], []

    def plant(kind: list, original: Path, copy: Path, pixels: np.ndarray | None = None, **save) -> None:
        if pixels is None:
            shutil.copyfile(original, copy)
        else:
            Image.fromarray(pixels).save(copy, **save)
        kind.append(frozenset({str(original), str(copy)}))

    normal_0, normal_1 = _original(images, "normal", 0), _original(images, "normal", 1)
    benign_0, benign_1 = _original(images, "benign", 0), _original(images, "benign", 1)
    malignant_0, malignant_1 = _original(images, "malignant", 0), _original(images, "malignant", 1)
    plant(exact, normal_0, images / "normal" / "renamed copy.png")
    plant(exact, normal_1, images / "normal" / "lossless resave.bmp", _pixels(normal_1))
    upscaled = np.repeat(np.repeat(_pixels(benign_0), 2, axis=0), 2, axis=1)
    plant(exact, benign_0, images / "benign" / "upscaled twice.png", upscaled)
    # The same image filed under another class: an exact duplicate with a label conflict.
    plant(exact, malignant_0, images / "benign" / "misfiled.png")
    noise = np.random.default_rng(0).normal(0, 3, (PHANTOM_SIZE, PHANTOM_SIZE))
    shifted = np.clip(np.roll(_pixels(benign_1).astype(float), 1, axis=1) + noise, 0, 255).astype(np.uint8)
    plant(near, benign_1, images / "benign" / "shifted noisy.png", shifted)
    plant(near, malignant_1, images / "malignant" / "lossy resave.jpg", _pixels(malignant_1), quality=90)
    return {"exact": exact, "near": near}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A phantom set of 3 x 4 distinct images with planted duplicates, loaded and audited once."""
    images = make_chest_slices(tmp_path_factory.mktemp("audit"), 4, size=PHANTOM_SIZE, classes=CLASSES) / "images"
    pairs = _plant_duplicates(images)
    samples, _ = folders.load_class_folders(images)
    return {
        "images": images,
        "pairs": pairs,
        "samples": samples,
        "result": audit.audit_samples(samples, progress=False),
    }


def _group_sets(result: dict, kind: str) -> list[frozenset[str]]:
    return [frozenset(group["files"]) for group in result[f"{kind}_groups"]]


def test_planted_exact_duplicates_are_exactly_the_exact_groups(planted):
    # Copies, lossless re-saves and a whole-factor rescale: recall 1.0 and nothing else.
    assert sorted(_group_sets(planted["result"], "exact"), key=sorted) == sorted(planted["pairs"]["exact"], key=sorted)


def test_a_misfiled_copy_is_flagged_as_a_label_conflict(planted):
    result = planted["result"]
    conflicts = [group for group in result["exact_groups"] if group["label_conflict"]]
    assert len(conflicts) == result["label_conflicts"] == 1
    assert sorted(conflicts[0]["labels"]) == ["benign", "malignant"]


def test_lossy_and_shifted_copies_are_near_but_not_exact_duplicates(planted):
    result = planted["result"]
    near_groups, exact_groups = _group_sets(result, "near"), _group_sets(result, "exact")
    for pair in planted["pairs"]["near"]:
        assert pair in near_groups and pair not in exact_groups
    near_pairs = [pair for pair in result["pairs"] if not pair["exact"]]
    assert len(near_pairs) == 2 and all(pair["cosine"] >= audit.DEFAULT_THRESHOLD for pair in near_pairs)


def test_distinct_images_are_not_grouped(planted):
    result = planted["result"]
    planted_pairs = planted["pairs"]["exact"] + planted["pairs"]["near"]
    assert sorted(_group_sets(result, "near"), key=sorted) == sorted(planted_pairs, key=sorted)
    assert len(result["pairs"]) == len(planted_pairs)


def test_counts_per_class_add_up(planted):
    counts = planted["result"]["counts_per_class"]
    assert {label: row["images"] for label, row in counts.items()} == {"benign": 7, "malignant": 5, "normal": 6}
    assert counts["benign"]["in_exact_groups"] == 3 and counts["benign"]["exact_groups"] == 2
    assert sum(row["in_near_groups"] for row in counts.values()) == 12


def test_thresholds_are_parameters(planted):
    strict = audit.audit_samples(planted["samples"], threshold=1.0, max_hamming=-1, progress=False)
    assert len(strict["exact_groups"]) == 4 and all(pair["exact"] for pair in strict["pairs"])
    with pytest.raises(ParameterError, match="threshold"):
        audit.audit_samples(planted["samples"], threshold=1.5, progress=False)
    with pytest.raises(ParameterError, match="max_hamming"):
        audit.audit_samples(planted["samples"], max_hamming=-2, progress=False)


def test_train_test_share_counts_training_images_with_a_test_duplicate(planted):
    samples, result = planted["samples"], planted["result"]
    leaking = {min(pair): max(pair) for pair in planted["pairs"]["exact"][:2] + planted["pairs"]["near"][:1]}
    split = samples.assign(split=["test" if path in leaking.values() else "train" for path in samples["path"]])
    share = audit.train_test_duplicate_share(split, result)
    n_train = len(samples) - len(leaking)
    assert share["train_images"] == n_train
    assert (share["with_exact_in_test"], share["with_near_in_test"]) == (2, 3)
    assert share["share"] == pytest.approx(3 / n_train) and share["exact_share"] == pytest.approx(2 / n_train)


def test_grouped_split_keeps_every_duplicate_group_on_one_side(planted):
    samples, result = planted["samples"], planted["result"]
    grouped = audit.groups_from_audit(samples, result)
    assert grouped["group"].nunique() == len(samples) - 6  # six planted pairs, each merged into one group
    split = splits.split_samples(grouped, (0.5, 0.25, 0.25), seed=3)
    split_of = dict(zip(split["path"], split["split"]))
    for group in result["near_groups"]:
        # Includes the misfiled pair: split_samples files a mixed group whole under its majority label.
        assert len({split_of[file] for file in group["files"]}) == 1
    assert audit.train_test_duplicate_share(split, result)["share"] == 0


def test_groups_from_audit_keeps_known_groups(planted):
    samples, result = planted["samples"], planted["result"]
    # Two distinct images of one "patient" stay linked after the audit adds its groups.
    with_patients = samples.assign(group=None)
    patient_rows = with_patients.index[with_patients["path"].str.endswith(("normal_0002.png", "normal_0003.png"))]
    with_patients.loc[patient_rows, "group"] = "patient 7"
    grouped = audit.groups_from_audit(with_patients, result)
    assert grouped.loc[patient_rows, "group"].nunique() == 1
    assert grouped["group"].nunique() == len(samples) - 7


def test_groups_table_lists_every_member(planted):
    table = audit.groups_table(planted["result"])
    assert set(table["kind"]) == {"exact", "near"}
    assert (table["kind"] == "exact").sum() == 8 and (table["kind"] == "near").sum() == 12
    assert table.loc[table["label_conflict"], "label"].tolist().count("malignant") == 2  # exact and near row


def test_cli_audit_writes_json_csv_and_figure(planted, tmp_path, capsys):
    out = tmp_path / "audit"
    assert cli.main(["audit", str(planted["images"]), "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / audit.AUDIT_JSON).read_text())
    assert len(result["exact_groups"]) == 4 and len(result["near_groups"]) == 6
    assert {"pairs", "counts_per_class", "split"} <= set(result)
    assert result["split"]["grouped"]["share"] == 0
    csv = pd.read_csv(out / audit.GROUPS_CSV)
    assert len(csv) == 20 and set(csv.columns) >= {"kind", "group", "file", "label", "label_conflict"}
    assert (out / audit.PAIRS_FIGURE).stat().st_size > 0
    assert "4 exact-duplicate groups (1 with conflicting labels)" in capsys.readouterr().out


def test_cli_audit_reports_a_missing_folder_in_one_line(tmp_path, capsys):
    assert cli.main(["audit", str(tmp_path / "absent"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_real_copy_has_the_releases_42_byte_identical_pairs(iqoth_dir):
    release = manifest.load_manifest("iqothnccd")
    # The sample table straight from the manifest's file list, so every image is decoded only once.
    images = [Path(name) for name in release["files"] if Path(name).suffix.lower() in folders.IMAGE_SUFFIXES]
    samples = pd.DataFrame(
        {
            "path": [str(iqoth_dir / name) for name in images],
            "label": [release["label_map"][name.parts[0]] for name in images],
        }
    )
    result = audit.audit_samples(samples, progress=False)
    assert len(result["exact_groups"]) >= 42
    # The 42 pairs share their bytes; the exact groups must contain each of them.
    checksums = pd.Series(release["files"])
    byte_pairs = [
        frozenset(str(iqoth_dir / name) for name in names)
        for names in checksums.groupby(checksums).groups.values()
        if len(names) > 1
    ]
    exact_groups = [frozenset(group["files"]) for group in result["exact_groups"]]
    assert len(byte_pairs) == 42 and all(any(pair <= group for group in exact_groups) for pair in byte_pairs)
    image_split = splits.split_samples(samples, (0.7, 0.15, 0.15), seed=42)
    assert audit.train_test_duplicate_share(image_split, result)["share"] > 0
