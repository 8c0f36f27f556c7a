"""Bad inputs through the real ``camstudy`` command: one clear line, the right exit status, no traceback.

Every row of :data:`CASES` is a bad input a user can hand the study. The
module fixture :func:`ran` makes all of them in one temporary workspace (image
files, class folders, manifests, archives served from a local HTTP server, a
tiny saved 2D run and a tiny 3D run) and runs each command as a user types it,
``python -m common ...`` in a subprocess whose working folder is the workspace
and whose ``CAMSTUDY_HOME`` is a folder of it (logs and results land there).
The commands run two at a time (the machine's two cores); ``camstudy predict``
reports each bad input in a line of its own, so its bad inputs go in one call
per run and each row checks its own line.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pydicom.uid import JPEGLSLossless

from common import cli
from common.data.manifest import checksum_listing
from tests.conftest import tiny_manifest, write_class_folders
from tests.data.test_dicom import FILE_ORDER, SLICE_HU, SLICE_Z, write_compressed_slice, write_series
from tests.data.test_fetch import ARCHIVE_ROOT, set_entries, sha256_of, write_archive
from tests.predict.helpers import VOLUME_EXPERIMENT

ERROR = "camstudy: error: "
# argparse's own errors name the (sub)command: "camstudy: error: ..." or "camstudy data verify: error: ...".
USAGE_ERROR = re.compile(r"^camstudy( [a-z]+)*: error: ")
EXIT_USER, EXIT_REPORT, EXIT_PARTIAL = cli.EXIT_USER_ERROR, 1, cli.EXIT_FAILURE

TINY_2D = "resnet50-gradcam"  # the experiment id of tests.predict.helpers.save_tiny_run
PREDICT_2D_INPUTS = (
    "img/zero.png",
    "img/truncated.png",
    "img/truncated.jpg",
    "img/text.png",
    "img/text.jpg",
    "img/text.dcm",
    "img/jpeg_ls.dcm",
    "img/huge.png",
    "img/frames.tif",
    "img/frames.gif",
    "img/notes.txt",
    "img/scan.bmp",
    "img/gone.png",
    "img/a_folder",
    "img/cmyk.jpg",
    "img/deep.png",
    "img/palette.png",
    "img/alpha.png",
)
PREDICT_3D_INPUTS = (
    "dcm/with_notes",
    "dcm/two_sizes",
    "dcm/empty_series",
    "dcm/one_slice.dcm",
    "dcm/jpeg_ls_series",
    "dcm/gone",
)


def _predict(experiment: str, inputs: tuple[str, ...], *options: str) -> tuple[str, ...]:
    results = "tiny/results" if experiment == TINY_2D else "tiny3d/results"
    return ("predict", *inputs, "--experiment", experiment, "--results-dir", results, "--no-progress", *options)


# Command key -> argv (paths relative to the workspace, the command's working folder).
COMMANDS: dict[str, tuple[str, ...]] = {
    "predict-2d": _predict(TINY_2D, PREDICT_2D_INPUTS, "--out", "pred2d"),
    "predict-3d": _predict(VOLUME_EXPERIMENT, PREDICT_3D_INPUTS, "--out", "pred3d"),
    "model-junk-keras": _predict(TINY_2D, ("img/ok.png",), "--model", "models/junk.keras"),
    "model-junk-h5": _predict(TINY_2D, ("img/ok.png",), "--model", "models/junk.h5"),
    "model-zip-no-config": _predict(TINY_2D, ("img/ok.png",), "--model", "models/no_config.keras"),
    "model-lambda": _predict(TINY_2D, ("img/ok.png",), "--model", "models/lambda.keras"),
    "model-missing": _predict(TINY_2D, ("img/ok.png",), "--model", "models/gone.keras"),
    # class folders (camstudy audit reads them, skipping unreadable files)
    "audit-missing-dir": ("audit", "sets/nowhere", "--no-progress"),
    "audit-file-as-dir": ("audit", "a_file", "--no-progress"),
    "audit-no-class-folders": ("audit", "sets/no_class_folders", "--no-progress"),
    "audit-no-images": ("audit", "sets/no_images/images", "--no-progress"),
    "audit-empty-class": ("audit", "sets/empty_class/images", "--no-progress"),
    "audit-single-class": ("audit", "sets/single/images", "--no-progress"),
    "audit-only-bad-files": ("audit", "sets/only_bad/images", "--no-progress"),
    "audit-folder-not-in-label-map": ("audit", "sets/copy_ok/images", "--label-map", "manifests/one_label.yaml"),
    "audit-label-without-folder": ("audit", "sets/copy_ok/images", "--label-map", "manifests/three_labels.yaml"),
    "audit-missing-label-map": ("audit", "sets/copy_ok/images", "--label-map", "manifests/gone.yaml"),
    "audit-too-few-for-splits": ("audit", "sets/too_few/images", "--no-progress", "--out", "audit_out"),
    "audit-bad-threshold": ("audit", "sets/copy_ok/images", "--threshold", "2"),
    "audit-bad-max-hamming": ("audit", "sets/copy_ok/images", "--max-hamming", "-5"),
    "audit-threshold-not-a-number": ("audit", "sets/copy_ok/images", "--threshold", "high"),
    # camstudy run: refused before a notebook kernel starts
    "run-unknown-experiment": ("run", "nope"),
    "run-unknown-profile": ("run", "iqoth", "--profile", "fast"),
    "run-unknown-parameter": ("run", "iqoth", "--profile", "smoke", "-p", "no_such_parameter=3"),
    "run-wrong-type": ("run", "iqoth", "--profile", "smoke", "-p", "epochs=abc"),
    "run-batch-size-zero": ("run", "iqoth", "--profile", "smoke", "-p", "batch_size=0"),
    "run-unknown-cam-method": ("run", "iqoth", "--profile", "smoke", "-p", "cam_methods=[gradcam, lime]"),
    "run-negative-image-size": ("run", "nine-models", "--profile", "smoke", "-p", "image_size=-5"),
    "run-split-fractions-two": ("run", "iqoth", "--profile", "smoke", "-p", "split_fractions=[0.8, 0.2]"),
    "run-window-negative-width": ("run", "gradcam-3d", "--profile", "smoke", "-p", "window=[-600, -1]"),
    "phantoms-unknown-kind": ("data", "phantoms", "chest_volume"),
    "run-malformed-p": ("run", "iqoth", "-p", "epochs"),
    "run-missing-data-dir": ("run", "iqoth", "--profile", "smoke", "--data-dir", "sets/nowhere"),
    "run-data-dir-is-a-file": ("run", "iqoth", "--profile", "smoke", "--data-dir", "a_file"),
    "run-results-dir-is-a-file": ("run", "multi-organ", "--profile", "smoke", "--results-dir", "a_file"),
    "run-jobs-not-a-number": ("run", "all", "--jobs", "many"),
    "run-jobs-zero": ("run", "all", "--profile", "smoke", "--jobs", "0"),
    # argparse
    "unknown-subcommand": ("trian", "iqoth"),
    "unknown-option": ("audit", "sets/copy_ok/images", "--fast"),
    "missing-required-option": ("data", "verify", "iqothnccd"),
    # manifests: camstudy data verify
    "verify-missing-manifest": ("data", "verify", "no-such-manifest", "--data-dir", "."),
    "verify-broken-yaml": ("data", "verify", "manifests/broken.yaml", "--data-dir", "."),
    "verify-not-a-mapping": ("data", "verify", "manifests/a_list.yaml", "--data-dir", "."),
    "verify-missing-fields": ("data", "verify", "manifests/missing_fields.yaml", "--data-dir", "."),
    "verify-source-without-how-to": ("data", "verify", "manifests/no_how_to.yaml", "--data-dir", "."),
    "verify-bad-count-unit": ("data", "verify", "manifests/count_unit.yaml", "--data-dir", "."),
    "verify-non-numeric-counts": ("data", "verify", "manifests/many.yaml", "--data-dir", "."),
    "verify-label-map-mismatch": ("data", "verify", "manifests/label_mismatch.yaml", "--data-dir", "."),
    "verify-missing-data-dir": ("data", "verify", "iqothnccd", "--data-dir", "sets/nowhere"),
    "verify-differs": ("data", "verify", "manifests/tiny.yaml", "--data-dir", "sets/changed/images"),
    # downloads: camstudy data fetch (served from 127.0.0.1)
    "fetch-no-download": ("data", "fetch", "manifests/tiny.yaml", "--out", "fetched/a"),
    "fetch-no-sha256": ("data", "fetch", "manifests/no_sha.yaml", "--out", "fetched/b", "--no-progress"),
    "fetch-bad-sha256": ("data", "fetch", "manifests/short_sha.yaml", "--out", "fetched/c"),
    "fetch-subdir-escapes": ("data", "fetch", "manifests/subdir_up.yaml", "--out", "fetched/d"),
    "fetch-file-url": ("data", "fetch", "manifests/file_url.yaml", "--out", "fetched/e"),
    "fetch-rar": ("data", "fetch", "manifests/rar.yaml", "--out", "fetched/f"),
    "fetch-wrong-checksum": ("data", "fetch", "manifests/wrong_sha.yaml", "--out", "fetched/g", "--no-progress"),
    "fetch-404": ("data", "fetch", "manifests/not_served.yaml", "--out", "fetched/h", "--no-progress", "--insecure"),
    "fetch-html-as-zip": ("data", "fetch", "manifests/html.yaml", "--out", "fetched/i", "--no-progress", "--insecure"),
    "fetch-dot-dot": ("data", "fetch", "manifests/dot_dot.yaml", "--out", "fetched/j", "--no-progress"),
    "fetch-absolute-path": ("data", "fetch", "manifests/absolute.yaml", "--out", "fetched/m", "--no-progress"),
    "fetch-escaping-link": ("data", "fetch", "manifests/link.yaml", "--out", "fetched/n", "--no-progress"),
    "fetch-max-files": ("data", "fetch", "manifests/max_files.yaml", "--out", "fetched/k", "--no-progress"),
    "fetch-out-holds-files": ("data", "fetch", "manifests/good.yaml", "--out", "a_folder_of_mine", "--no-progress"),
    "fetch-differs": ("data", "fetch", "manifests/one_missing.yaml", "--out", "fetched/l", "--no-progress"),
}
TENSORFLOW_COMMANDS = {key for key, argv in COMMANDS.items() if argv[0] == "predict"}


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        input: The bad input, in a user's words.
        command: Key of :data:`COMMANDS` that hands it to ``camstudy``.
        status: The exit status expected.
        phrase: Text of the input's own line (stdout for a report, a ``loads`` row's file name).
        kind: ``error`` (a ``camstudy: error:`` line), ``usage`` (argparse's error line),
            ``report`` (exit 1 with a printed report, no error line) or ``loads``
            (an unusual but valid input among bad ones: predicted, no error line).
        defect: A known defect of the command with this input (the row is a strict xfail;
            see /work/notes/badinputs-requests.md).
    """

    input: str
    command: str
    status: int
    phrase: str
    kind: str = "error"
    defect: str | None = None


# camstudy predict reports each bad input and predicts the others: exit 1, some inputs failed.
def _p2(name: str, phrase: str, kind: str = "error") -> Case:
    return Case(name, "predict-2d", EXIT_PARTIAL, phrase, kind)


def _p3(name: str, phrase: str) -> Case:
    return Case(name, "predict-3d", EXIT_PARTIAL, phrase)


CASES = [
    # --- images: camstudy predict with a tiny saved 2D run ---
    _p2("zero-byte PNG", "zero.png: the file is empty (0 bytes)"),
    _p2("truncated PNG", "truncated.png: not a readable image"),
    _p2("truncated JPEG", "truncated.jpg: not a readable image"),
    _p2("text file named .png", "text.png: not a readable image"),
    _p2("text file named .jpg", "text.jpg: not a readable image"),
    _p2("text file named .dcm", "text.dcm: not a readable image (not a DICOM file"),
    _p2(
        "JPEG-LS compressed DICOM, no JPEG-LS decoder installed",
        "jpeg_ls.dcm: not a readable image (the pixel data is compressed as JPEG-LS Lossless Image Compression "
        "(transfer syntax 1.2.840.10008.1.2.4.80) and no decoder for it is installed; install one "
        "('pip install pylibjpeg pylibjpeg-libjpeg' or 'pip install pyjpegls' or 'pip install python-gdcm')",
    ),
    _p2("13000 x 13000 PNG above the pixel limit", "huge.png: the image is 13000 x 13000 = 169,000,000 pixels"),
    _p2("multi-frame TIFF", "frames.tif: has 3 frames; only single-slice images"),
    _p2("multi-frame GIF (GIF is not a supported suffix)", "frames.gif: unknown image suffix '.gif'"),
    _p2("unknown suffix .txt", "notes.txt: unknown image suffix '.txt'"),
    _p2("text file named .bmp", "scan.bmp: not a readable image"),
    _p2("image that does not exist", "gone.png: not found; check the path"),
    _p2("a folder given to a 2D model", "a_folder: is a folder; the resnet50-gradcam model takes single image files"),
    _p2("CMYK JPEG (loads)", "cmyk.jpg", "loads"),
    _p2("16-bit PNG (loads)", "deep.png", "loads"),
    _p2("palette PNG (loads)", "palette.png", "loads"),
    _p2("RGBA PNG (loads, alpha dropped)", "alpha.png", "loads"),
    # --- DICOM series: camstudy predict with a tiny saved 3D run ---
    _p3("series with a text file among the slices", "notes.txt: not a DICOM file"),
    _p3("series with two slice sizes", "two_sizes: slices of different shapes (rows x columns): 8x6"),
    _p3("empty series folder", "empty_series: no files; expected the DICOM slices of one series"),
    _p3("one slice file given to a volume model", "one_slice.dcm: the gradcam-3d model takes a DICOM series"),
    _p3(
        "series of JPEG-LS compressed slices, no decoder installed",
        "only.dcm: the pixel data is compressed as JPEG-LS Lossless Image Compression "
        "(transfer syntax 1.2.840.10008.1.2.4.80) and no decoder for it is installed",
    ),
    _p3("series folder that does not exist", "dcm/gone: not found"),
    # --- models: camstudy predict --model ---
    Case("text file named .keras", "model-junk-keras", EXIT_USER, "junk.keras: not a readable Keras model"),
    Case(
        "text file named .h5",
        "model-junk-h5",
        EXIT_USER,
        "junk.h5: not a readable Keras model",
    ),
    Case(
        "zip without config.json named .keras",
        "model-zip-no-config",
        EXIT_USER,
        "no_config.keras: not a readable",
    ),
    Case(".keras model with a Lambda layer", "model-lambda", EXIT_USER, "lambda.keras: it contains a Lambda layer"),
    Case("model file that does not exist", "model-missing", EXIT_USER, "gone.keras: no saved model"),
    # --- class folders: camstudy audit ---
    Case("data dir that does not exist", "audit-missing-dir", EXIT_USER, "sets/nowhere does not exist"),
    Case("data dir that is a file", "audit-file-as-dir", EXIT_USER, "a_file does not exist"),
    Case("folder without class folders", "audit-no-class-folders", EXIT_USER, "no_class_folders has no class sub"),
    Case("class folders of no images", "audit-no-images", EXIT_USER, "no_images/images/a holds no images"),
    Case("empty class folder", "audit-empty-class", EXIT_USER, "empty_class/images/b holds no images"),
    Case("single-class data set", "audit-single-class", EXIT_USER, "only one class ('a') found"),
    Case(
        "class folder whose every image is unreadable",
        "audit-only-bad-files",
        EXIT_USER,
        "only_bad/images/b: none of its 2 images could be read",
    ),
    Case(
        "class folder not in the label map",
        "audit-folder-not-in-label-map",
        EXIT_USER,
        "copy_ok/images: class folder(s) ['b'] are not in the label map",
    ),
    Case("label without a class folder", "audit-label-without-folder", EXIT_USER, "no class folder for label 'c'"),
    Case("--label-map manifest that does not exist", "audit-missing-label-map", EXIT_USER, "manifests/gone.yaml"),
    Case("fewer images of a class than splits", "audit-too-few-for-splits", EXIT_USER, "fewer than the 3 splits"),
    Case("--threshold 2", "audit-bad-threshold", EXIT_USER, "threshold must be a cosine similarity in (0, 1]"),
    Case("--max-hamming -5", "audit-bad-max-hamming", EXIT_USER, "max_hamming must be an integer >= -1"),
    Case("--threshold high", "audit-threshold-not-a-number", EXIT_USER, "invalid float value: 'high'", "usage"),
    # --- experiments and parameters: camstudy run, before any kernel ---
    Case("unknown experiment id", "run-unknown-experiment", EXIT_USER, "Unknown experiment 'nope'"),
    Case("unknown profile", "run-unknown-profile", EXIT_USER, "invalid choice: 'fast'", "usage"),
    Case("unknown parameter", "run-unknown-parameter", EXIT_USER, "Unknown parameter 'no_such_parameter' for iqoth"),
    Case("-p epochs=abc", "run-wrong-type", EXIT_USER, "Parameter 'epochs' expects an integer"),
    Case("-p batch_size=0", "run-batch-size-zero", EXIT_USER, "'batch_size' must be an integer from 1 to 4096; got 0"),
    Case("-p cam_methods with lime", "run-unknown-cam-method", EXIT_USER, "each one of gradcam, gradcam++, scorecam"),
    Case("-p image_size=-5", "run-negative-image-size", EXIT_USER, "'image_size' must be an integer from 32 to 1024"),
    Case("-p split_fractions of two", "run-split-fractions-two", EXIT_USER, "'split_fractions' must be a list of 3"),
    Case("-p window with a negative width", "run-window-negative-width", EXIT_USER, "item 2 greater than 0"),
    Case("data phantoms with a wrong kind", "phantoms-unknown-kind", EXIT_USER, "Unknown phantom kind 'chest_volume'"),
    Case("-p without =", "run-malformed-p", EXIT_USER, "Parameter 'epochs' is not of the form name=value"),
    Case("run --data-dir that does not exist", "run-missing-data-dir", EXIT_USER, "sets/nowhere does not exist"),
    Case("run --data-dir that is a file", "run-data-dir-is-a-file", EXIT_USER, "a_file does not exist"),
    Case("--results-dir naming a file", "run-results-dir-is-a-file", EXIT_USER, "a_file: File exists"),
    Case("--jobs many", "run-jobs-not-a-number", EXIT_USER, "invalid int value: 'many'", "usage"),
    Case("--jobs 0", "run-jobs-zero", EXIT_USER, "jobs=0 must be at least 1"),
    # --- argparse ---
    Case("unknown subcommand", "unknown-subcommand", EXIT_USER, "invalid choice: 'trian'", "usage"),
    Case("unknown option", "unknown-option", EXIT_USER, "unrecognized arguments: --fast", "usage"),
    Case("missing required option", "missing-required-option", EXIT_USER, "required: --data-dir", "usage"),
    # --- manifests: camstudy data verify ---
    Case("manifest that does not exist", "verify-missing-manifest", EXIT_USER, "No data manifest 'no-such-manifest'"),
    Case("broken YAML", "verify-broken-yaml", EXIT_USER, "broken.yaml is not valid YAML at line 2"),
    Case("manifest that is a YAML list", "verify-not-a-mapping", EXIT_USER, "a_list.yaml is not a YAML mapping"),
    Case("manifest missing fields", "verify-missing-fields", EXIT_USER, "missing_fields.yaml lacks the field(s)"),
    Case("source without how_to_obtain", "verify-source-without-how-to", EXIT_USER, "source lacks 'how_to_obtain'"),
    Case("bad count_unit", "verify-bad-count-unit", EXIT_USER, "count_unit.yaml: count_unit must be one of"),
    Case("non-numeric expected_counts", "verify-non-numeric-counts", EXIT_USER, "expected_counts must be whole"),
    Case("label map mismatch", "verify-label-map-mismatch", EXIT_USER, "expected_counts names folders ['c']"),
    Case("verify --data-dir that does not exist", "verify-missing-data-dir", EXIT_USER, "How to obtain it"),
    Case(
        "local copy with a changed, a missing and an extra file", "verify-differs", EXIT_REPORT, "1 changed", "report"
    ),
    # --- downloads: camstudy data fetch ---
    Case("data set without a download section", "fetch-no-download", EXIT_USER, "cannot be downloaded automatically"),
    Case("download without sha256, no --insecure", "fetch-no-sha256", EXIT_USER, "has no sha256"),
    Case("sha256 that is not 64 hex digits", "fetch-bad-sha256", EXIT_USER, "sha256 must be 64 hexadecimal digits"),
    Case("subdir escaping the archive", "fetch-subdir-escapes", EXIT_USER, "subdir '../up' leaves the unpacked"),
    Case("file:// URL", "fetch-file-url", EXIT_USER, "'file:///etc/passwd' must be an http or https URL"),
    Case("unknown archive kind", "fetch-rar", EXIT_USER, "archive must be one of"),
    Case("download with a wrong checksum", "fetch-wrong-checksum", EXIT_USER, "SHA-256 of the download is"),
    Case("URL that answers 404", "fetch-404", EXIT_USER, "not_there.zip: HTTP Error 404"),
    Case("HTML page served as a zip", "fetch-html-as-zip", EXIT_USER, "not a readable zip archive"),
    Case("archive with '..' entries", "fetch-dot-dot", EXIT_USER, "../escaped.txt' (its path is absolute or leaves"),
    Case(
        "archive with an absolute path entry", "fetch-absolute-path", EXIT_USER, "/escaped.txt' (its path is absolute"
    ),
    Case(
        "tar.gz with a symbolic link leaving it",
        "fetch-escaping-link",
        EXIT_USER,
        "a symbolic link to '../../../../..', outside",
    ),
    Case("archive above max_files", "fetch-max-files", EXIT_USER, "above the limits of 2 entries"),
    Case("--out folder holding other files", "fetch-out-holds-files", EXIT_USER, "fetch never writes"),
    Case(
        "archive that differs from the manifest",
        "fetch-differs",
        EXIT_USER,
        "does not match the manifest",
    ),
]


# --- the workspace ----------------------------------------------------------------


def _write_images(img: Path) -> None:
    img.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(img / "ok.png")
    (img / "zero.png").write_bytes(b"")
    Image.fromarray(rgb).save(img / "full.png")
    Image.fromarray(rgb).save(img / "full.jpg")
    (img / "truncated.png").write_bytes((img / "full.png").read_bytes()[:200])
    (img / "truncated.jpg").write_bytes((img / "full.jpg").read_bytes()[:300])
    for name in ("text.png", "text.jpg", "text.dcm", "notes.txt", "scan.bmp"):
        (img / name).write_text("exported notes, not an image\n")
    Image.new("L", (13000, 13000)).save(img / "huge.png")  # a few hundred KB on disk, 169 M pixels
    frames = [Image.fromarray(rgb[..., i]) for i in range(3)]
    frames[0].save(img / "frames.tif", save_all=True, append_images=frames[1:])
    frames[0].save(img / "frames.gif", save_all=True, append_images=frames[1:2])
    (img / "a_folder").mkdir()
    Image.fromarray(rgb).convert("CMYK").save(img / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(img / "deep.png")
    Image.fromarray(rgb).convert("P").save(img / "palette.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(img / "alpha.png")
    # JPEG-LS: a syntax whose decoders the project does not install (the bytes are never decoded).
    write_compressed_slice(img / "jpeg_ls.dcm", np.zeros((8, 6)), JPEGLSLossless, codestream=b"\xff\xd8" * 8)


def _write_class_folder_sets(sets: Path) -> None:
    (sets / "no_class_folders").mkdir(parents=True)
    (sets / "no_class_folders" / "README.txt").write_text("class folders go here")
    for name in ("a", "b"):
        (sets / "no_images" / "images" / name).mkdir(parents=True)
        (sets / "no_images" / "images" / name / "notes.txt").write_text("no images")
    write_class_folders(sets / "empty_class", {"a": 2})
    (sets / "empty_class" / "images" / "b").mkdir()
    write_class_folders(sets / "single", {"a": 3})
    only_bad = write_class_folders(sets / "only_bad", {"a": 3})
    (only_bad / "b").mkdir()
    (only_bad / "b" / "empty.png").write_bytes(b"")
    (only_bad / "b" / "text.jpg").write_text("not an image")
    write_class_folders(sets / "too_few", {"a": 8, "b": 2})
    write_class_folders(sets / "copy_ok", {"a": 2, "b": 2})
    changed = write_class_folders(sets / "changed", {"a": 2, "b": 2})
    (changed / "a" / "a_000.png").write_bytes((changed / "b" / "b_000.png").read_bytes())
    (changed / "b" / "b_001.png").unlink()
    (changed / "b" / "b_009.png").write_bytes((changed / "a" / "a_001.png").read_bytes())


def _download(url: str, sha256: str | None, **extra) -> dict:
    spec = {"url": url, "archive": "zip", "subdir": ARCHIVE_ROOT, **extra}
    if sha256 is not None:
        spec["sha256"] = sha256
    return spec


def _write_manifests(folder: Path, sets: Path, served: Path, base: str) -> None:
    folder.mkdir()
    copy_ok = sets / "copy_ok" / "images"
    files = checksum_listing(copy_ok)
    (folder / "broken.yaml").write_text("name: x\n  bad: [\n")
    (folder / "a_list.yaml").write_text("- name\n- citation\n")

    def dump(name: str, manifest: dict) -> None:
        (folder / name).write_text(yaml.safe_dump(manifest))

    dump("tiny.yaml", tiny_manifest(files))
    dump("missing_fields.yaml", {"name": "x", "citation": "c"})
    dump("no_how_to.yaml", tiny_manifest(files, source={"url": None}))
    dump("count_unit.yaml", tiny_manifest(files, count_unit="slices"))
    dump("many.yaml", tiny_manifest(files, expected_counts={"a": "many", "b": 2}))
    dump("label_mismatch.yaml", tiny_manifest(files, expected_counts={"a": 2, "b": 2, "c": 1}))
    dump("one_label.yaml", tiny_manifest(files, label_map={"a": "a"}, expected_counts={"a": 2}))
    dump("three_labels.yaml", tiny_manifest(files, label_map={"a": "a", "b": "b", "c": "c"}))

    entries = set_entries(copy_ok)
    good = write_archive(served / "good.zip", "zip", entries)
    short = write_archive(served / "short.zip", "zip", entries[1:])
    evil = write_archive(served / "evil.zip", "zip", [*entries, (f"{ARCHIVE_ROOT}/../../../escaped.txt", b"owned", "")])
    absolute = write_archive(served / "absolute.zip", "zip", [*entries, (f"{served}/escaped.txt", b"owned", "")])
    link = write_archive(
        served / "link.tar.gz",
        "tar.gz",
        [
            *entries,
            (f"{ARCHIVE_ROOT}/a/link", None, "../../../../.."),
            (f"{ARCHIVE_ROOT}/a/link/escaped.txt", b"x", ""),
        ],
    )
    (served / "login.zip").write_text("<html>login page</html>")
    downloads = {
        "good.yaml": _download(f"{base}/good.zip", sha256_of(good)),
        "no_sha.yaml": _download(f"{base}/good.zip", None),
        "short_sha.yaml": _download(f"{base}/good.zip", "abc"),
        "subdir_up.yaml": _download(f"{base}/good.zip", sha256_of(good), subdir="../up"),
        "file_url.yaml": _download("file:///etc/passwd", "0" * 64),
        "rar.yaml": _download(f"{base}/good.rar", "0" * 64, archive="rar"),
        "wrong_sha.yaml": _download(f"{base}/good.zip", "0" * 64),
        "not_served.yaml": _download(f"{base}/not_there.zip", None),
        "html.yaml": _download(f"{base}/login.zip", None),
        "dot_dot.yaml": _download(f"{base}/evil.zip", sha256_of(evil)),
        "absolute.yaml": _download(f"{base}/absolute.zip", sha256_of(absolute)),
        "link.yaml": _download(f"{base}/link.tar.gz", sha256_of(link), archive="tar.gz"),
        "max_files.yaml": _download(f"{base}/good.zip", sha256_of(good), max_files=2),
        "one_missing.yaml": _download(f"{base}/short.zip", sha256_of(short)),
    }
    for name, download in downloads.items():
        dump(name, tiny_manifest(files, download=download))


def _write_series(dcm: Path) -> None:
    with_notes = write_series(dcm / "with_notes")
    (with_notes / "notes.txt").write_text("plain text notes\n")
    write_series(dcm / "two_sizes", positions=SLICE_Z[:3], hu=SLICE_HU[:3], shapes=[(8, 6), (8, 6), (6, 6)])
    (dcm / "empty_series").mkdir()
    one = write_series(dcm / "one_series", positions=SLICE_Z[:1], hu=SLICE_HU[:1])
    (one / f"10_{FILE_ORDER[0]}0.dcm").rename(dcm / "one_slice.dcm")
    (dcm / "jpeg_ls_series").mkdir()
    write_compressed_slice(
        dcm / "jpeg_ls_series" / "only.dcm", np.zeros((8, 6)), JPEGLSLossless, codestream=b"\xff\xd8" * 8
    )


def _save_models(work: Path) -> None:
    """The tiny 2D run (trained), the tiny 3D run, and the bad model files."""
    import keras

    from tests.predict.helpers import save_tiny_run, save_tiny_volume_run

    save_tiny_run(work / "tiny")
    save_tiny_volume_run(work / "tiny3d")

    bad = work / "models"
    bad.mkdir()
    (bad / "junk.keras").write_text("not a model")
    (bad / "junk.h5").write_text("not a model either")
    with zipfile.ZipFile(bad / "no_config.keras", "w") as bundle:
        bundle.writestr("metadata.json", '{"keras_version": "3"}')
        bundle.writestr("model.weights.h5", b"")
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t + 1.0)(inputs)).save(bad / "lambda.keras")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """Serve a temporary folder on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


def _camstudy(argv: tuple[str, ...], work: Path) -> subprocess.CompletedProcess:
    """The real command in a subprocess, as a user types it in ``work``."""
    env = dict(os.environ, CAMSTUDY_HOME=str(work / "home"))
    return subprocess.run(
        [sys.executable, "-m", "common", *argv], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The commands' working folder (``home`` in it is their ``CAMSTUDY_HOME``)."""
    return tmp_path_factory.mktemp("bad_inputs")


@pytest.fixture(scope="module")
def ran(workspace, server) -> Iterator[Callable[[str], subprocess.CompletedProcess]]:
    """Make every bad input, run every command two at a time; yields command key -> finished process."""
    work = workspace
    served, base = server
    (work / "home").mkdir()
    (work / "a_file").write_text("not a folder")
    (work / "a_folder_of_mine").mkdir()
    (work / "a_folder_of_mine" / "mine.txt").write_text("keep me")
    _write_class_folder_sets(work / "sets")
    _write_manifests(work / "manifests", work / "sets", served, base)
    futures: dict[str, Future] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Commands without TensorFlow start at once; the runs and images are made meanwhile.
        for key in sorted(set(COMMANDS) - TENSORFLOW_COMMANDS):
            futures[key] = pool.submit(_camstudy, COMMANDS[key], work)
        _write_images(work / "img")
        _write_series(work / "dcm")
        _save_models(work)
        for key in sorted(TENSORFLOW_COMMANDS):
            futures[key] = pool.submit(_camstudy, COMMANDS[key], work)
        yield lambda key: futures[key].result()


# --- the tests ----------------------------------------------------------------------


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(ERROR)]


def _params(cases: list[Case]) -> list:
    return [
        pytest.param(
            case,
            id=case.input,
            marks=[pytest.mark.xfail(strict=True, reason=case.defect)] if case.defect else [],
        )
        for case in cases
    ]


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_ends_in_one_clear_line(ran, case):
    done = ran(case.command)
    lines = done.stderr.strip().splitlines()
    shown = f"{COMMANDS[case.command]}\nstdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}"
    assert done.returncode == case.status, shown
    assert "Traceback" not in done.stderr, shown
    if case.kind == "report":
        assert case.phrase in done.stdout and not _error_lines(done.stderr), shown
        return
    if case.kind == "loads":  # among bad inputs, still predicted: in the table, no error line
        assert case.phrase in done.stdout, shown
        assert not [line for line in _error_lines(done.stderr) if case.phrase in line], shown
        return
    assert lines, shown
    if case.kind == "usage":
        assert USAGE_ERROR.match(lines[-1]) and case.phrase in lines[-1], shown
        return
    # Nothing else on stderr: no TensorFlow start-up lines, no library warnings.
    assert all(line.startswith("camstudy: ") for line in lines), shown
    if case.command.startswith("predict-"):  # one line per bad input, each its own, then how many failed
        assert [line for line in _error_lines(done.stderr) if case.phrase in line], shown
        assert re.fullmatch(r"camstudy: \d+ of \d+ input\(s\) could not be predicted \(above\)", lines[-1]), shown
    else:
        assert lines[-1].startswith(ERROR), shown
        assert case.phrase in lines[-1] and len(_error_lines(done.stderr)) == 1, shown


def test_predict_goes_on_with_the_good_inputs_and_reports_each_bad_one_once(ran):
    done = ran("predict-2d")
    bad = [case for case in CASES if case.command == "predict-2d" and case.kind == "error"]
    errors = _error_lines(done.stderr)
    assert len(errors) == len(bad), done.stderr[-3000:]
    summary = f"camstudy: {len(bad)} of {len(PREDICT_2D_INPUTS)} input(s) could not be predicted (above)"
    assert done.stderr.strip().splitlines()[-1] == summary
    assert "4 prediction(s) written to pred2d" in done.stdout
    assert "Research use only" in done.stdout


def test_verify_report_names_each_difference(ran):
    out = ran("verify-differs").stdout
    for phrase in ("1 changed", "1 missing", "1 extra", "a/a_000.png", "b/b_001.png", "b/b_009.png"):
        assert phrase in out, out


def test_refused_fetches_wrote_nothing(ran, workspace):
    for key in (key for key in COMMANDS if key.startswith("fetch-")):
        assert ran(key).returncode == EXIT_USER
    fetched = workspace / "fetched"
    assert not fetched.exists() or not list(fetched.iterdir())
    assert [path.name for path in (workspace / "a_folder_of_mine").iterdir()] == ["mine.txt"]
    assert not list(workspace.parent.parent.rglob("escaped.txt"))


def test_every_command_has_a_case():
    assert {case.command for case in CASES} == set(COMMANDS)
    assert len({case.input for case in CASES}) == len(CASES) >= 40
