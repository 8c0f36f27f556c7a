"""Tests of common.data.fetch against a local HTTP server on 127.0.0.1 (no other traffic).

Each test builds its archives from a tiny class-folder set, serves them from a
temporary folder on an ephemeral port, and checks that fetch downloads, verifies
and unpacks honest archives, and refuses wrong checksums and malicious archives
without writing anything outside its target.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from common import cli
from common.data import fetch
from common.data.manifest import checksum_listing, load_manifest
from common.errors import DataError
from tests.conftest import write_class_folders

COUNTS = {"a": 3, "b": 2}
ARCHIVE_ROOT = "release"  # the folder inside each archive that holds the class folders


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/served`` on 127.0.0.1; yields (folder, base URL, list of requested paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_set(tmp_path):
    """A tiny class-folder set (outside the served folder) and its checksum listing."""
    images = write_class_folders(tmp_path / "source", COUNTS)
    return images, checksum_listing(images)


def write_archive(path: Path, kind: str, entries: list[tuple[str, bytes | None, str]]) -> Path:
    """Write a zip or tar.gz from ``(name, content, link_target)`` rows.

    ``content`` None with a ``link_target`` makes a symbolic link (``"hard:"``
    prefix: a tar hard link); entries are written verbatim, so tests can build
    archives no honest tool would make.
    """
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as bundle:
            for name, content, link in entries:
                info = zipfile.ZipInfo(name)
                if content is None:
                    info.external_attr = 0o120777 << 16  # S_IFLNK: a symbolic link entry
                    content = link.encode()
                bundle.writestr(info, content)
    else:
        with tarfile.open(path, "w:gz") as bundle:
            for name, content, link in entries:
                info = tarfile.TarInfo(name)
                if content is None:
                    hard = link.startswith("hard:")
                    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
                    info.linkname = link.removeprefix("hard:")
                    bundle.addfile(info)
                else:
                    info.size = len(content)
                    bundle.addfile(info, io.BytesIO(content))
    return path


def set_entries(images: Path) -> list[tuple[str, bytes, str]]:
    """Archive rows of every file of a class-folder set, under :data:`ARCHIVE_ROOT`."""
    return [
        (f"{ARCHIVE_ROOT}/{path.relative_to(images).as_posix()}", path.read_bytes(), "")
        for path in sorted(images.rglob("*"))
        if path.is_file()
    ]


def manifest_for(files: dict[str, str], url: str, kind: str, sha256: str | None) -> dict:
    """A manifest of the tiny set whose download is ``url``."""
    download = {"url": url, "archive": kind, "subdir": ARCHIVE_ROOT}
    if sha256 is not None:
        download["sha256"] = sha256
    return {
        "name": "tiny",
        "citation": "test fixture",
        "licence": "none",
        "source": {"url": url, "how_to_obtain": "serve it from the test"},
        "label_map": {"a": "a", "b": "b"},
        "expected_counts": dict(COUNTS),
        "files": files,
        "download": download,
    }


def snapshot(root: Path) -> set[str]:
    """Every path below ``root`` (to prove a refused fetch wrote nothing)."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", fetch.ARCHIVE_KINDS)
def test_fetch_downloads_verifies_unpacks_and_never_overwrites(tmp_path, server, tiny_set, kind):
    served, base, requests = server
    images, files = tiny_set
    archive = write_archive(served / f"set.{kind}", kind, set_entries(images))
    manifest = manifest_for(files, f"{base}/set.{kind}", kind, sha256_of(archive))
    out = tmp_path / "data" / "tiny"

    result = fetch.fetch(manifest, out)
    assert result["status"] == "downloaded" and result["checksum_checked"]
    assert result["report"]["ok"] and checksum_listing(out) == files
    assert requests == [f"/set.{kind}"]
    assert not list(out.parent.glob(".fetch-*"))

    # A verified copy is left alone: no request, no write, even if the source changed.
    archive.write_bytes(b"replaced upstream")
    again = fetch.fetch(manifest, out)
    assert again["status"] == "present" and "nothing overwritten" in fetch.describe(again)
    assert requests == [f"/set.{kind}"] and checksum_listing(out) == files


def test_fetch_without_a_checksum_reports_the_download_digest(tmp_path, server, tiny_set):
    served, base, _ = server
    images, files = tiny_set
    archive = write_archive(served / "set.zip", "zip", set_entries(images))
    manifest = manifest_for(files, f"{base}/set.zip", "zip", None)
    with pytest.raises(DataError, match="has no sha256"):
        fetch.fetch(manifest, tmp_path / "into_empty_dir")
    result = fetch.fetch(manifest, tmp_path / "into_empty_dir", insecure=True)
    assert not result["checksum_checked"] and result["sha256"] == sha256_of(archive)
    assert f"this download's is {sha256_of(archive)}" in fetch.describe(result)


def test_wrong_checksum_is_refused_and_nothing_is_written(tmp_path, server, tiny_set):
    served, base, _ = server
    images, files = tiny_set
    write_archive(served / "set.zip", "zip", set_entries(images))
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="SHA-256 of the download is .* the manifest expects 0{64}"):
        fetch.fetch(manifest_for(files, f"{base}/set.zip", "zip", "0" * 64), tmp_path / "out")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "served_bytes, kind, message",
    [
        (None, "zip", r"Could not download .*/set\.zip: HTTP Error 404.*connection"),
        (b"<html>login page</html>", "zip", r"not a readable zip archive"),
        (b"<html>login page</html>", "tar.gz", r"not a readable tar\.gz archive"),
    ],
    ids=["404", "html-as-zip", "html-as-tar.gz"],
)
def test_broken_downloads_are_clear_errors(tmp_path, server, tiny_set, served_bytes, kind, message):
    served, base, requests = server
    if served_bytes is not None:
        (served / "set.zip").write_bytes(served_bytes)
    with pytest.raises(DataError, match=message):
        fetch.fetch(manifest_for(tiny_set[1], f"{base}/set.zip", kind, None), tmp_path / "out", insecure=True)
    assert requests == ["/set.zip"] and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".fetch-*"))


def test_archive_that_does_not_match_the_manifest_is_not_installed(tmp_path, server, tiny_set):
    served, base, _ = server
    images, files = tiny_set
    entries = set_entries(images)[1:]  # one image missing upstream
    archive = write_archive(served / "set.tar.gz", "tar.gz", entries)
    with pytest.raises(DataError, match=r"does not match the manifest(.|\n)*1 missing"):
        fetch.fetch(manifest_for(files, f"{base}/set.tar.gz", "tar.gz", sha256_of(archive)), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".fetch-*"))


# Malicious archive rows: (what it tries, kinds it applies to, rows built from tmp_path).
# Each archive also carries one honest file, so a partial unpack would show.
MALICIOUS_ARCHIVES = [
    ("absolute path", fetch.ARCHIVE_KINDS, lambda tmp: [(str(tmp / "escaped.txt"), b"owned", "")]),
    ("dot-dot path", fetch.ARCHIVE_KINDS, lambda tmp: [(f"{ARCHIVE_ROOT}/../../../escaped.txt", b"owned", "")]),
    (
        "symlink escaping",
        fetch.ARCHIVE_KINDS,
        lambda tmp: [
            (f"{ARCHIVE_ROOT}/a/link", None, "../../../../.."),
            (f"{ARCHIVE_ROOT}/a/link/escaped.txt", b"owned", ""),
        ],
    ),
    ("absolute symlink", fetch.ARCHIVE_KINDS, lambda tmp: [(f"{ARCHIVE_ROOT}/a/link", None, str(tmp))]),
    ("hard link escaping", ("tar.gz",), lambda tmp: [(f"{ARCHIVE_ROOT}/a/hard", None, "hard:../../escaped.txt")]),
]


@pytest.mark.parametrize(
    "label, kind, make_rows",
    [
        pytest.param(label, kind, make_rows, id=f"{kind}-{label}")
        for label, kinds, make_rows in MALICIOUS_ARCHIVES
        for kind in kinds
    ],
)
def test_malicious_archives_are_refused_with_nothing_written_outside(
    tmp_path, server, tiny_set, label, kind, make_rows
):
    served, base, _ = server
    _, files = tiny_set
    entries = [(f"{ARCHIVE_ROOT}/a/ok.txt", b"fine", ""), *make_rows(tmp_path)]
    archive = write_archive(served / f"evil.{kind}", kind, entries)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=r"Refusing to unpack .*Nothing was unpacked"):
        fetch.fetch(manifest_for(files, f"{base}/evil.{kind}", kind, sha256_of(archive)), tmp_path / "out")
    assert snapshot(tmp_path) == before, label


@pytest.mark.parametrize(
    "member, kind, reason",
    [
        (fetch.ArchiveMember("a/b.png", "file"), "tar.gz", None),
        (fetch.ArchiveMember("a/../b.png", "file"), "zip", None),
        (fetch.ArchiveMember("a/../../b.png", "file"), "zip", "leaves the folder"),
        (fetch.ArchiveMember("..\\b.png", "file"), "zip", "leaves the folder"),
        (fetch.ArchiveMember("C:/b.png", "file"), "zip", "absolute"),
        (fetch.ArchiveMember("a/link", "symlink", "../b.png"), "tar.gz", None),
        (fetch.ArchiveMember("a/link", "symlink", "../../b.png"), "tar.gz", "outside the folder"),
        (fetch.ArchiveMember("a/link", "symlink", "b.png"), "zip", "cannot be restored"),
        (fetch.ArchiveMember("a/dev", "other"), "tar.gz", "device"),
    ],
)
def test_unsafe_reason_table(member, kind, reason):
    found = fetch.unsafe_reason(member, kind)
    assert found is None if reason is None else reason in found


def test_folder_with_other_files_is_never_written(tmp_path, server, tiny_set):
    served, base, requests = server
    images, files = tiny_set
    write_archive(served / "set.zip", "zip", set_entries(images))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="do not match the manifest tiny; fetch never writes"):
        fetch.fetch(manifest_for(files, f"{base}/set.zip", "zip", None), out, insecure=True)
    assert snapshot(out) == {"mine.txt"} and not requests


@pytest.mark.parametrize(
    "download, message",
    [
        (None, "cannot be downloaded automatically: serve it from the test"),
        ({"url": "file:///etc/passwd", "archive": "zip"}, "must be an http or https URL"),
        ({"url": "https://example.org/x.rar", "archive": "rar"}, "archive must be one of"),
        ({"url": "https://example.org/x.zip", "archive": "zip", "sha256": "abc"}, "64 hexadecimal digits"),
        ({"url": "https://example.org/x.zip", "archive": "zip", "sha256": "0" * 64, "subdir": "../up"}, "leaves"),
        ({"url": "https://example.org/x.zip", "archive": "zip", "sha256": "0" * 64, "max_files": 0}, "max_files"),
    ],
)
def test_download_section_is_checked_before_any_traffic(tiny_set, download, message):
    manifest = manifest_for(tiny_set[1], "unused", "zip", None)
    manifest["download"] = download
    with pytest.raises(DataError, match=message):
        fetch.download_spec(manifest)


def test_cli_fetch_then_refetch_and_manual_data_set(tmp_path, server, tiny_set, capsys):
    served, base, _ = server
    images, files = tiny_set
    archive = write_archive(served / "set.tar.gz", "tar.gz", set_entries(images))
    manifest_file = tmp_path / "tiny.yaml"
    manifest_file.write_text(yaml.safe_dump(manifest_for(files, f"{base}/set.tar.gz", "tar.gz", sha256_of(archive))))
    out = tmp_path / "fetched"
    assert cli.main(["data", "fetch", str(manifest_file), "--out", str(out), "--no-progress"]) == 0
    assert "SHA-256 matched the manifest" in capsys.readouterr().out
    assert cli.main(["data", "fetch", str(manifest_file), "--out", str(out), "--no-progress"]) == 0
    assert "already verifies" in capsys.readouterr().out

    # IQ-OTH/NCCD needs a login-free but manual download: fetch says how, once, and exits 2.
    assert cli.main(["data", "fetch", "iqothnccd", "--out", str(tmp_path / "iq")]) == 2
    err = capsys.readouterr().err
    assert "cannot be downloaded automatically" in err and "Traceback" not in err
    assert load_manifest("iqothnccd")["source"]["how_to_obtain"][:40] in err


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_above_the_unpack_limits_is_refused_before_anything_is_unpacked(tmp_path, tiny_set, kind):
    archive = write_archive(tmp_path / f"set.{kind}", kind, set_entries(tiny_set[0]))
    total = sum(len(content) for _, content, _ in set_entries(tiny_set[0]))
    with pytest.raises(DataError, match="above the limits"):
        fetch.safe_extract(archive, kind, tmp_path / "by_bytes", max_unpacked_bytes=total - 1)
    with pytest.raises(DataError, match="above the limits"):
        fetch.safe_extract(archive, kind, tmp_path / "by_files", max_files=1)
    assert not (tmp_path / "by_bytes").exists() and not (tmp_path / "by_files").exists()
    assert fetch.safe_extract(archive, kind, tmp_path / "fits", max_unpacked_bytes=total).is_dir()


def test_a_damaged_member_fails_as_one_clear_error_and_nothing_is_kept(tmp_path, tiny_set):
    archive = write_archive(tmp_path / "set.zip", "zip", set_entries(tiny_set[0]))
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as bundle:
        first = bundle.infolist()[0]
        start = first.header_offset + 30 + len(first.filename.encode()) + len(first.extra)
    data[start] ^= 0xFF  # one flipped byte of stored data: the CRC no longer matches
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match="unpacking failed .*CRC"):
        fetch.safe_extract(archive, "zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()
