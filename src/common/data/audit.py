"""Leakage audit: exact and near-duplicate images of a class-folder data set.

Public releases of medical images often hold the same image twice (under two
names, or in two formats) and near-identical neighbours (consecutive CT slices
of one patient). A split made image by image then puts copies of a test image
in training, and test scores measure recall of the copies. This module finds
such images and turns them into groups that :func:`common.data.splits.split_samples`
keeps on one side of a split.

Every image is decoded once by :func:`common.data.folders.read_image` (greyscale, 0..255)
and fingerprinted four ways:

* **Exact hash**: SHA-256 of the decoded pixels together with their shape, so
  copies under other names and lossless re-saves (PNG, BMP, TIFF) collide.
* **Size-normalised hash**: SHA-256 of the image area-resized to
  :data:`common.data.fingerprints.NORMALISED_SIZE` squared and rounded to 8 bits, so a copy rescaled by a
  whole factor collides too. Other rescalings usually collide but may not (a
  rounding at x.5 can flip); the near-duplicate search below finds them anyway.
  Lossy re-saves (JPEG) change the pixels and are near duplicates, not exact ones.
* **Perceptual hash** (DCT hash): the signs, relative to their median, of the
  8 x 8 lowest spatial frequencies of the image area-resized to 32 x 32; 64 bits,
  compared by Hamming distance.
* **Pixel descriptor**: the image area-resized to :data:`DESCRIPTOR_SIZE`
  squared, mean-centred and L2-normalised, so the cosine of two descriptors is
  the Pearson correlation of the two thumbnails. No network weights are needed,
  and the cosine is insensitive to brightness offsets, mild noise and shifts
  by a pixel at full size (a shifted, noised 128 px phantom keeps 0.99; distinct
  phantoms stay below 0.95). A gradient histogram was left out on purpose: it
  ignores where structures are, so it would pull distinct slices of one body
  region together.

Two images are *exact duplicates* when their exact or size-normalised hashes
match; *near duplicates* when their descriptor cosine reaches the threshold
(default 0.98) or their perceptual hashes differ in at most ``max_hamming``
bits; every exact pair is a near pair too. The hash default is 0 because CT
slices share one body outline, so their hashes differ in few bits: on
IQ-OTH/NCCD the cosine finds 360 pairs, distance 0 adds 43 (such as slices a
few file numbers apart, cosine 0.81-0.98), distance 2 would add 292.

Pairs are edges of a graph; its connected components (``scipy.sparse.csgraph``)
of two or more images are the groups. All pairwise comparisons are matrix
products, so a thousand images take seconds after decoding.

The audit result is a JSON-ready dict (see :func:`audit_samples`); :func:`run`
writes it as ``audit.json`` with a CSV of the groups and a figure of the most
similar pairs across the splits of a conventional image-level split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from common.data import fingerprints, folders, shortcuts, splits
from common.errors import DataError, ParameterError
from common.report.results import write_json_atomic

DEFAULT_THRESHOLD = 0.98
DEFAULT_MAX_HAMMING = 0
# Output file names of :func:`run`.
AUDIT_JSON = "audit.json"
GROUPS_CSV = "duplicate_groups.csv"
PAIRS_FIGURE = "cross_split_pairs.png"
CONVENTIONAL_FRACTIONS = (0.7, 0.15, 0.15)


def _same_key_matrix(keys: Sequence[str]) -> np.ndarray:
    """Boolean (N, N) matrix: True where two rows share a key."""
    codes = pd.factorize(pd.Series(list(keys), dtype=object))[0]
    return codes[:, None] == codes[None, :]


def _hamming_matrix(bits: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances of bit rows, by one matrix product of +-1 codes."""
    signs = np.where(bits, 1.0, -1.0).astype(np.float32)
    return np.rint((bits.shape[1] - signs @ signs.T) / 2).astype(int)


def _components(adjacency: np.ndarray) -> np.ndarray:
    """Connected-component id of each row of a boolean adjacency matrix."""
    rows, cols = np.nonzero(np.triu(adjacency, k=1))
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=adjacency.shape)
    return connected_components(graph, directed=False)[1]


def _groups(component_ids: np.ndarray, paths: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Components of two or more images as group records, largest first."""
    ids, sizes = np.unique(component_ids, return_counts=True)
    members = [np.flatnonzero(component_ids == component) for component in ids[sizes > 1]]
    members.sort(key=lambda rows: (-len(rows), rows[0]))
    return [
        {
            "id": number,
            "size": len(rows),
            "files": paths[rows].tolist(),
            "labels": labels[rows].tolist(),
            "label_conflict": bool(len(set(labels[rows])) > 1),
        }
        for number, rows in enumerate(members)
    ]


def audit_samples(
    samples: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    max_hamming: int = DEFAULT_MAX_HAMMING,
    progress: bool = True,
) -> dict[str, Any]:
    """Find exact and near-duplicate images among the rows of a sample table.

    Args:
        samples: Sample table with ``path`` and ``label`` columns (see
            :func:`common.data.folders.load_class_folders`).
        threshold: Descriptor cosine similarity at or above which two images are
            near duplicates, in (0, 1].
        max_hamming: Perceptual-hash Hamming distance at or below which two
            images are near duplicates; -1 turns the hash criterion off.
        progress: Show a tqdm progress bar while decoding.

    Returns:
        A JSON-ready dict with ``n_images``, ``threshold``, ``max_hamming``,
        ``descriptor`` (what the cosine is computed on), ``exact_groups`` and
        ``near_groups`` (lists of ``{id, size, files, labels, label_conflict}``,
        largest first; near groups are components of all exact and near pairs),
        ``pairs`` (every near pair ``{file_a, file_b, label_a, label_b, cosine,
        hamming, exact}``, most similar first), ``counts_per_class`` (per label:
        ``images``, ``in_exact_groups``, ``in_near_groups``, ``exact_groups``,
        ``near_groups`` touching the label), ``label_conflicts`` (exact groups
        whose members disagree on the label) and ``runtime_s``.

    Raises:
        ParameterError: threshold outside (0, 1] or max_hamming below -1.
        DataError: empty table, missing columns, or an unreadable image.
    """
    if not 0 < threshold <= 1:
        raise ParameterError(f"threshold must be a cosine similarity in (0, 1], got {threshold!r}.")
    if int(max_hamming) != max_hamming or max_hamming < -1:
        raise ParameterError(f"max_hamming must be an integer >= -1 (-1 = off), got {max_hamming!r}.")
    missing = [column for column in ("path", "label") if column not in samples.columns]
    if samples.empty or missing:
        raise DataError(f"audit needs a non-empty sample table with path and label columns; missing {missing}.")
    started = time.perf_counter()
    paths = samples["path"].astype(str).to_numpy()
    labels = samples["label"].astype(str).to_numpy()
    prints = fingerprints.fingerprints(paths, progress)

    exact = _same_key_matrix(prints["exact"]) | _same_key_matrix(prints["normalised"])
    exact_ids = _components(exact)
    # Exact copies are linked transitively (a native-size match and a rescaled match chain up).
    exact = exact_ids[:, None] == exact_ids[None, :]
    cosine = prints["descriptor"] @ prints["descriptor"].T
    hamming = _hamming_matrix(prints["phash"])
    near = exact | (cosine >= threshold) | (hamming <= max_hamming)
    np.fill_diagonal(near, False)
    near_ids = _components(near)

    pairs = _near_pairs(near, exact, cosine, hamming, paths, labels)
    exact_groups = _groups(exact_ids, paths, labels)
    near_groups = _groups(near_ids, paths, labels)
    return {
        "n_images": len(paths),
        "threshold": threshold,
        "max_hamming": int(max_hamming),
        "descriptor": fingerprints.DESCRIPTOR_NAME,
        "exact_groups": exact_groups,
        "near_groups": near_groups,
        "pairs": pairs,
        "counts_per_class": _counts_per_class(labels, exact_groups, near_groups),
        "label_conflicts": sum(group["label_conflict"] for group in exact_groups),
        "runtime_s": round(time.perf_counter() - started, 2),
    }


def _near_pairs(
    near: np.ndarray, exact: np.ndarray, cosine: np.ndarray, hamming: np.ndarray, paths: np.ndarray, labels: np.ndarray
) -> list[dict[str, Any]]:
    """Every near pair once (upper triangle of ``near``), most similar first."""
    first, second = np.nonzero(np.triu(near, k=1))
    order = np.lexsort((second, first, -cosine[first, second]))
    return [
        {
            "file_a": paths[a],
            "file_b": paths[b],
            "label_a": labels[a],
            "label_b": labels[b],
            "cosine": round(float(cosine[a, b]), 6),
            "hamming": int(hamming[a, b]),
            "exact": bool(exact[a, b]),
        }
        for a, b in zip(first[order], second[order])
    ]


def _counts_per_class(labels: np.ndarray, exact_groups: list[dict], near_groups: list[dict]) -> dict[str, dict]:
    counts = {}
    for label in pd.unique(labels):
        row = {"images": int((labels == label).sum())}
        for kind, groups in (("exact", exact_groups), ("near", near_groups)):
            row[f"in_{kind}_groups"] = sum(group["labels"].count(label) for group in groups)
            row[f"{kind}_groups"] = sum(label in group["labels"] for group in groups)
        counts[str(label)] = row
    return counts


def groups_table(audit_result: dict[str, Any]) -> pd.DataFrame:
    """One row per file of every group (the CSV of :func:`run`).

    Columns: ``kind`` (exact/near), ``group`` (id within its kind), ``size``,
    ``file``, ``label``, ``label_conflict``.
    """
    rows = [
        {
            "kind": kind,
            "group": group["id"],
            "size": group["size"],
            "file": file,
            "label": label,
            "label_conflict": group["label_conflict"],
        }
        for kind in ("exact", "near")
        for group in audit_result[f"{kind}_groups"]
        for file, label in zip(group["files"], group["labels"])
    ]
    return pd.DataFrame(rows, columns=["kind", "group", "size", "file", "label", "label_conflict"])


def groups_from_audit(samples: pd.DataFrame, audit_result: dict[str, Any], group_col: str = "group") -> pd.DataFrame:
    """Give every sample the id of its duplicate group, for a grouped split.

    Rows are linked when they are in one exact or near group of the audit, or
    already share a non-null ``group_col`` value (e.g. a patient id); each
    connected component gets one integer id, so a singleton gets its own.
    :func:`common.data.splits.split_samples` then keeps every group on one side and
    stratifies by the group's most frequent label (ties: the first seen), so a
    group whose members disagree on the label moves whole with its majority
    label; the audit flags such exact groups as ``label_conflict``.

    Args:
        samples: Sample table with a ``path`` column (the paths the audit saw).
        audit_result: The dict returned by :func:`audit_samples`.
        group_col: Column to write the ids into.

    Returns:
        A copy of ``samples`` with integer ids in ``group_col``. Samples the
        audit did not see keep their own id.
    """
    position_of = {path: position for position, path in enumerate(samples["path"].astype(str))}
    rows, cols = [], []
    for group in audit_result["exact_groups"] + audit_result["near_groups"]:
        members = [position_of[file] for file in group["files"] if file in position_of]
        rows += members[:1] * max(len(members) - 1, 0)
        cols += members[1:]
    if group_col in samples.columns and samples[group_col].notna().any():
        known = samples[group_col].notna().to_numpy()
        codes = pd.factorize(samples[group_col][known])[0]
        positions = np.flatnonzero(known)
        first_of_code = {code: positions[np.argmax(codes == code)] for code in np.unique(codes)}
        rows += [first_of_code[code] for code in codes]
        cols += positions.tolist()
    count = len(samples)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    result = samples.copy()
    result[group_col] = connected_components(graph, directed=False)[1]
    return result


def duplicate_links(
    samples: pd.DataFrame, audit_result: dict[str, Any], between: tuple[str, str] = ("train", "test")
) -> pd.DataFrame:
    """Pairs of the audit whose two images sit in the two given splits.

    Args:
        samples: Split sample table (``path`` and ``split`` columns).
        audit_result: The dict returned by :func:`audit_samples`.
        between: The two splits; pairs are returned with ``file_a`` in the first.

    Returns:
        Table of the matching pairs (columns of the audit's ``pairs`` plus
        ``split_a``, ``split_b``), most similar first.
    """
    if "split" not in samples.columns:
        raise DataError("The sample table has no 'split' column; split it first (common.data.splits.split_samples).")
    split_of = dict(zip(samples["path"].astype(str), samples["split"]))
    columns = ["file_a", "file_b", "label_a", "label_b", "cosine", "hamming", "exact"]
    pairs = pd.DataFrame(audit_result["pairs"], columns=columns)
    split_a, split_b = pairs["file_a"].map(split_of), pairs["file_b"].map(split_of)
    forward = (split_a == between[0]) & (split_b == between[1])
    backward = (split_a == between[1]) & (split_b == between[0]) & ~forward
    swapped = pairs[backward].rename(
        columns={"file_a": "file_b", "file_b": "file_a", "label_a": "label_b", "label_b": "label_a"}
    )
    links = pd.concat([pairs[forward], swapped[columns]], ignore_index=True)
    links["split_a"], links["split_b"] = between
    return links.sort_values("cosine", ascending=False, kind="stable").reset_index(drop=True)


def train_test_duplicate_share(
    samples: pd.DataFrame, audit_result: dict[str, Any], train: str = "train", test: str = "test"
) -> dict[str, Any]:
    """Share of training images that have an exact or near duplicate in the test set.

    Args:
        samples: Split sample table (``path`` and ``split`` columns).
        audit_result: The dict returned by :func:`audit_samples`.
        train: Name of the training split.
        test: Name of the test split.

    Returns:
        ``{"train_images", "with_exact_in_test", "with_near_in_test",
        "exact_share", "share", "test_images_with_train_duplicate"}``:
        ``share`` counts exact and near duplicates (every exact pair is a near pair).
    """
    links = duplicate_links(samples, audit_result, (train, test))
    n_train = int((samples["split"] == train).sum())
    if n_train == 0:
        raise DataError(f"The split has no {train!r} images; nothing to measure.")
    with_exact = links.loc[links["exact"], "file_a"].nunique()
    with_near = links["file_a"].nunique()
    return {
        "train_images": n_train,
        "with_exact_in_test": int(with_exact),
        "with_near_in_test": int(with_near),
        "exact_share": with_exact / n_train,
        "share": with_near / n_train,
        "test_images_with_train_duplicate": int(links["file_b"].nunique()),
    }


def cross_split_pairs_figure(samples: pd.DataFrame, audit_result: dict[str, Any], n_pairs: int = 6, path=None):
    """The most similar pairs side by side: pairs across splits first, then by cosine.

    Args:
        samples: Split sample table (``path``, ``label``, ``split``).
        audit_result: The dict returned by :func:`audit_samples`.
        n_pairs: Pairs (rows) to show.
        path: Where to save the PNG, or None.

    Returns:
        The matplotlib figure (made by :func:`common.report.figures.image_grid`).

    Raises:
        DataError: the audit found no pairs to show.
    """
    from common.report import figures  # matplotlib only when a figure is drawn

    split_names = [name for name in ("train", "val", "test") if name in set(samples["split"])]
    links = pd.concat(
        [
            duplicate_links(samples, audit_result, (a, b))
            for position, a in enumerate(split_names)
            for b in split_names[position:]
        ],
        ignore_index=True,
    )
    if links.empty:
        raise DataError("The audit found no duplicate pairs, so there is no pair figure to draw.")
    links["cross"] = links["split_a"] != links["split_b"]
    chosen = links.sort_values(["cross", "cosine"], ascending=False, kind="stable").head(n_pairs)
    images, titles = [], []
    for pair in chosen.itertuples():
        for side in ("a", "b"):
            file = getattr(pair, f"file_{side}")
            images.append(folders.read_image(file))
            titles.append(f"{getattr(pair, f'split_{side}')} / {getattr(pair, f'label_{side}')}\n{Path(file).name}")
        titles[-1] += f"\ncos {pair.cosine:.4f}, Hamming {pair.hamming}" + (", exact" if pair.exact else "")
    title = f"Most similar pairs, across splits first (cosine threshold {audit_result['threshold']})"
    return figures.image_grid(images, titles, ncols=2, path=path, title=title)


def run(
    data_dir: str | Path,
    out_dir: str | Path,
    label_map: dict[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_hamming: int = DEFAULT_MAX_HAMMING,
    split_seed: int = 42,
    progress: bool = True,
    check_shortcuts: bool = True,
) -> dict[str, Any]:
    """Audit a class-folder data set and write ``audit.json``, the group CSV and the pair figure.

    Besides the audit, the result gets a ``split`` entry: the share of training
    images with a duplicate in the test set under a conventional image-level
    70/15/15 split (``split_seed``), and the same share under the grouped split
    of :func:`groups_from_audit` (zero by construction, checked here); and a
    ``shortcut`` entry: the :meth:`common.data.shortcuts.ShortcutAudit.record`
    of the shortcut audit, its folds and bootstrap grouped by duplicate group.

    Args:
        data_dir: Class-folder data set (unreadable images are skipped and listed).
        out_dir: Folder for the outputs (created).
        label_map: Class folder -> label, or None for the folder names.
        threshold: Cosine threshold of near duplicates.
        max_hamming: Perceptual-hash Hamming threshold (-1: off).
        split_seed: Seed of the image-level and grouped splits.
        progress: Show a progress bar.
        check_shortcuts: Run the shortcut audit too.

    Returns:
        The audit result with ``split``, ``shortcut`` (with ``check_shortcuts``), ``skipped`` (unreadable files) and
        ``outputs`` (file paths) added; ``runtime_s`` is the whole run's.
    """
    started = time.perf_counter()
    samples, skipped = folders.load_class_folders(data_dir, label_map, on_bad_file="skip")
    result = audit_samples(samples, threshold, max_hamming, progress)
    image_split = splits.split_samples(samples.assign(group=None), CONVENTIONAL_FRACTIONS, seed=split_seed)
    grouped = groups_from_audit(samples, result)
    grouped_split = splits.split_samples(grouped, CONVENTIONAL_FRACTIONS, seed=split_seed)
    result["split"] = {
        "fractions": list(CONVENTIONAL_FRACTIONS),
        "seed": split_seed,
        "image_level": train_test_duplicate_share(image_split, result),
        "grouped": train_test_duplicate_share(grouped_split, result),
    }
    if check_shortcuts:
        result["shortcut"] = shortcuts.audit_samples(grouped, seed=split_seed).record()
    result["skipped"] = skipped
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"json": out_dir / AUDIT_JSON, "csv": out_dir / GROUPS_CSV, "figure": None}
    groups_table(result).to_csv(outputs["csv"], index=False)
    if result["pairs"]:
        import matplotlib.pyplot as plt  # only when a figure is drawn

        plt.close(cross_split_pairs_figure(image_split, result, path=out_dir / PAIRS_FIGURE))
        outputs["figure"] = out_dir / PAIRS_FIGURE
    result["outputs"] = {key: (str(value) if value else None) for key, value in outputs.items()}
    result["runtime_s"] = round(time.perf_counter() - started, 2)
    write_json_atomic(outputs["json"], result)
    return result


def summary(result: dict[str, Any]) -> str:
    """A few lines for the console: groups, conflicts, shares, the shortcut audit, outputs, runtime."""
    lines = [
        f"{result['n_images']} images: {len(result['exact_groups'])} exact-duplicate groups "
        f"({result['label_conflicts']} with conflicting labels), {len(result['near_groups'])} near-duplicate groups "
        f"at cosine >= {result['threshold']} or Hamming <= {result['max_hamming']} ({len(result['pairs'])} pairs)",
    ]
    if "split" in result:
        for kind in ("image_level", "grouped"):
            share = result["split"][kind]
            lines.append(
                f"{kind.replace('_', '-')} split (seed {result['split']['seed']}): "
                f"{share['with_near_in_test']}/{share['train_images']} training images "
                f"({share['share']:.1%}) have a duplicate in the test set "
                f"({share['with_exact_in_test']} exact)"
            )
    if "shortcut" in result:
        lines += shortcuts.summary_lines(result["shortcut"])
    lines += [f"{key}: {value}" for key, value in result.get("outputs", {}).items() if value]
    lines.append(f"runtime: {result['runtime_s']:.1f} s")
    return "\n".join(lines)
