"""Tests of common.data.phantoms.cache: ensure_phantoms generates once, atomically, and reuses."""

import functools
import json

import pytest

from common.data.phantoms import (
    MARKER_NAME,
    PHANTOM_KINDS,
    PhantomKind,
    ensure_phantoms,
    make_chest_slices,
)
from common.errors import ParameterError


def test_ensure_phantoms_generates_once_and_reuses(tmp_path):
    folder = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    marker = folder / MARKER_NAME
    record = json.loads(marker.read_text())
    assert folder.parent == tmp_path and folder.name.startswith("chest-")
    assert record["kind"] == "chest" and record["parameters"]["size"] == 24
    image = folder / "images/benign/benign_0000.png"
    stamps = (marker.stat().st_mtime_ns, image.stat().st_mtime_ns)
    # Spelling out a default names the same data set.
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, seed=0) == folder
    assert (marker.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps
    assert ensure_phantoms("chest", tmp_path, n_per_class=1, size=24, seed=1) != folder
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ensure_phantoms_redoes_a_folder_without_marker(tmp_path):
    folder = ensure_phantoms("multi_organ", tmp_path, n_per_class=1, size=24)
    (folder / MARKER_NAME).unlink()
    (folder / "images/brain_tumor/brain_tumor_0000.png").unlink()
    assert ensure_phantoms("multi_organ", tmp_path, n_per_class=1, size=24) == folder
    assert (folder / MARKER_NAME).is_file()
    assert (folder / "images/brain_tumor/brain_tumor_0000.png").is_file()


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail_halfway(out_dir, n_per_class, size=128, seed=0):
        make_chest_slices(out_dir, n_per_class, size, seed, classes=("normal",))
        raise KeyboardInterrupt

    monkeypatch.setitem(PHANTOM_KINDS, "chest", PhantomKind(fail_halfway, PHANTOM_KINDS["chest"].scenes))
    with pytest.raises(KeyboardInterrupt):
        ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    assert list(tmp_path.iterdir()) == []


def test_a_set_another_process_finished_meanwhile_is_kept_for_its_readers(tmp_path, monkeypatch):
    # Two runs that need the same set start together: both generate it, the other finishes first and starts
    # reading. The slower one must not replace the finished folder under its reader (a smoke run once failed
    # on a vanished image that way).
    original = PHANTOM_KINDS["chest"].generator
    finished_first = {}

    @functools.wraps(original)  # the same signature, so the same set's folder
    def slower(out_dir, **params):
        monkeypatch.setitem(PHANTOM_KINDS, "chest", PhantomKind(original, PHANTOM_KINDS["chest"].scenes))
        other = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)  # the other process
        finished_first["image"] = other / "images/benign/benign_0000.png"
        finished_first["inode"] = finished_first["image"].stat().st_ino
        original(out_dir, **params)

    monkeypatch.setitem(PHANTOM_KINDS, "chest", PhantomKind(slower, PHANTOM_KINDS["chest"].scenes))
    folder = ensure_phantoms("chest", tmp_path, n_per_class=1, size=24)
    assert finished_first["image"].parent.parent.parent == folder
    assert finished_first["image"].stat().st_ino == finished_first["inode"]  # the same file, never replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no staging folder left


@pytest.mark.parametrize(
    "call",
    [
        lambda root: ensure_phantoms("ct_scans", root),
        lambda root: ensure_phantoms("chest", root, n_per_class=1, colour=True),
    ],
)
def test_bad_parameters_raise_parameter_error(tmp_path, call):
    with pytest.raises(ParameterError):
        call(tmp_path)
