"""Download a data set named by its manifest, check it and unpack it safely.

A manifest may carry a ``download`` section when its data set sits in one
archive at a direct URL::

    download:
      url: https://example.org/dataset.zip   # http or https only
      archive: zip                            # zip or tar.gz
      sha256: <64 hex digits>                 # required (unless fetch(..., insecure=True))
      subdir: <folder inside the archive>     # optional; the folder holding the class folders
      max_unpacked_bytes: <int>               # optional; default UNPACK_LIMITS
      max_files: <int>                        # optional; default UNPACK_LIMITS

:func:`fetch` never overwrites a copy that already verifies against the
manifest, never writes outside the target folder (archive members with an
absolute path, a ``..`` component or a link leaving the folder are refused
before anything is unpacked, and so is an archive that would unpack to more
bytes or files than the limits), and moves the unpacked data into place only
after it verified, so an interrupted or refused fetch leaves no partial copy.
Data sets that need a login or manual assembly have no ``download`` section;
for them :func:`fetch` raises with the manifest's ``how_to_obtain`` text.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from common.data import manifest as manifests
from common.errors import DataError

ARCHIVE_KINDS = ("zip", "tar.gz")
URL_SCHEMES = ("http", "https")
DOWNLOAD_CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# What an archive may unpack to at most, unless its manifest's download section says otherwise:
# the largest real data set here (Lung-PET-CT-Dx) is about 127 GB in TCIA's own format.
UNPACK_LIMITS = {"max_unpacked_bytes": 200 * 1024**3, "max_files": 2_000_000}


@dataclass(frozen=True)
class ArchiveMember:
    """One entry of an archive, in the terms the safety checks need.

    Attributes:
        name: The entry's path inside the archive.
        kind: ``"file"``, ``"dir"``, ``"symlink"``, ``"hardlink"`` or ``"other"``
            (devices, FIFOs).
        link_target: Where a link points (symlinks: relative to the entry's
            folder; tar hard links: relative to the archive's root), else ``""``.
        size: Bytes the entry unpacks to, as the archive declares it.
    """

    name: str
    kind: str
    link_target: str = ""
    size: int = 0


def download_spec(manifest: Mapping[str, Any], insecure: bool = False) -> dict[str, Any]:
    """Return a manifest's checked ``download`` section.

    Args:
        manifest: A loaded manifest.
        insecure: Accept a section without ``sha256`` (the download is then unchecked).

    Raises:
        DataError: the manifest has no ``download`` section (the message quotes
            its ``how_to_obtain``), or the section is malformed.
    """
    spec = manifest.get("download")
    if not spec:
        raise DataError(
            f"{manifest['name']}: this data set cannot be downloaded automatically: "
            f"{manifest['source']['how_to_obtain']}"
        )
    where = f"Manifest {manifest['name']}: download"
    if not isinstance(spec, Mapping) or not spec.get("url"):
        raise DataError(f"{where} needs a 'url' (and 'archive': one of {ARCHIVE_KINDS}).")
    scheme = urllib.parse.urlparse(str(spec["url"])).scheme
    if scheme not in URL_SCHEMES:
        raise DataError(f"{where}.url {spec['url']!r} must be an {' or '.join(URL_SCHEMES)} URL.")
    if spec.get("archive") not in ARCHIVE_KINDS:
        raise DataError(f"{where}.archive must be one of {ARCHIVE_KINDS}, got {spec.get('archive')!r}.")
    checksum = spec.get("sha256")
    if checksum is not None and not SHA256_PATTERN.match(str(checksum).lower()):
        raise DataError(f"{where}.sha256 must be 64 hexadecimal digits, got {checksum!r}.")
    if checksum is None and not insecure:
        raise DataError(
            f"{where} has no sha256, so a replaced or corrupted archive could not be told apart; add the "
            "archive's SHA-256 to the manifest, or pass --insecure to download it unchecked."
        )
    subdir = str(spec.get("subdir") or "")
    if subdir and _escapes(subdir):
        raise DataError(f"{where}.subdir {subdir!r} leaves the unpacked folder; name a folder inside the archive.")
    limits = {name: spec.get(name, default) for name, default in UNPACK_LIMITS.items()}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in limits.values()):
        raise DataError(f"{where}: {', '.join(UNPACK_LIMITS)} must be positive whole numbers, got {limits}.")
    return {
        "url": str(spec["url"]),
        "archive": spec["archive"],
        "sha256": None if checksum is None else str(checksum).lower(),
        "subdir": subdir,
        **limits,
    }


def download(url: str, destination: str | Path, expected_sha256: str | None = None, progress: bool = False) -> str:
    """Stream ``url`` into ``destination`` and return the file's SHA-256.

    Args:
        url: An http(s) URL.
        destination: The file to write (its folder must exist).
        expected_sha256: When given, a different digest deletes the file and raises.
        progress: Show a tqdm progress bar.

    Raises:
        DataError: the URL cannot be fetched, or its checksum differs.
    """
    destination = Path(destination)
    if urllib.parse.urlparse(url).scheme not in URL_SCHEMES:
        raise DataError(f"Refusing to download {url!r}: only {' and '.join(URL_SCHEMES)} URLs are fetched.")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, destination.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, destination.name) if progress else None
            for chunk in iter(lambda: response.read(DOWNLOAD_CHUNK_BYTES), b""):
                digest.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        destination.unlink(missing_ok=True)
        raise DataError(f"Could not download {url}: {exc}. Check the address and your connection.") from exc
    found = digest.hexdigest()
    if expected_sha256 is not None and found != expected_sha256.lower():
        destination.unlink(missing_ok=True)
        raise DataError(
            f"{url}: SHA-256 of the download is {found}, the manifest expects {expected_sha256}; "
            "the file is corrupt or was replaced upstream. Nothing was unpacked; try again, and if it "
            "persists compare the source with the manifest's citation."
        )
    return found


def _progress_bar(total: int | None, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=name)


def archive_members(archive: str | Path, kind: str) -> Iterator[ArchiveMember]:
    """List the entries of a ``zip`` or ``tar.gz`` file without unpacking them."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    yield ArchiveMember(info.filename, "symlink", bundle.read(info).decode("utf-8", "replace"))
                else:
                    yield ArchiveMember(info.filename, "dir" if info.is_dir() else "file", size=info.file_size)
    else:
        with tarfile.open(archive, "r:gz") as bundle:
            for info in bundle.getmembers():
                if info.issym():
                    yield ArchiveMember(info.name, "symlink", info.linkname)
                elif info.islnk():
                    yield ArchiveMember(info.name, "hardlink", info.linkname)
                elif info.isdir() or info.isfile():
                    yield ArchiveMember(info.name, "dir" if info.isdir() else "file", size=info.size)
                else:
                    yield ArchiveMember(info.name, "other")


def _escapes(relative: str) -> bool:
    """True when a path inside the target folder is absolute or climbs out of it."""
    # Backslashes count as separators too: an archive made on Windows may use them.
    path = PurePosixPath(relative.replace("\\", "/"))
    drive_letter = re.match(r"^[A-Za-z]:", relative) is not None
    if path.is_absolute() or drive_letter:
        return True
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def unsafe_reason(member: ArchiveMember, kind: str) -> str | None:
    """Why unpacking ``member`` could write outside the target folder, or None if it is safe."""
    if _escapes(member.name):
        return "its path is absolute or leaves the folder through '..'"
    if member.kind == "other":
        return "it is a device or FIFO, not a file"
    if member.kind == "symlink" and kind == "zip":
        return "zip symbolic links cannot be restored safely"
    if member.kind == "symlink":
        seen_from = PurePosixPath(member.name.replace("\\", "/")).parent.as_posix()
        if member.link_target.startswith(("/", "\\")) or _escapes(f"{seen_from}/{member.link_target}"):
            return f"it is a symbolic link to {member.link_target!r}, outside the folder"
    if member.kind == "hardlink" and _escapes(member.link_target):
        return f"it is a hard link to {member.link_target!r}, outside the folder"
    return None


def safe_extract(
    archive: str | Path,
    kind: str,
    target: str | Path,
    max_unpacked_bytes: int = UNPACK_LIMITS["max_unpacked_bytes"],
    max_files: int = UNPACK_LIMITS["max_files"],
) -> Path:
    """Unpack an archive into ``target`` after checking every entry first.

    Args:
        archive: A ``zip`` or ``tar.gz`` file.
        kind: ``"zip"`` or ``"tar.gz"``.
        target: Folder to unpack into (created).
        max_unpacked_bytes: Refuse an archive whose entries declare more bytes in all.
        max_files: Refuse an archive with more entries.

    Returns:
        ``target``.

    Raises:
        DataError: the archive cannot be read, or any entry has an absolute path,
            a ``..`` component, or is a link leaving ``target``; then nothing is
            unpacked at all.
    """
    archive, target = Path(archive), Path(target)
    if kind not in ARCHIVE_KINDS:
        raise DataError(f"Unknown archive kind {kind!r}; use one of {ARCHIVE_KINDS}.")
    try:
        members = list(archive_members(archive, kind))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable {kind} archive ({exc}); download it again.") from exc
    refused = [f"{m.name!r} ({reason})" for m in members if (reason := unsafe_reason(m, kind)) is not None]
    total = sum(member.size for member in members)
    if total > max_unpacked_bytes or len(members) > max_files:
        raise DataError(
            f"Refusing to unpack {archive}: it declares {len(members):,} entries and {total:,} bytes, above the "
            f"limits of {max_files:,} entries and {max_unpacked_bytes:,} bytes (max_files, max_unpacked_bytes in "
            "the manifest's download section). Nothing was unpacked."
        )
    if refused:
        raise DataError(
            f"Refusing to unpack {archive} into {target}: {len(refused)} unsafe "
            f"entr{'y' if len(refused) == 1 else 'ies'}: {'; '.join(refused[:5])}. "
            "Nothing was unpacked; do not use this archive."
        )
    target.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(target)
        else:
            with tarfile.open(archive, "r:gz") as bundle:
                # The "data" filter repeats the checks above inside tarfile itself.
                bundle.extractall(target, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise DataError(
            f"{archive}: unpacking failed ({type(exc).__name__}: {exc}); nothing was kept. A CRC or format error "
            "means a damaged download (download it again); 'No space left' means the disk is full."
        ) from exc
    return target


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def fetch(
    manifest: Mapping[str, Any] | str | Path, out_dir: str | Path, progress: bool = False, insecure: bool = False
) -> dict[str, Any]:
    """Download, check and unpack a manifest's data set into ``out_dir``.

    Args:
        manifest: A loaded manifest, or a name/path for :func:`common.data.manifest.load_manifest`.
        out_dir: Folder that will hold the class folders. It must not exist, be
            empty, or already verify against the manifest (then nothing is done).
        progress: Show a download progress bar.
        insecure: Download even when the manifest gives no SHA-256 (unchecked).

    Returns:
        ``{"status": "present" | "downloaded", "out_dir", "sha256" (of the
        archive, None when nothing was downloaded), "checksum_checked" (whether
        the manifest had one), "report"}``, the report being that of
        :func:`common.data.manifest.verify` on ``out_dir``.

    Raises:
        DataError: no automatic download for this data set; ``out_dir`` holds
            files that do not verify; the download fails or has the wrong
            checksum; the archive is unsafe; or the unpacked data does not verify.
    """
    if not isinstance(manifest, Mapping):
        manifest = manifests.load_manifest(manifest)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not _is_empty_folder(out_dir):
        report = manifests.verify(manifest, out_dir) if out_dir.is_dir() else {"ok": False}
        if report["ok"]:
            return {
                "status": "present",
                "out_dir": out_dir,
                "sha256": None,
                "checksum_checked": False,
                "report": report,
            }
        raise DataError(
            f"{out_dir} already holds files that do not match the manifest {manifest['name']}; fetch never "
            "writes into such a folder. Remove it (or run `camstudy data verify` to see what differs), "
            "or pass another --out."
        )
    spec = download_spec(manifest, insecure)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside out_dir (same file system), so the final move is one rename.
    staging = out_dir.with_name(f".fetch-{out_dir.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        archive = staging / f"download.{spec['archive']}"
        digest = download(spec["url"], archive, spec["sha256"], progress=progress)
        unpacked = safe_extract(
            archive, spec["archive"], staging / "unpacked", spec["max_unpacked_bytes"], spec["max_files"]
        )
        data_root = unpacked / spec["subdir"]
        if not data_root.is_dir():
            raise DataError(
                f"The archive from {spec['url']} has no folder {spec['subdir']!r}; "
                f"it holds {sorted(p.name for p in unpacked.iterdir())}. Fix download.subdir in the manifest."
            )
        report = manifests.verify(manifest, data_root)
        if not report["ok"]:
            counts = ", ".join(f"{len(report[key])} {key}" for key in ("missing", "changed", "extra"))
            raise DataError(
                f"The data downloaded from {spec['url']} does not match the manifest ({counts} files, "
                f"{len(report['count_mismatches'])} class counts differ); nothing was written to {out_dir}. "
                "The manifest or the archive is out of date."
            )
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(data_root, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = dict(report, data_dir=str(out_dir))
    return {
        "status": "downloaded",
        "out_dir": out_dir,
        "sha256": digest,
        "checksum_checked": spec["sha256"] is not None,
        "report": report,
    }


def describe(result: Mapping[str, Any]) -> str:
    """One paragraph for the CLI about what :func:`fetch` did."""
    if result["status"] == "present":
        return (
            f"{result['out_dir']} already verifies against the manifest; nothing downloaded, "
            f"nothing overwritten.\n{manifests.format_report(result['report'])}"
        )
    checksum = (
        "the archive's SHA-256 matched the manifest"
        if result["checksum_checked"]
        else f"the manifest has no SHA-256 for the archive; this download's is {result['sha256']} "
        "(add it to the manifest's download.sha256 to pin it)"
    )
    return f"Downloaded into {result['out_dir']}; {checksum}.\n{manifests.format_report(result['report'])}"
