"""Seed sweeps: one experiment run once per seed, and how far its metrics move between the seeds.

Every experiment trains once, with the seed of its parameters (``seed``), which
sets both the split and the training. ``camstudy run ID --seeds N`` runs it
again per seed (the registry's seed and the next N-1 integers, or a list such
as ``--seeds 42,43,44``), each run a whole ``camstudy run`` through
:func:`common.runner.run_experiment`, into ``results/<id>/seeds/<seed>/``. Then
:func:`aggregate` reads each run's ``metrics.json`` and gives, per model and
summary metric, the mean, standard deviation (ddof = 1), lowest and highest
value over the seeds and each seed's value; :func:`write_aggregate` writes
them to ``results/<id>/seeds.json`` and draws ``results/<id>/figures/seed_spread.png``.

A seed whose folder holds a finished run of which nothing changed (its
parameters, notebook, code, registry parts, data and packages:
:func:`common.run_key.stale_reason`) is reused; ``force`` (``--force``) runs it
again. A seed whose run fails is left out of the aggregate and named.

What the spread means for a reader (:func:`difference_sentence`): with ``s``
the seed SD of a model's accuracy, two independent single runs differ by noise
alone with SD ``s·√2``, so a difference below ``z·√2·s`` (``z`` = 1.96 at 95%)
can be training noise. With few seeds ``s`` itself is rough: its chi-square
interval (:func:`sd_interval`) is reported beside it. :func:`seed_section` is
the Markdown section of the experiment's book page, :func:`overview_sentence`
the sentence of the results overview.

Example:
    >>> from common import seeds
    >>> seeds.parse_seeds("3", first=42)
    (42, 43, 44)
    >>> sweep = seeds.run_seeds("multi-organ", (42, 43), "smoke")  # doctest: +SKIP
    >>> print(seeds.difference_sentence(sweep.aggregate))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from common import run_key
from common.config import registry
from common.errors import DataError, ParameterError, StudyWarning
from common.evaluation.classification import SUMMARY_METRICS
from common.evaluation.estimate import Estimate
from common.evaluation.tables import MISSING, VALUE_DIGITS, value_of
from common.report.progress import RunProgress
from common.report.results import read_metrics, results_root, write_json_atomic

if TYPE_CHECKING:  # the runner (papermill, nbformat) and pandas are imported when a sweep runs or a table is made
    import pandas as pd

    from common.runner import RunOutcome

# Beside results/<id>/: the seed runs' folder, the aggregate and the figure (figures/<name>.png).
SEEDS_FOLDER = "seeds"
SEEDS_FILE = "seeds.json"
SEED_FIGURE = "seed_spread"
# The registry section of the sweeps and their settings.
REGISTRY_SECTION = "seed_sweeps"
# The fewest seeds a spread can be measured on (a standard deviation needs two values).
MIN_SEEDS = 2


# ----------------------------------------------------------------------------- which seeds


def registry_seed(experiment_id: str, profile: str = "default") -> int:
    """The seed an experiment runs with at ``profile`` (its registry parameters).

    Raises:
        ParameterError: for an unknown experiment or profile.
    """
    return int(registry.resolve(experiment_id, profile).seed)


def parse_seeds(text: str, first: int) -> tuple[int, ...]:
    """The seeds of ``--seeds``: ``"N"`` for ``first`` and the next N-1 integers, or a list ``"42,43,44"``.

    Args:
        text: What the user typed.
        first: The experiment's registry seed (the first of ``N`` seeds).

    Returns:
        The seeds, in the order given.

    Raises:
        ParameterError: for anything but a count of at least two or a list of at least two
            different whole numbers.
    """
    words = [word.strip() for word in str(text).split(",")]
    if not all(word.isascii() and word.isdigit() for word in words if word) or not any(words):
        raise ParameterError(
            f"--seeds {text!r}: give a number of seeds (--seeds 3) or a comma-separated list (--seeds 42,43,44)."
        )
    numbers = [int(word) for word in words if word]
    if len(words) == 1:
        if numbers[0] < MIN_SEEDS:
            raise ParameterError(f"--seeds {text}: a spread needs at least {MIN_SEEDS} seeds.")
        return tuple(range(first, first + numbers[0]))
    repeated = sorted({seed for seed in numbers if numbers.count(seed) > 1})
    if repeated:
        raise ParameterError(f"--seeds {text}: seed {repeated[0]} is given twice; each seed runs once.")
    if len(numbers) < MIN_SEEDS:
        raise ParameterError(f"--seeds {text}: a spread needs at least {MIN_SEEDS} seeds.")
    return tuple(numbers)


@dataclass(frozen=True)
class BookSweep:
    """The seed sweep ``camstudy book`` runs (the registry's ``seed_sweeps.book``).

    Attributes:
        experiment: The experiment swept.
        count: How many seeds: the registry seed and the next ``count - 1`` integers.
    """

    experiment: str
    count: int

    def seeds(self, profile: str = "default") -> tuple[int, ...]:
        """The sweep's seeds at ``profile``."""
        return parse_seeds(str(self.count), registry_seed(self.experiment, profile))


def book_sweep() -> BookSweep:
    """The sweep of the book, from the registry."""
    entry = registry.section(REGISTRY_SECTION)["book"]
    return BookSweep(str(entry["experiment"]), int(entry["seeds"]))


def _settings() -> tuple[str, float]:
    """The registry's metric of the difference sentence and its confidence level."""
    settings = registry.section(REGISTRY_SECTION)
    return str(settings["metric"]), float(settings["confidence"])


# ----------------------------------------------------------------------------- the spread


def sd_interval(sd: float, dof: int, confidence: float = 0.95) -> tuple[float, float]:
    """Chi-square interval of a standard deviation estimated with ``dof`` degrees of freedom.

    For normal values, ``dof·s²/σ²`` follows a chi-square distribution with ``dof``
    degrees of freedom, so σ lies between ``s·√(dof/χ²_hi)`` and ``s·√(dof/χ²_lo)``.

    Args:
        sd: The sample standard deviation ``s`` (ddof = 1).
        dof: Its degrees of freedom (values - 1; pooled: the sum over the pooled groups).
        confidence: The interval's level.

    Returns:
        ``(low, high)``.

    Raises:
        DataError: when ``dof`` is below 1.
    """
    from scipy.stats import chi2

    if dof < 1:
        raise DataError(f"A standard deviation needs at least {MIN_SEEDS} values; this one has {dof + 1}.")
    tail = (1 - confidence) / 2
    return (
        float(sd * math.sqrt(dof / chi2.ppf(1 - tail, dof))),
        float(sd * math.sqrt(dof / chi2.ppf(tail, dof))),
    )


@dataclass(frozen=True)
class MetricSpread:
    """One model's metric over the seeds.

    Attributes:
        model: The model's name in ``metrics.json``.
        metric: The metric (one of ``SUMMARY_METRICS``).
        values: Seed -> the run's value, for the seeds where it is defined.
    """

    model: str
    metric: str
    values: dict[int, float]

    @property
    def n(self) -> int:
        """Seeds with a value."""
        return len(self.values)

    @property
    def mean(self) -> float:
        """Mean over the seeds."""
        return float(np.mean(list(self.values.values())))

    @property
    def sd(self) -> float | None:
        """Standard deviation over the seeds (ddof = 1); None below two seeds."""
        return float(np.std(list(self.values.values()), ddof=1)) if self.n >= MIN_SEEDS else None

    @property
    def low(self) -> float:
        """The lowest value."""
        return min(self.values.values())

    @property
    def high(self) -> float:
        """The highest value."""
        return max(self.values.values())

    def record(self) -> dict[str, Any]:
        """``{"mean", "sd", "min", "max", "n", "values": {seed: value}}`` (the ``models`` entries of seeds.json)."""
        return {
            "mean": self.mean,
            "sd": self.sd,
            "min": self.low,
            "max": self.high,
            "n": self.n,
            "values": {str(seed): value for seed, value in self.values.items()},
        }


@dataclass(frozen=True)
class SeedNoise:
    """How much one metric moves between seeds: its seed SD, the basis of the difference sentence.

    Attributes:
        metric: The metric.
        sd: The seed SD ``s`` with its chi-square interval (``n``: the values it was made from;
            ``method`` says whether it was pooled over models).
        dof: Its degrees of freedom.
        per_model: Each model's own SD (one model: just that one).
        seeds: The seeds of the sweep.
    """

    metric: str
    sd: Estimate
    dof: int
    per_model: dict[str, float]
    seeds: tuple[int, ...]

    @property
    def z(self) -> float:
        """The normal quantile of the interval's level (1.96 at 95%)."""
        from scipy.stats import norm

        return float(norm.ppf(1 - (1 - self.sd.confidence) / 2))

    @property
    def difference_sd(self) -> float:
        """SD of the difference of two independent single runs from noise alone: ``s·√2``."""
        return self.sd.value * math.sqrt(2)

    @property
    def threshold(self) -> float:
        """The difference of two single runs below which it can be noise: ``z·√2·s``."""
        return self.z * self.difference_sd

    @property
    def threshold_interval(self) -> tuple[float, float]:
        """The threshold at the ends of ``s``'s interval."""
        return self.z * math.sqrt(2) * self.sd.low, self.z * math.sqrt(2) * self.sd.high

    def record(self) -> dict[str, Any]:
        """The JSON record (seeds.json's ``noise``)."""
        return {
            "metric": self.metric,
            "sd": self.sd.to_record(),
            "confidence": self.sd.confidence,
            "dof": self.dof,
            "z": self.z,
            "difference_sd": self.difference_sd,
            "threshold": self.threshold,
            "threshold_interval": list(self.threshold_interval),
            "per_model": dict(self.per_model),
        }

    def table(self) -> pd.DataFrame:
        """One row: ``s`` with its interval, the SD of a difference and the threshold with its range."""
        import pandas as pd

        digits = VALUE_DIGITS
        low, high = self.threshold_interval
        row = {
            "seeds": len(self.seeds),
            f"SD of {self.metric}": f"{self.sd.value:.{digits}f} ({self.sd.low:.{digits}f}–{self.sd.high:.{digits}f})",
            "SD of a difference": f"{self.difference_sd:.{digits}f}",
            "noise threshold": f"{self.threshold:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})",
        }
        return pd.DataFrame([row], index=pd.Index([self.metric], name="metric"))


@dataclass(frozen=True)
class SeedAggregate:
    """An experiment's metrics over a sweep of seeds (the content of ``seeds.json``).

    Attributes:
        experiment: The experiment id.
        profile: The profile every seed ran at.
        seeds: The seeds aggregated (their runs finished), in sweep order.
        folders: Seed -> its run's folder, relative to the experiment's results folder.
        spreads: One per model and metric, models in the runs' order, metrics in ``SUMMARY_METRICS`` order.
        failed: Seed -> the error of a run that failed (left out of the spreads).
    """

    experiment: str
    profile: str
    seeds: tuple[int, ...]
    folders: dict[int, str]
    spreads: tuple[MetricSpread, ...]
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """The models, in the runs' order."""
        return list(dict.fromkeys(spread.model for spread in self.spreads))

    def spread(self, model: str, metric: str) -> MetricSpread:
        """One model's metric.

        Raises:
            DataError: when the sweep has no such model or metric.
        """
        for spread in self.spreads:
            if (spread.model, spread.metric) == (model, metric):
                return spread
        raise DataError(f"The seed sweep of {self.experiment} has no {metric} of {model!r}.")

    def noise(self, metric: str | None = None, confidence: float | None = None) -> SeedNoise:
        """The seed SD of ``metric`` (default: the registry's), pooled over the models when there are several.

        Pooled: the square root of the models' variances weighted by their degrees
        of freedom, with their sum as its degrees of freedom.

        Raises:
            DataError: when no model has the metric at two seeds or more.
        """
        default_metric, default_confidence = _settings()
        metric = metric or default_metric
        confidence = default_confidence if confidence is None else confidence
        spreads = [s for s in self.spreads if s.metric == metric and s.sd is not None]
        if not spreads:
            raise DataError(
                f"The seed sweep of {self.experiment} has no {metric} at {MIN_SEEDS} seeds or more: "
                "no spread to measure."
            )
        dof = sum(s.n - 1 for s in spreads)
        sd = math.sqrt(sum((s.n - 1) * cast(float, s.sd) ** 2 for s in spreads) / dof)
        low, high = sd_interval(sd, dof, confidence)
        pooled = f", pooled over {len(spreads)} models" if len(spreads) > 1 else ""
        estimate = Estimate(sd, low, high, confidence, n=sum(s.n for s in spreads), method=f"chi-square{pooled}")
        return SeedNoise(metric, estimate, dof, {s.model: cast(float, s.sd) for s in spreads}, self.seeds)

    def record(self) -> dict[str, Any]:
        """The JSON record of ``seeds.json``; ``noise`` is the registry metric's :class:`SeedNoise` (or None)."""
        models: dict[str, dict[str, Any]] = {}
        for spread in self.spreads:
            models.setdefault(spread.model, {})[spread.metric] = spread.record()
        try:
            noise: dict | None = self.noise().record()
        except DataError:
            noise = None
        return {
            "experiment": self.experiment,
            "profile": self.profile,
            "seeds": list(self.seeds),
            "folders": {str(seed): folder for seed, folder in self.folders.items()},
            "failed": {str(seed): error for seed, error in self.failed.items()},
            "models": models,
            "noise": noise,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SeedAggregate:
        """Read a :meth:`record` back (as from ``seeds.json``).

        Raises:
            DataError: when the record lacks a part.
        """
        try:
            spreads = tuple(
                MetricSpread(model, metric, {int(seed): float(value) for seed, value in entry["values"].items()})
                for model, metrics in record["models"].items()
                for metric, entry in metrics.items()
            )
            return cls(
                experiment=str(record["experiment"]),
                profile=str(record["profile"]),
                seeds=tuple(int(seed) for seed in record["seeds"]),
                folders={int(seed): str(folder) for seed, folder in record["folders"].items()},
                spreads=spreads,
                failed={int(seed): str(error) for seed, error in (record.get("failed") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(f"not a seed sweep's record ({type(error).__name__}: {error}).") from None

    def table(self, digits: int = VALUE_DIGITS) -> pd.DataFrame:
        """Display table: one row per model and metric; mean ± SD, min–max, then each seed's value."""
        import pandas as pd

        rows = []
        for spread in self.spreads:
            sd = MISSING if spread.sd is None else f"{spread.sd:.{digits}f}"
            row = {
                "mean ± SD": f"{spread.mean:.{digits}f} ± {sd}",
                "min–max": f"{spread.low:.{digits}f}–{spread.high:.{digits}f}",
            }
            for seed in self.seeds:
                value = spread.values.get(seed)
                row[f"seed {seed}"] = MISSING if value is None else f"{value:.{digits}f}"
            rows.append(row)
        index = pd.MultiIndex.from_tuples([(s.model, s.metric) for s in self.spreads], names=["model", "metric"])
        return pd.DataFrame(rows, index=index)


def _value(entry: Any) -> float:
    """A metric entry's number (NaN for a null or unreadable one)."""
    try:
        return value_of(entry)
    except (TypeError, ValueError, KeyError):
        return math.nan


def seed_folder(experiment_dir: Path, seed: int) -> Path:
    """The folder of one seed's run: ``<experiment_dir>/seeds/<seed>``."""
    return Path(experiment_dir) / SEEDS_FOLDER / str(seed)


def aggregate(
    experiment_dir: str | Path, seeds: Sequence[int], failed: Mapping[int, str] | None = None
) -> SeedAggregate:
    """The spread of every model's summary metrics over the seed runs in ``experiment_dir/seeds/<seed>/``.

    Args:
        experiment_dir: The experiment's results folder (``results/<id>``).
        seeds: The seeds whose runs finished; each folder holds a ``metrics.json``.
        failed: Seed -> error of runs that failed, recorded beside the spreads.

    Returns:
        The aggregate: per model (in the runs' order) and summary metric (those any run has),
        the values of the seeds where the metric is defined.

    Raises:
        DataError: when there is no seed, a run record cannot be read, records another seed
            than its folder, or the runs differ in experiment or profile.
    """
    experiment_dir = Path(experiment_dir)
    if not seeds:
        raise DataError(f"No seed run of {experiment_dir.name} finished: nothing to aggregate.")
    records: dict[int, dict] = {}
    for seed in seeds:
        path = seed_folder(experiment_dir, seed) / "metrics.json"
        record = read_metrics(path)
        if record.get("seed") != seed:
            raise DataError(f"{path}: records seed {record.get('seed')}, not {seed}; run the sweep with --force.")
        records[seed] = record
    for key in ("experiment", "profile"):
        found = {str(record.get(key)) for record in records.values()}
        if len(found) > 1:
            raise DataError(f"The seed runs in {experiment_dir / SEEDS_FOLDER} differ in {key}: {sorted(found)}.")
    first = records[seeds[0]]
    models = list(dict.fromkeys(model for record in records.values() for model in record.get("models") or {}))
    spreads = []
    for model in models:
        for metric in SUMMARY_METRICS:
            values = {
                seed: _value(record["models"][model][metric])
                for seed, record in records.items()
                if metric in (record.get("models") or {}).get(model, {})
            }
            values = {seed: value for seed, value in values.items() if math.isfinite(value)}
            if values:
                spreads.append(MetricSpread(model, metric, values))
    return SeedAggregate(
        experiment=str(first.get("experiment", experiment_dir.name)),
        profile=str(first.get("profile")),
        seeds=tuple(seeds),
        folders={seed: f"{SEEDS_FOLDER}/{seed}" for seed in seeds},
        spreads=tuple(spreads),
        failed=dict(failed or {}),
    )


def write_aggregate(result: SeedAggregate, experiment_dir: str | Path) -> tuple[Path, Path]:
    """Write ``seeds.json`` and draw ``figures/seed_spread.png`` in the experiment's results folder.

    Returns:
        The paths of ``seeds.json`` and of the figure.
    """
    from common.report import figures

    experiment_dir = Path(experiment_dir)
    record = result.record()
    seeds_file = write_json_atomic(experiment_dir / SEEDS_FILE, record)
    figure_file = experiment_dir / "figures" / f"{SEED_FIGURE}.png"
    title = f"{result.experiment}, {result.profile} profile: {len(result.seeds)} seeds"
    figures.plt.close(figures.seed_spread(record["models"], title=title, path=figure_file))
    return seeds_file, figure_file


def read_aggregate(path: str | Path) -> SeedAggregate:
    """Read a ``seeds.json``.

    Raises:
        DataError: when the file cannot be read or is not a seed sweep's record (the message names it).
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read this seed sweep ({error}); run the sweep again.") from None
    try:
        return SeedAggregate.from_record(record if isinstance(record, dict) else {})
    except DataError as error:
        raise DataError(f"{path}: {error} Run the sweep again.") from None


# ----------------------------------------------------------------------------- running a sweep


@dataclass(frozen=True)
class SeedSweep:
    """What a sweep did: one outcome per seed, and the aggregate of those that finished.

    Attributes:
        experiment: The experiment id.
        outcomes: Per seed, in sweep order (``extra``: ``seed`` and, for a reused run, ``reused``).
        aggregate: The spread over the finished seeds; None when none finished.
        seeds_file: ``seeds.json``, when written.
        figure: ``figures/seed_spread.png``, when drawn.
    """

    experiment: str
    outcomes: tuple[RunOutcome, ...]
    aggregate: SeedAggregate | None = None
    seeds_file: Path | None = None
    figure: Path | None = None

    @property
    def failed(self) -> list[int]:
        """The seeds whose runs failed."""
        return [outcome.extra["seed"] for outcome in self.outcomes if not outcome.ok]

    def record(self) -> dict[str, Any]:
        """Per seed its status and folder, and where the aggregate went."""
        return {
            "experiment": self.experiment,
            "runs": [
                {
                    "seed": o.extra["seed"],
                    "ok": o.ok,
                    "reused": bool(o.extra.get("reused")),
                    "folder": str(o.output_dir),
                    "wall_time_s": o.wall_time_s,
                    "error": o.error,
                }
                for o in self.outcomes
            ],
            "seeds_file": None if self.seeds_file is None else str(self.seeds_file),
            "figure": None if self.figure is None else str(self.figure),
        }

    def table(self) -> pd.DataFrame:
        """One row per seed: run or reused, ok or failed, wall time."""
        import pandas as pd

        rows = [
            {
                "status": "ok" if o.ok else "FAILED",
                "run": "reused" if o.extra.get("reused") else "ran",
                "wall time (s)": o.wall_time_s,
            }
            for o in self.outcomes
        ]
        return pd.DataFrame(rows, index=pd.Index([o.extra["seed"] for o in self.outcomes], name="seed"))


class _SeedLines:
    """The runner's progress lines with the seed in each (``multi-organ (smoke, seed 43): ...``)."""

    def __init__(self, lines: RunProgress, seed: int) -> None:
        self.lines, self.seed = lines, seed

    def started(self, experiment_id: str, profile: str) -> None:
        self.lines.started(experiment_id, f"{profile}, seed {self.seed}")

    def callback(self, experiment_id: str) -> Callable[[int, int], None]:
        return self.lines.callback(experiment_id)

    def ended(self, experiment_id: str, ok: bool, seconds: float, error: str = "") -> None:
        self.lines.ended(experiment_id, ok, seconds, error)


def _label(experiment_id: str, seed: int, reused: bool = False) -> str:
    """A seed run's name in the summary table and the failure line."""
    return f"{experiment_id} seed {seed}" + (" (reused)" if reused else "")


def _reused(experiment_id: str, seed: int, run_dir: Path) -> RunOutcome:
    """The outcome of a seed whose finished run is reused (its recorded wall time)."""
    from common.runner import RunOutcome

    record = read_metrics(run_dir / "metrics.json")
    return RunOutcome(
        _label(experiment_id, seed, reused=True),
        True,
        run_dir,
        float(record.get("wall_time_s") or 0.0),
        notebook=run_dir / f"{experiment_id}.ipynb",
        extra={"seed": seed, "reused": True},
    )


def _copy_of_main_run(experiment_id: str, seed: int, experiment_dir: Path, run_dir: Path) -> RunOutcome:
    """The seed's run taken from the experiment's own run of that seed, copied into the seed's folder.

    The registry's seed is usually the experiment's own: when nothing its run depends on
    differs from the seed's (:func:`common.run_key.stale_reason`), running it again would
    only repeat it. The copy leaves out what the main folder carries of the sweep itself.
    """
    from common.runner import CARRIED_OVER

    stage = run_dir.with_name(f".copy-{seed}-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    top_level = {name for name in CARRIED_OVER if "/" not in name}

    def left_out(folder: str, names: list[str]) -> set[str]:
        return top_level & set(names) if Path(folder) == experiment_dir else set()

    shutil.copytree(experiment_dir, stage, ignore=left_out)
    for name in CARRIED_OVER:
        if "/" in name:  # a file of the sweep inside a copied folder (figures/seed_spread.png)
            (stage / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stage, run_dir)
    _show_seed_folder(run_dir / f"{experiment_id}.ipynb", run_dir, f"{experiment_id}/{SEEDS_FOLDER}/{seed}")
    return _reused(experiment_id, seed, run_dir)


def run_seed(
    experiment_id: str,
    seed: int,
    profile: str = "default",
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    results_dir: str | Path | None = None,
    progress: RunProgress | None = None,
) -> RunOutcome:
    """Run one seed into ``<results>/<id>/seeds/<seed>/`` through :func:`common.runner.run_experiment`.

    The runner writes ``<root>/<id>/``; the seed's folder is moved into a staging
    root as ``<root>/<id>`` for the run and back afterwards, so the runner's
    guarantees hold for it as for any run: a finished run replaces the folder in one
    rename, a failed one leaves the earlier run untouched and keeps its notebook and
    log in the folder's ``failed/``.

    Returns:
        The outcome, named ``<id> seed <seed>``, its folder the seed's, ``extra["seed"]`` the seed.

    Raises:
        ParameterError, DataError: as :func:`common.runner.run_experiment`, before anything runs.
    """
    from common.runner import RunOutcome, run_experiment

    root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
    seed_dir = seed_folder(root / experiment_id, seed)
    stage = seed_dir.with_name(f".run-{seed}-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    staged = stage / experiment_id
    if seed_dir.exists():
        os.replace(seed_dir, staged)
    lines = progress or RunProgress(io.StringIO(), live=False)
    try:
        outcome = run_experiment(
            experiment_id,
            profile,
            data_dir,
            dict(overrides or {}, seed=seed),
            stage,
            cast(RunProgress, _SeedLines(lines, seed)),
        )
    finally:
        if staged.exists():
            os.replace(staged, seed_dir)
        shutil.rmtree(stage, ignore_errors=True)
    notebook = None if outcome.notebook is None else seed_dir / outcome.notebook.relative_to(staged)
    if outcome.ok and notebook is not None:
        _show_seed_folder(notebook, seed_dir, f"{experiment_id}/{SEEDS_FOLDER}/{seed}")
    return RunOutcome(
        _label(experiment_id, seed),
        outcome.ok,
        seed_dir,
        outcome.wall_time_s,
        error=outcome.error,
        notebook=notebook,
        extra={"seed": seed},
    )


def _show_seed_folder(notebook: Path, seed_dir: Path, outside: str) -> None:
    """Let the executed notebook's parameters cell name the seed's folder, not the staging folder it ran in.

    Args:
        notebook: The executed notebook, rewritten in place.
        seed_dir: The seed's folder.
        outside: What to show for a folder outside the project (``<id>/seeds/<seed>``).
    """
    from common.report import executed

    shown_dir = executed.shown_path(seed_dir, outside)
    recorded = _recorded_parameters(notebook)
    executed.tidy_parameters(notebook, dict(recorded, output_dir=shown_dir), f"{shown_dir}/{notebook.name}")


def _recorded_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters papermill recorded in an executed notebook's metadata (as the runner tidied them)."""
    import nbformat

    return dict(nbformat.read(notebook, as_version=4).metadata.get("papermill", {}).get("parameters", {}))


def run_seeds(
    experiment_id: str,
    seeds: Sequence[int],
    profile: str = "default",
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    results_dir: str | Path | None = None,
    force: bool = False,
    progress: RunProgress | None = None,
) -> SeedSweep:
    """Run an experiment once per seed, then write the spread over the finished seeds.

    Args:
        experiment_id: Registry id of the experiment.
        seeds: At least two different seeds (see :func:`parse_seeds`).
        profile, data_dir, results_dir: As for :func:`common.runner.run_experiment`.
        overrides: Parameter overrides for every seed (not ``seed``).
        force: Run every seed, also one whose folder holds a finished run with the same parameters.
        progress: Where the runs' progress lines go; None: nowhere.

    Returns:
        The sweep: per seed its outcome, and the aggregate written to ``<results>/<id>/seeds.json``
        with its figure (none when no seed finished).

    Raises:
        ParameterError: for fewer than two seeds, a repeated seed, a ``seed`` override, or
            any parameter the registry refuses, before anything runs.
        DataError: as :func:`common.runner.run_experiment`.
    """
    overrides = dict(overrides or {})
    if "seed" in overrides:
        raise ParameterError("--seeds sets each run's seed: give the seeds as a list (--seeds 7,8,9), not -p seed.")
    seeds = tuple(int(seed) for seed in seeds)
    if len(set(seeds)) < MIN_SEEDS or len(set(seeds)) != len(seeds):
        raise ParameterError(f"A seed sweep needs at least {MIN_SEEDS} different seeds; got {list(seeds)}.")
    for seed in seeds:  # every seed checked (range, types) before the first runs
        registry.resolve(experiment_id, profile, dict(overrides, seed=seed), data_dir)
    root = Path(results_dir).expanduser().resolve() if results_dir else results_root()
    experiment_dir = root / experiment_id
    outcomes = []
    for seed in seeds:
        run_dir = seed_folder(experiment_dir, seed)
        seed_overrides = dict(overrides, seed=seed)
        if not force and run_key.stale_reason(run_dir, experiment_id, profile, data_dir, seed_overrides) is None:
            outcomes.append(_reused(experiment_id, seed, run_dir))
        elif (
            not force and run_key.stale_reason(experiment_dir, experiment_id, profile, data_dir, seed_overrides) is None
        ):
            outcomes.append(_copy_of_main_run(experiment_id, seed, experiment_dir, run_dir))
        else:
            outcomes.append(run_seed(experiment_id, seed, profile, data_dir, overrides, root, progress))
    finished = [o.extra["seed"] for o in outcomes if o.ok]
    if not finished:
        return SeedSweep(experiment_id, tuple(outcomes))
    failed = {o.extra["seed"]: o.error for o in outcomes if not o.ok}
    result = aggregate(experiment_dir, finished, failed)
    seeds_file, figure = write_aggregate(result, experiment_dir)
    return SeedSweep(experiment_id, tuple(outcomes), result, seeds_file, figure)


def describe(sweep: SeedSweep) -> str:
    """What the terminal shows after a sweep: where the spread went and the difference sentence."""
    if sweep.aggregate is None:
        return f"{sweep.experiment}: no seed run finished, so there is no spread to write."
    lines = [
        f"spread over {len(sweep.aggregate.seeds)} seeds ({', '.join(map(str, sweep.aggregate.seeds))}): "
        f"{sweep.seeds_file}, figure {sweep.figure}"
    ]
    try:
        lines.append(difference_sentence(sweep.aggregate))
    except DataError as error:
        lines.append(str(error))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- what the book says


def _number(value: float, digits: int = VALUE_DIGITS) -> str:
    return f"{value:.{digits}f}"


def _seed_list(seeds: Sequence[int]) -> str:
    """``42, 43 and 44``."""
    names = [str(seed) for seed in seeds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def difference_sentence(result: SeedAggregate) -> str:
    """How large a difference of two single runs must be to exceed the training (seed) noise.

    With ``s`` the seed SD of the registry's metric (accuracy; pooled over the models
    when there are several), two independent single runs differ by noise alone with
    SD ``s·√2``, so a difference below ``z·√2·s`` (about 2.8 s at 95%) can be noise.
    The sentence gives ``s``, the threshold, the number of seeds, and ``s``'s
    chi-square interval with the threshold at its ends, since few seeds measure ``s`` roughly.

    Raises:
        DataError: when the metric is not measured at two seeds or more.
    """
    noise = result.noise()
    metric, n_seeds, level = noise.metric, len(result.seeds), f"{noise.sd.confidence:.0%}"
    where = f"{result.experiment} (`{result.profile}` profile, {n_seeds} seeds: {_seed_list(result.seeds)})"
    if len(noise.per_model) == 1:
        (model,) = noise.per_model
        whose = f"the {model} model's test {metric}"
    else:
        low_model = min(noise.per_model, key=noise.per_model.__getitem__)
        high_model = max(noise.per_model, key=noise.per_model.__getitem__)
        whose = (
            f"the test {metric}, pooled over {len(noise.per_model)} models (from "
            f"{_number(noise.per_model[low_model])} for {low_model} to {_number(noise.per_model[high_model])} "
            f"for {high_model}),"
        )
    if noise.sd.value == 0:
        return (
            f"Training noise in {where}: {whose} was the same at every seed, so this sweep shows no training "
            f"noise in {metric}; {n_seeds} seeds cannot rule it out, and any difference between two single "
            "runs may still be noise."
        )
    low, high = noise.threshold_interval
    return (
        f"Training noise in {where}: {whose} has a seed SD of s = {_number(noise.sd.value)}. Two single runs "
        f"differ by this noise alone with an SD of s·√2 = {_number(noise.difference_sd)}, so a difference in "
        f"{metric} below {noise.z:.2f}·√2·s = {_number(noise.threshold)} between two single runs can be training "
        f"noise. With {n_seeds} seeds the estimate of s is itself rough: its {level} chi-square interval is "
        f"{_number(noise.sd.low)}–{_number(noise.sd.high)} ({noise.dof} degrees of freedom), which puts that "
        f"threshold between {_number(low)} and {_number(high)}. The seed sets both the split and the training, "
        "so this noise includes the split's."
    )


def _markdown_table(table: pd.DataFrame) -> str:
    """A display table (index: model, metric) as a Markdown table, numbers right-aligned."""
    from common.report.render import cell

    header = [*table.index.names, *map(str, table.columns)]
    lines = [
        "| " + " | ".join(cell(name) for name in header) + " |",
        "|" + "---|" * len(table.index.names) + "---:|" * len(table.columns),
    ]
    for keys, values in zip(table.index, table.to_numpy()):
        lines.append("| " + " | ".join(cell(value) for value in [*keys, *values]) + " |")
    return "\n".join(lines)


def seed_section(result: SeedAggregate, figure_name: str | None = None) -> str:
    """The Markdown section of the experiment's book page: the spread's table, its figure, the sentence.

    Args:
        result: The sweep's aggregate.
        figure_name: The figure's path as the page links it (``figures/<id>-seed_spread.png``), or None.

    Returns:
        A ``## Seed spread`` section of MyST Markdown (no final newline).
    """
    seeds = result.seeds
    failed = ""
    if result.failed:
        which = _seed_list(sorted(result.failed))
        runs = (
            f"The run of seed {which} failed and is"
            if len(result.failed) == 1
            else f"The runs of seeds {which} failed and are"
        )
        errors = "; ".join(f"seed {seed}: {error}" for seed, error in sorted(result.failed.items()))
        failed = f" {runs} left out ({errors})."
    parts = [
        "## Seed spread",
        f"The run above trained once, with one seed. This experiment was also run with {len(seeds)} seeds "
        f"({_seed_list(seeds)}) at the `{result.profile}` profile, each a whole run of this notebook into "
        f"`results/{result.experiment}/seeds/<seed>/`; the seed sets both the split and the training. Per model "
        "and metric: the mean over the seeds ± their standard deviation, the lowest and highest value, and each "
        f"seed's value.{failed}",
        f":::{{container}} value-table\n{_markdown_table(result.table())}\n:::",
    ]
    if figure_name:
        parts.append(
            f"```{{figure}} {figure_name}\n:alt: {result.experiment}: each seed's metrics, their mean and SD\n"
            ":width: 100%\n\n"
            f"Each seed's value (dots), the mean over the seeds (black bar) and the mean ± SD (grey line), "
            f"per model and metric ({result.profile} profile).\n```"
        )
    try:
        parts.append(difference_sentence(result))
    except DataError as error:
        parts.append(f"No training-noise threshold: {error}")
    return "\n\n".join(parts)


def overview_sentence(results_dir: str | Path | None = None) -> str | None:
    """The difference sentence of the book's sweep, for the results overview; None without a measured spread.

    Reads ``<results>/<id>/seeds.json`` of the registry's ``seed_sweeps.book`` experiment.
    An unreadable file is left out with a warning.
    """
    sweep = book_sweep()
    path = Path(results_dir or results_root()) / sweep.experiment / SEEDS_FILE
    if not path.exists():
        return None
    try:
        return difference_sentence(read_aggregate(path))
    except DataError as error:
        warnings.warn(f"the overview leaves out the seed spread: {error}", StudyWarning, stacklevel=2)
        return None
