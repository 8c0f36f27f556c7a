"""Where a run's outputs go and what a ``metrics.json`` records.

A notebook creates one :class:`RunRecorder`; it times the run, saves figures
under ``figures/``, and writes ``metrics.json`` atomically (a reader never sees
half a file). The top-level keys of ``metrics.json`` are fixed in
:data:`METRICS_KEYS` because the book, the benchmark and the tests read them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import DataError, StudyWarning

if TYPE_CHECKING:
    from common.config.params import RunParams

METRICS_KEYS = (
    "experiment",
    "profile",
    "parameters",
    "data",
    "versions",
    "seed",
    "wall_time_s",
    "peak_memory_mb",
    "models",
    "paper",
)

# Distributions whose versions every run records.
VERSIONED_PACKAGES = (
    "tensorflow",
    "keras",
    "tf-keras-vis",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "pydicom",
    "opencv-python-headless",
    "papermill",
)


def project_root() -> Path:
    """Return the project's top folder (``CAMSTUDY_HOME`` overrides it).

    The package is installed in editable mode, so this module
    (``src/common/report/results.py``) sits three folders below the top folder.
    """
    env = os.environ.get("CAMSTUDY_HOME")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[3]


def results_root() -> Path:
    """Return the folder that holds one subfolder per experiment's results."""
    return project_root() / "results"


def versions() -> dict[str, str]:
    """Return Python's and the main packages' versions (``"absent"`` if missing)."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def peak_memory_mb() -> float:
    """Return this process's peak resident memory in MB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024.0, 1)


def to_jsonable(value: Any) -> Any:
    """Convert NumPy scalars/arrays and paths inside ``value`` to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _process_umask() -> int:
    """The process's umask, read once (setting it to read it is not safe while threads write files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON to ``path`` so that a reader sees the old file or the whole new one, never a part.

    The payload is serialised first, then written to a temporary file beside
    ``path``, synced to disk and renamed over ``path``; the folder is synced so
    the rename survives a crash. The file gets the mode any new file of the
    user gets (``0666`` less the umask). A failure leaves no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(payload), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


RUN_LOG = "run_log.jsonl"


def append_run_log(entry: dict, results_dir: str | Path | None = None) -> None:
    """Append one run's record (experiment, profile, ok, wall time) to the run log.

    One JSON object per line, appended, so concurrent runs of different
    experiments do not overwrite each other's records.
    """
    folder = Path(results_dir) if results_dir else results_root()
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable({**entry, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    with open(folder / RUN_LOG, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def read_run_log(results_dir: str | Path | None = None) -> list[dict]:
    """Every readable record of the run log, oldest first (empty when no run was logged).

    A line that is not a JSON record (the last line of a process killed while it
    wrote, a line edited by hand) is left out with a warning naming its line number.
    """
    path = (Path(results_dir) if results_dir else results_root()) / RUN_LOG
    if not path.exists():
        return []
    records, unreadable = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = "unreadable"
        if isinstance(record, dict):
            records.append(record)
        elif record is not None:
            unreadable.append(number)
    if unreadable:
        warnings.warn(f"{path}: left out unreadable line(s) {unreadable}", StudyWarning, stacklevel=2)
    return records


def read_metrics(path: str | Path) -> dict:
    """Read a ``metrics.json`` file.

    Raises:
        DataError: the file cannot be read or is not a JSON object (a run killed while it
            wrote, a file edited by hand); the message names the file and what to do.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read this run record ({error}); run the experiment again.") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: not a run record (a JSON object); run the experiment again.")
    return record


class RunRecorder:
    """Collects one notebook run's outputs and writes them in one place.

    Args:
        params: The run's parameters (see :func:`common.config.registry.resolve`); ``metrics.json``
            records them as :meth:`common.config.params.RunParams.as_dict`.
        output_dir: Where the run writes; ``None`` means ``results/<experiment>``.
    """

    def __init__(self, params: RunParams, output_dir: str | Path | None = None):
        self.params = params
        self.experiment = params.experiment
        self.output_dir = Path(output_dir) if output_dir else results_root() / self.experiment
        self.figures_dir = self.output_dir / "figures"
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.figures: list[str] = []

    def figure_path(self, name: str) -> Path:
        """Return the PNG path for a figure called ``name`` and remember it."""
        path = self.figures_dir / f"{name}.png"
        self.figures.append(path.name)
        return path

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return round(time.perf_counter() - self.started, 2)

    def write_model_card(
        self,
        model_name: str,
        image_size,
        channels: int,
        preprocess: str | None,
        cam_layer: str | None = None,
        input_kind: str = "image",
        **extra: Any,
    ) -> Path:
        """Record, beside ``model.keras``, exactly how the model's inputs were made.

        ``camstudy predict`` and the app read this file, so they apply the run's
        own preprocessing instead of guessing it.

        Args:
            model_name: Name of the saved model (``model.keras``).
            image_size: Square side (2D) or ``[H, W, D]`` (3D) of the model input.
            channels: Input channels (1 greyscale, 3 repeated grey).
            preprocess: ``common.data.pipeline.PREPROCESS_MODULES`` key, or None for [0, 1] scaling.
            cam_layer: The layer the run's CAMs used.
            input_kind: ``"image"`` (2D slice) or ``"volume"`` (DICOM series).
            **extra: Further input settings; a volume model records ``window`` and
                ``sobel`` (the :func:`common.data.dicom.load_series` arguments of its run).
        """
        card = {
            "experiment": self.experiment,
            "model": model_name,
            "model_file": "model.keras",
            "input_kind": input_kind,
            "image_size": image_size,
            "channels": channels,
            "preprocess": preprocess,
            "classes": self.params.classes,
            "positive": self.params.positive,
            "cam_layer": cam_layer,
            "profile": self.params.profile,
            "data_source": self.params.data_source,
            "data_dir": self.params.data_dir,
            "seed": self.params.seed,
            "trained_at": self.started_at,
            **extra,
        }
        return write_json_atomic(self.output_dir / "model_card.json", card)

    def write_metrics(self, models: dict, data: dict, paper: dict, **extra: Any) -> Path:
        """Write ``metrics.json`` with the fixed top-level keys plus ``extra`` ones.

        Args:
            models: Per model name, its metrics dict (values with ``ci95``).
            data: Source, class counts per split and skipped files.
            paper: Per model name, the paper's numbers under the same metric names.
            **extra: Further top-level sections (``explanations``, ``splits``, ...).
        """
        record = {
            "experiment": self.experiment,
            "profile": self.params.profile,
            "parameters": self.params.as_dict(),
            "data": data,
            "versions": versions(),
            "seed": self.params.seed,
            "started_at": self.started_at,
            "wall_time_s": self.elapsed(),
            "peak_memory_mb": peak_memory_mb(),
            "models": models,
            "paper": paper,
            "figures": sorted(set(self.figures)),
        }
        record.update(extra)
        # What the run depended on, hashed now that it has imported and read all it uses (common.run_key);
        # the key goes beside metrics.json, its digest into it for the page's banner.
        from common import run_key

        key = run_key.of_this_run(self.params)
        record["run_key"] = key.digest
        run_key.write(key, self.output_dir)
        return write_json_atomic(self.output_dir / "metrics.json", record)


def run_banner(metrics: dict) -> str:
    """Markdown summary of a run, so no reader mistakes a phantom run for the paper's.

    Two paragraphs: first :func:`common.report.labels.run_label` (what ran and whether
    its numbers can be compared with the paper's), then the run's profile, data,
    timing, seed and versions.

    Args:
        metrics: A ``metrics.json`` record.
    """
    from common.report.labels import run_label

    params = metrics.get("parameters", {})
    source = metrics.get("data", {}).get("source", params.get("data_source", "?"))
    vers = metrics.get("versions", {})
    summary = (
        f"**Run summary** — profile `{metrics.get('profile')}`, data: {source}, "
        f"started {metrics.get('started_at', '?')}, wall time {metrics.get('wall_time_s', 0):.0f} s, "
        f"peak memory {metrics.get('peak_memory_mb', 0):.0f} MB, seed {metrics.get('seed')}; "
        f"Python {vers.get('python', '?')}, TensorFlow {vers.get('tensorflow', '?')}, "
        f"Keras {vers.get('keras', '?')}, tf-keras-vis {vers.get('tf-keras-vis', '?')}."
    )
    if metrics.get("run_key"):
        from common.run_key import SHORT

        summary += f" Run key `{str(metrics['run_key'])[:SHORT]}` (what it depended on: `run_key.json` beside it)."
    return f"{run_label(metrics)}\n\n{summary}"
