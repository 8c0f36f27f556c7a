"""Data manifests: where each real data set comes from, and whether a local copy is it.

One YAML file per data set in ``data_manifests/`` at the project's top folder.
Fields:

- ``name``, ``citation``, ``licence``;
- ``source``: ``url`` (and optional ``urls``) and ``how_to_obtain``;
- ``label_map``: class folder -> label;
- ``expected_counts``: class folder -> number of images (or of series folders
  when ``count_unit: series``), or null when unknown;
- optional ``files``: relative path (POSIX) -> SHA-256 of every file of a
  released copy, made with :func:`checksum_listing`.

:func:`verify` compares a local copy against its manifest; :func:`data_fingerprint`
names the exact images and labels of one run (for its ``metrics.json``). An
optional ``download`` section lets ``camstudy data fetch`` get the data set
(see :mod:`common.data.fetch`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import common
from common.data.folders import IMAGE_SUFFIXES
from common.errors import DataError, ParameterError

MANIFEST_DIR = Path(common.__file__).resolve().parents[2] / "data_manifests"

REQUIRED_FIELDS = ("name", "citation", "licence", "source", "label_map", "expected_counts")
COUNT_UNITS = ("images", "series")
HASH_CHUNK_BYTES = 1 << 20


def available_manifests() -> list[str]:
    """Names of the manifests in :data:`MANIFEST_DIR`."""
    return sorted(path.stem for path in MANIFEST_DIR.glob("*.yaml"))


def load_manifest(name_or_path: str | Path) -> dict[str, Any]:
    """Load and check one manifest.

    Args:
        name_or_path: A manifest name (``"iqothnccd"`` -> ``data_manifests/iqothnccd.yaml``)
            or the path of a YAML file.

    Returns:
        The manifest as a dict, ``files`` defaulting to ``{}`` and ``count_unit``
        to ``"images"``.

    Raises:
        ParameterError: no manifest of that name or path.
        DataError: the YAML lacks a required field or has a malformed one.
    """
    candidate = Path(name_or_path)
    path = candidate if candidate.suffix in (".yaml", ".yml") else MANIFEST_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ParameterError(
            f"No data manifest {str(name_or_path)!r} (looked for {path}); "
            f"available: {', '.join(available_manifests())}."
        )
    try:
        with path.open(encoding="utf-8") as handle:
            manifest = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise DataError(
            f"Manifest {path} is not valid YAML{line}: {getattr(error, 'problem', error)}; fix the file."
        ) from error
    if not isinstance(manifest, dict):
        raise DataError(f"Manifest {path} is not a YAML mapping.")
    missing = [field for field in REQUIRED_FIELDS if field not in manifest]
    if missing:
        raise DataError(f"Manifest {path} lacks the field(s) {missing}; every manifest needs {list(REQUIRED_FIELDS)}.")
    for field in ("url", "how_to_obtain"):
        if field not in (manifest["source"] or {}):
            raise DataError(f"Manifest {path}: source lacks {field!r}.")
    manifest["files"] = manifest.get("files") or {}
    manifest.setdefault("count_unit", "images")
    if manifest["count_unit"] not in COUNT_UNITS:
        raise DataError(f"Manifest {path}: count_unit must be one of {COUNT_UNITS}, got {manifest['count_unit']!r}.")
    counts = manifest["expected_counts"] or {}
    unknown_folders = sorted(set(counts) - set(manifest["label_map"] or {}))
    if unknown_folders:
        raise DataError(f"Manifest {path}: expected_counts names folders {unknown_folders} that are not in label_map.")
    not_counts = {folder: n for folder, n in counts.items() if isinstance(n, bool) or not isinstance(n, int) or n < 0}
    if not_counts:
        raise DataError(f"Manifest {path}: expected_counts must be whole numbers >= 0, got {not_counts}.")
    return manifest


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(samples: Any) -> str:
    """One SHA-256 naming exactly which images, with which labels, a run used.

    The digest covers the sorted ``"<file SHA-256> <label>"`` lines of every
    row, so it does not depend on where the copy sits or on row order, but
    changes when any image's bytes or label change, or a row is added or dropped.

    Args:
        samples: A sample table with ``path`` and ``label`` columns (see
            :func:`common.data.folders.load_class_folders`).

    Returns:
        64 hexadecimal digits.
    """
    lines = sorted(f"{file_sha256(path)} {label}" for path, label in zip(samples["path"], samples["label"]))
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def visible_files(data_dir: Path) -> list[Path]:
    """Every non-hidden file below ``data_dir`` (hidden folders skipped too), sorted."""
    return sorted(
        path
        for path in data_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(data_dir).parts)
    )


def checksum_listing(data_dir: str | Path) -> dict[str, str]:
    """SHA-256 of every non-hidden file below ``data_dir``, keyed by POSIX relative path.

    This is how the ``files`` section of a manifest is made from a released copy.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"Data folder {data_dir} does not exist; pass --data-dir with the data set's root.")
    return {path.relative_to(data_dir).as_posix(): file_sha256(path) for path in visible_files(data_dir)}


def _count_class_folder(folder: Path, unit: str) -> int:
    if not folder.is_dir():
        return 0
    if unit == "series":
        return sum(1 for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    return sum(1 for path in visible_files(folder) if path.suffix.lower() in IMAGE_SUFFIXES)


def verify(manifest: Mapping[str, Any] | str | Path, data_dir: str | Path) -> dict[str, Any]:
    """Compare a local copy of a data set with its manifest.

    Args:
        manifest: A loaded manifest, or a name/path for :func:`load_manifest`.
        data_dir: The local copy's root (the folder holding the class folders).

    Returns:
        A report: ``name``, ``data_dir``, ``files_checked`` (how many listed files);
        ``missing`` (listed, absent), ``extra`` (present, not listed; only when the
        manifest lists files), ``changed`` (listed, different SHA-256), each a sorted
        list of relative paths; ``count_mismatches`` ({class folder: {expected,
        found}}); and ``ok``, true when all four are empty.

    Raises:
        DataError: ``data_dir`` does not exist (the message says how to obtain it).
    """
    if not isinstance(manifest, Mapping):
        manifest = load_manifest(manifest)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(
            f"Data folder {data_dir} for {manifest['name']} does not exist; pass --data-dir. "
            f"How to obtain it: {manifest['source']['how_to_obtain']}"
        )
    listed: Mapping[str, str] = manifest.get("files") or {}
    missing, changed, extra = [], [], []
    if listed:
        present = {path.relative_to(data_dir).as_posix(): path for path in visible_files(data_dir)}
        missing = sorted(set(listed) - set(present))
        extra = sorted(set(present) - set(listed))
        changed = sorted(
            relative for relative in set(listed) & set(present) if file_sha256(present[relative]) != listed[relative]
        )
    count_mismatches = {}
    for folder, expected in (manifest.get("expected_counts") or {}).items():
        found = _count_class_folder(data_dir / folder, manifest.get("count_unit", "images"))
        if expected is not None and found != expected:
            count_mismatches[folder] = {"expected": int(expected), "found": found}
    return {
        "name": manifest["name"],
        "data_dir": str(data_dir),
        "files_checked": len(listed),
        "missing": missing,
        "extra": extra,
        "changed": changed,
        "count_mismatches": count_mismatches,
        "ok": not (missing or extra or changed or count_mismatches),
    }


def format_report(report: Mapping[str, Any], max_paths: int = 10) -> str:
    """Render a :func:`verify` report as plain text for the CLI.

    Args:
        report: The dict :func:`verify` returns.
        max_paths: How many paths to show per list before summarising the rest.
    """
    verdict = "OK" if report["ok"] else "DOES NOT MATCH"
    lines = [f"{report['name']} at {report['data_dir']}: {verdict}"]
    if report["files_checked"]:
        lines.append(f"  {report['files_checked']} files listed in the manifest")
    else:
        lines.append("  the manifest lists no checksums; only class counts were checked")
    for key, meaning in (
        ("missing", "listed but absent"),
        ("changed", "different SHA-256"),
        ("extra", "present but not listed"),
    ):
        paths = report[key]
        if paths:
            lines.append(f"  {len(paths)} {key} ({meaning}):")
            lines.extend(f"    {path}" for path in paths[:max_paths])
            if len(paths) > max_paths:
                lines.append(f"    ... and {len(paths) - max_paths} more")
    for folder, counts in report["count_mismatches"].items():
        lines.append(f"  {folder}: expected {counts['expected']}, found {counts['found']}")
    return "\n".join(lines)


# Paths kept per list in a run's record of :func:`verify` (the counts are always whole).
RECORDED_PATHS = 20


def verification_record(report: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`verify` report as a run records it: verdict, counts, at most :data:`RECORDED_PATHS` paths per list."""
    record = {key: report[key] for key in ("name", "ok", "files_checked", "count_mismatches")}
    for key in ("missing", "changed", "extra"):
        record[key] = list(report[key][:RECORDED_PATHS])
        record[f"n_{key}"] = len(report[key])
    return record


def verification_sentence(record: Mapping[str, Any] | None) -> str:
    """One sentence on a :func:`verification_record` (or a :func:`verify` report), for a page."""
    if not record:
        return "not recorded by this run."
    if record.get("ok"):
        checked = record.get("files_checked") or 0
        what = f"all {checked} files have the manifest's SHA-256" if checked else "the manifest lists no checksums"
        return f"the local copy matches its manifest ({what}; class counts as expected)."
    parts = [
        f"{record.get(f'n_{key}', len(record.get(key) or []))} {key}"
        for key in ("missing", "changed", "extra")
        if record.get(f"n_{key}", len(record.get(key) or []))
    ]
    parts += [
        f"{folder}: {counts['found']} found, {counts['expected']} expected"
        for folder, counts in (record.get("count_mismatches") or {}).items()
    ]
    return "**the local copy does not match its manifest** (" + "; ".join(parts) + ")."
