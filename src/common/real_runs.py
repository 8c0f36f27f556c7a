"""Runs on real scans for the book's "Real scans" part: which experiments fit a data set, and running them.

``camstudy book --real NAME=DIR`` (and ``make book-real``) names a real data
set by its manifest (``data_manifests/NAME.yaml``) and its local folder. The
experiments that fit it are those whose registry entry names that manifest as
their real data (``real_data.manifest``): IQ-OTH/NCCD feeds ``iqoth`` and
``resnet50-gradcam``, the CT-pneumonia/cancer folder ``nine-models``, a
Lung-PET-CT-Dx tree ``gradcam-3d``. Their results go to
``results/real/<experiment>/``, beside the phantom runs, and
:func:`common.report.book.assemble` turns them into pages.

Example:
    >>> from common import real_runs
    >>> real_runs.parse("iqothnccd=../shared/data/iqothnccd").experiments  # doctest: +SKIP
    ('resnet50-gradcam', 'iqoth')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import run_key
from common.config import registry
from common.errors import DataError, ParameterError
from common.report.results import results_root

# The folder under results/ that holds the real-data runs, one folder per experiment.
REAL_RESULTS = "real"


@dataclass(frozen=True)
class RealDataSet:
    """A real data set named on the command line, and the experiments that run on it.

    Attributes:
        manifest: The manifest's name (``iqothnccd``).
        data_dir: The local copy's root as given (the runs resolve it; pages show what was typed).
        experiments: The registry ids whose real data this manifest describes, in registry order.
    """

    manifest: str
    data_dir: Path
    experiments: tuple[str, ...]


def manifests_with_experiments() -> dict[str, tuple[str, ...]]:
    """Manifest name -> the experiments that name it as their real data, in registry order."""
    users: dict[str, list[str]] = {}
    for experiment_id in registry.experiment_ids():
        name = (registry.experiment(experiment_id).get("real_data") or {}).get("manifest")
        if name:
            users.setdefault(name, []).append(experiment_id)
    return {name: tuple(ids) for name, ids in users.items()}


def parse(spec: str) -> RealDataSet:
    """Read one ``NAME=DIR`` argument.

    Raises:
        ParameterError: no ``=``, or a name no experiment uses (the message lists the valid ones).
        DataError: ``DIR`` is not a folder.
    """
    name, sep, folder = spec.partition("=")
    known = manifests_with_experiments()
    if not sep or not name or not folder:
        raise ParameterError(f"--real expects NAME=DIR, e.g. iqothnccd=/data/iqothnccd; got {spec!r}.")
    if name not in known:
        raise ParameterError(f"--real: no experiment runs on {name!r}; choose one of {', '.join(sorted(known))}.")
    data_dir = Path(folder).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"--real {name}: data folder {data_dir.resolve()} does not exist.")
    return RealDataSet(name, data_dir, known[name])


def real_results_dir(results_dir: Path | None = None) -> Path:
    """``results/real``: where the real-data runs go (under ``results_dir`` when given)."""
    return (results_dir or results_root()) / REAL_RESULTS


def run(
    data_sets: Sequence[RealDataSet], profile: str, jobs: int, force: bool = False, say: Callable[[str], None] = print
) -> list:
    """Run every experiment of every data set whose run on it is missing or stale (all with ``force``).

    A run is reused only when nothing it depends on changed (:func:`common.run_key.pending`):
    a run on another folder, in another profile, or on files changed since, runs again.

    Returns:
        The :class:`common.runner.RunOutcome` of each run started, in order.
    """
    from common import runner

    outcomes = []
    for data_set in data_sets:
        say(f"real data {data_set.manifest}:")
        pending = run_key.pending(
            data_set.experiments, real_results_dir(), profile, data_set.data_dir, force=force, say=say
        )
        if pending:
            outcomes += runner.run_all(
                profile, data_set.data_dir, results_dir=real_results_dir(), experiments=pending, jobs=jobs
            )
    return outcomes
