"""Shared fixtures: the real IQ-OTH/NCCD copy (skipped when absent), tiny class-folder sets,
and the session's smoke runs of the experiment notebooks (``smoke_results``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from common.config import registry

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The shared development copy sits next to the repository, never inside it.
IQOTH_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/iqothnccd"


@pytest.fixture(scope="session")
def iqoth_dir() -> Path:
    """Root of the real IQ-OTH/NCCD copy; skips the test when it is not there."""
    if not IQOTH_DIR.is_dir():
        pytest.skip(f"real IQ-OTH/NCCD copy not found at {IQOTH_DIR}")
    return IQOTH_DIR


def write_class_folders(
    root: Path,
    counts: Mapping[str, int],
    size: tuple[int, int] = (24, 20),
    suffix: str = ".png",
    seed: int = 0,
    with_masks: bool = False,
) -> Path:
    """Write a tiny class-folder set of distinct random 8-bit greyscale images.

    Args:
        root: Folder to create; images go to ``root/images/<class>/<class>_<i>.<suffix>``.
        counts: Images per class folder.
        size: ``(width, height)`` of every image.
        suffix: File suffix, which also picks the format.
        seed: Seed of the pixel values.
        with_masks: Also write ``root/masks/<class>/<same stem>.png`` (a square lesion).

    Returns:
        ``root/images``, the folder to load.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    for class_name, count in counts.items():
        (root / "images" / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
            stem = f"{class_name}_{index:03d}"
            Image.fromarray(pixels).save(root / "images" / class_name / f"{stem}{suffix}")
            if with_masks:
                (root / "masks" / class_name).mkdir(parents=True, exist_ok=True)
                mask = np.zeros((height, width), dtype=np.uint8)
                mask[height // 4 : height // 2, width // 4 : width // 2] = 255
                Image.fromarray(mask).save(root / "masks" / class_name / f"{stem}.png")
    return root / "images"


def tiny_manifest(checksums: Mapping[str, str], **fields) -> dict:
    """A manifest of a tiny class-folder set with classes ``a`` and ``b`` (two images each unless ``fields`` say).

    Args:
        checksums: The set's checksum listing (``common.data.manifest.checksum_listing``), or ``{}``.
        **fields: Manifest fields to set or replace (``expected_counts``, ``download``, ...).
    """
    manifest = {
        "name": "tiny",
        "citation": "test fixture",
        "licence": "none",
        "source": {"url": None, "how_to_obtain": "write it with write_class_folders"},
        "label_map": {"a": "a", "b": "b"},
        "expected_counts": {"a": 2, "b": 2},
        "files": dict(checksums),
    }
    manifest.update(fields)
    return manifest


@pytest.fixture
def make_class_folders(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing tiny class-folder sets under ``tmp_path`` (see :func:`write_class_folders`)."""

    def make(counts: Mapping[str, int], name: str = "set", **options) -> Path:
        return write_class_folders(tmp_path / name, counts, **options)

    return make


# --- Smoke runs of the experiment notebooks ---------------------------------
# Every experiment notebook runs once per test session (smoke profile).
#
# Each experiment runs as ``camstudy run ID --profile smoke`` in a process of its
# own, into a temporary results folder, so the tests check the executed notebook,
# ``metrics.json`` and the figures a user would get. A process, not a call in a
# thread of this one, started with the session's first environment: foreground
# tests monkeypatch modules (the registry, the runner) and environment variables,
# and a run started meanwhile would see their patches.
#
# The runs go side by side, ``CAMSTUDY_TEST_JOBS`` at a time (default 2). A
# smoke run is bounded by Python's per-operation overhead, which keeps one core
# busy, so two runs on two cores take little longer than one: all five smoke
# notebooks took 328 s two at a time against 609 s one after another. Tests
# name the runs they read in their marker, ``@pytest.mark.notebook(*ids)``
# (``twice=[...]`` for a second, independent run).
#
# Every named run starts with the session's first test, the longest first, and
# the tests that read runs go last. Meanwhile the other tests run in the
# foreground: most of them keep less than one core busy, and the runs take
# what they leave. The runs' threads (and so their kernels) run at a lower
# priority (``CAMSTUDY_TEST_NICE``, default 10), so the foreground tests, some
# of which time things, hardly feel them.

_PLANNED = pytest.StashKey[tuple]()
# The key of a smoke run on the real IQ-OTH/NCCD copy, and its options: the smoke profile's one epoch over all
# 1097 slices, on the grouped split only (no retraining on the image split) and in batches of 128 instead of 8,
# so the run checks the real-data steps (both audits, the grouped split, the page) in under a minute. An eager
# step at 32 px costs about the same at any of these batch sizes: the epoch took 35 s in batches of 32, 15 s in 128.
REAL_RUN = 0
REAL_RUN_OPTIONS = ("--data-dir", str(IQOTH_DIR), "-p", "split=grouped", "-p", "batch_size=128")
# Options of an experiment's second run, where it differs from the first. nine-models' second run trains two of its
# nine models: each model is seeded afresh, so their numbers must equal the first run's (the determinism test checks
# both that and the rerun), and the run costs a quarter of the first (about 35 s instead of 90 s alone).
# resnet50-gradcam's and gradcam-3d's second runs keep one cheap model of each new kind (a 2D and a 3D row of Table I,
# one 2D slice baseline) and leave out the rest (about 25 s each of the first run's 60 alone): those, ResNet50, the
# plain CNN and the 3D CNN, and what no model changes, are compared.
SECOND_RUN_OPTIONS: dict[str, tuple[str, ...]] = {
    "nine-models": ("-p", "models=[MobileNetV2, ResNet50]"),
    "resnet50-gradcam": ("-p", "table_models=[resnet32, cnn3d]"),
    "gradcam-3d": ("-p", "slice_models=[EfficientNetB0]"),
}
# The environment and working folder the runs start with, taken before any test runs: a foreground
# test's monkeypatch.setenv (CAMSTUDY_HOME, say) or chdir would otherwise reach a run that starts meanwhile.
_SESSION_ENVIRONMENT = dict(os.environ)
_SESSION_FOLDER = os.getcwd()


def reads_background_job(item) -> bool:
    """Whether a test reads a background job (``@pytest.mark.background``): those go last of all."""
    return item.get_closest_marker("background") is not None


def reads_smoke_runs(item) -> bool:
    """Whether a test reads the session's smoke runs (it waits for them), or is marked to run with those."""
    return (
        "smoke_results" in getattr(item, "fixturenames", ())
        or any(
            marker.args or marker.kwargs.get("twice") or marker.kwargs.get("real")
            for marker in item.iter_markers("notebook")
        )
        or item.get_closest_marker("late") is not None
        or reads_background_job(item)
    )


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(config, items):
    """Remember every smoke run the collected tests name, and move the tests that read runs last."""
    once: list[str] = []
    twice: list[str] = []
    real: list[str] = []
    jobs: list[str] = []
    for item in items:
        for marker in item.iter_markers("notebook"):
            once.extend(e for e in marker.args if e not in once)
            twice.extend(e for e in marker.kwargs.get("twice", ()) if e not in twice)
            real.extend(e for e in marker.kwargs.get("real", ()) if e not in real and IQOTH_DIR.is_dir())
        for marker in item.iter_markers("background"):
            jobs.extend(name for name in marker.args if name not in jobs)
    config.stash[_PLANNED] = (once, twice, real, jobs)
    # Stable: each group keeps its order. Tests that read background jobs go last, so the foreground
    # runs the other late tests while the jobs run.
    items.sort(key=lambda item: (reads_smoke_runs(item), reads_background_job(item)))


class SmokeRuns:
    """Smoke runs of the session's experiments, executed in a pool of threads.

    :meth:`start` submits every planned run; call the object with an
    experiment id for the session's run of it (waiting for it), and
    :meth:`second` for an independent second run (its own results folder), and
    :meth:`real` for its run on the real IQ-OTH/NCCD copy (``<root>/real/<id>``,
    as ``camstudy book --real`` lays it out; planned only when the copy is there);
    :meth:`job` for a background job's result (:mod:`tests.background_jobs`).
    Each record holds ``dir`` (results/<id>), ``metrics`` (parsed
    metrics.json), ``seconds`` (wall time of the `camstudy run` process) and
    ``stdout``/``stderr`` (what the command printed).
    """

    def __init__(self, root: Path, planned: tuple[list[str], ...], jobs: int, nice: int = 0):
        self.root = root
        self._planned = planned
        self._pool = ThreadPoolExecutor(
            max_workers=jobs, thread_name_prefix="smoke-run", initializer=_lower_priority, initargs=(nice,)
        )
        self._futures: dict[tuple[str, int], Future] = {}
        self._jobs: dict[str, Future] = {}
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Submit every planned run (once), the longest smoke budget first (nine-models), then the background jobs."""
        with self._lock:
            if self._started:
                return
            self._started = True
            once, twice, real, jobs = self._planned
            order = sorted(once, key=lambda e: -registry.experiment(e).get("budget_s", {}).get("smoke", 0))
            for key in [(e, REAL_RUN) for e in real] + [(e, 1) for e in order] + [(e, 2) for e in twice]:
                self._submit(key)
            for name in jobs:
                self._submit_job(name)

    def job(self, name: str) -> Any:
        """The result of the background job ``name`` (:mod:`tests.background_jobs`), waiting for it."""
        self.start()
        with self._lock:
            future = self._jobs.get(name) or self._submit_job(name)
        return future.result()

    def _submit_job(self, name: str) -> Future:
        from tests.background_jobs import JOBS

        root = self.root.with_name(f"{self.root.name}-{name}")
        root.mkdir()
        self._jobs[name] = self._pool.submit(JOBS[name], root, _SESSION_ENVIRONMENT, _SESSION_FOLDER)
        return self._jobs[name]

    def __call__(self, experiment_id: str) -> dict:
        return self._record(experiment_id, 1)

    def second(self, experiment_id: str) -> dict:
        """A second smoke run of ``experiment_id``, into a folder of its own (with :data:`SECOND_RUN_OPTIONS`)."""
        return self._record(experiment_id, 2)

    def real(self, experiment_id: str) -> dict:
        """The smoke run of ``experiment_id`` on the real IQ-OTH/NCCD copy (see :data:`REAL_RUN_OPTIONS`)."""
        if not IQOTH_DIR.is_dir():
            pytest.skip(f"real IQ-OTH/NCCD copy not found at {IQOTH_DIR}")
        return self._record(experiment_id, REAL_RUN)

    def _record(self, experiment_id: str, run: int) -> dict:
        self.start()
        with self._lock:
            future = self._futures.get((experiment_id, run)) or self._submit((experiment_id, run))
        return future.result()

    def _submit(self, key: tuple[str, int]) -> Future:
        experiment_id, run = key
        if run == REAL_RUN:
            self._futures[key] = self._pool.submit(_smoke_run, experiment_id, self.root / "real", REAL_RUN_OPTIONS)
            return self._futures[key]
        root = self.root if run == 1 else self.root.with_name(f"{self.root.name}-run{run}")
        options = SECOND_RUN_OPTIONS.get(experiment_id, ()) if run == 2 else ()
        self._futures[key] = self._pool.submit(_smoke_run, experiment_id, root, options)
        return self._futures[key]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _lower_priority(nice: int) -> None:
    # On Linux the nice value belongs to the thread, and the kernels it starts inherit it.
    if nice and hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _smoke_run(experiment_id: str, root: Path, options: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "common", "run", experiment_id, "--profile", "smoke", *options]
    done = subprocess.run(
        [*argv, "--results-dir", str(root), "--no-progress"],
        capture_output=True,
        text=True,
        env=_SESSION_ENVIRONMENT,
        cwd=_SESSION_FOLDER,
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, f"{experiment_id} smoke run failed ({done.returncode}): {done.stderr[-3000:]}"
    metrics = json.loads((root / experiment_id / "metrics.json").read_text())
    return {
        "dir": root / experiment_id,
        "metrics": metrics,
        "seconds": seconds,
        "stdout": done.stdout,  # the summary table
        "stderr": done.stderr,  # the progress lines; the kernels' own output is in run.log
    }


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, pytestconfig):
    """The session's :class:`SmokeRuns` (call it with an experiment id)."""
    runs = SmokeRuns(
        tmp_path_factory.mktemp("results"),
        pytestconfig.stash.get(_PLANNED, ([], [], [], [])),
        jobs=max(1, int(os.environ.get("CAMSTUDY_TEST_JOBS", "2"))),
        nice=int(os.environ.get("CAMSTUDY_TEST_NICE", "10")),
    )
    yield runs
    runs.shutdown()


@pytest.fixture(scope="session", autouse=True)
def start_smoke_runs(request, pytestconfig):
    """Start the planned smoke runs with the session's first test, when any is planned."""
    if any(pytestconfig.stash.get(_PLANNED, ([], [], [], []))):
        request.getfixturevalue("smoke_results").start()
