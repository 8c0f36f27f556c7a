"""Run keys: what a finished run depended on, so it is reused exactly when none of it changed.

A run's results are only as current as its inputs. At the end of every run the
notebook's :class:`common.report.results.RunRecorder` writes, beside
``metrics.json``, a ``run_key.json`` recording a content hash of each thing the
run depended on (:func:`of_this_run`, inside the kernel, after the run):

- **notebook**: the SHA-256 of the experiment's notebook template;
- **parameters**: the resolved parameters themselves (profile, seed, data folder
  and every override included), so a difference can be named;
- **code**: the SHA-256 of every ``common`` module the kernel had imported, by file;
- **registry**: the SHA-256 of every registry part the run read (its own entry,
  ``experiments.<id>``, and each shared section such as ``test_size``), so a
  change to another experiment's entry does not touch it;
- **data**: for a real data set a listing of every file's path, size and
  modification time (and the lesion-box folder's, when given); phantoms are a
  function of the recorded code and parameters and need nothing more;
- **packages**: Python's version and that of every package the project pins.

:func:`stale_reason` recomputes the same hashes from the files as they are now
(for the modules and registry parts the run recorded) and names the first
things that differ, or returns None when the run can be reused. ``camstudy
book``, the seed sweeps (:mod:`common.seeds`) and the real-data runs
(:mod:`common.real_runs`) all decide with it; their ``--force`` runs anyway.
The key's digest (:attr:`RunKey.short`) is shown in each page's run banner.

This is the idea of a build system's content-addressed cache (a DVC stage's
``deps`` and ``params``), kept inside the study so that it knows exactly which
modules and registry parts a notebook used, which no hand-written list would.

Example:
    >>> from common import run_key
    >>> run_key.stale_reason("results/multi-organ", "multi-organ", "default")  # doctest: +SKIP
    'module common/evaluation/paired.py changed'
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.config import registry
from common.data.manifest import file_sha256, visible_files
from common.errors import DataError
from common.report.results import project_root, read_metrics, to_jsonable, write_json_atomic

if TYPE_CHECKING:
    from common.config.params import RunParams

KEY_FILE = "run_key.json"
# The installed distribution whose pinned requirements a run depends on.
DISTRIBUTION = "camstudy"
# The package whose modules a run's key hashes; their paths are recorded relative to its parent folder.
PACKAGE = "common"
# Characters of the digest shown to readers (the banner, the terminal).
SHORT = 12
# How many differences a reason names before "and N more".
NAMED_CHANGES = 3


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), default=str)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or ``"absent"`` when it does not exist."""
    return file_sha256(path) if Path(path).is_file() else "absent"


def package_root() -> Path:
    """The folder holding the ``common`` package (``src/``); module paths are recorded relative to it."""
    return Path(__file__).resolve().parents[1]


def folder_listing_digest(folder: str | Path) -> str:
    """SHA-256 of every non-hidden file's relative path, size and modification time below ``folder``.

    Cheap on a large data set (no file is read) and changed by any added, removed,
    resized or rewritten file. ``"absent"`` when the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "absent"
    lines = []
    for path in visible_files(folder):
        stat = path.stat()
        lines.append(f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return _sha256_text("\n".join(lines))


def pinned_packages() -> dict[str, str]:
    """Python's version and the installed version of every package the project requires (extras left out)."""
    found = {"python": platform.python_version()}
    for requirement in metadata.requires(DISTRIBUTION) or []:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0].split("[")[0]
        for separator in ("==", ">=", "<=", "~=", "!=", ">", "<"):
            name = name.split(separator)[0]
        name = name.strip()
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def expected_parameters(
    experiment_id: str,
    profile: str,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters a run of these arguments gets, as ``metrics.json`` and the key record them.

    The runner hands the notebook absolute data and lesion-box folders; so does this.

    Raises:
        ParameterError: for an unknown experiment, profile or parameter.
    """
    overrides = dict(overrides or {})
    if overrides.get("annotations") is not None:
        overrides["annotations"] = str(Path(overrides["annotations"]).expanduser().resolve())
    data_path = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    params = registry.resolve(experiment_id, profile, overrides, data_path)
    return json.loads(_canonical(params.as_dict()))


def _data_digests(parameters: Mapping[str, Any]) -> dict[str, str]:
    """Listing digests of the run's real data folder and lesion-box folder (none for phantoms)."""
    found = {}
    for name in ("data_dir", "annotations"):
        folder = parameters.get(name)
        if folder:
            found[name] = folder_listing_digest(folder)
    return found


@dataclass(frozen=True)
class RunKey:
    """Everything one run depended on, each as a content hash (parameters as themselves).

    Attributes:
        experiment: Registry id of the experiment.
        notebook: SHA-256 of its notebook template.
        parameters: The resolved parameters (``RunParams.as_dict`` as JSON reads it back).
        code: ``common/...py`` path -> SHA-256, every module of the package the run imported.
        registry: Registry part -> SHA-256 of its values, every part the run read.
        data: ``data_dir`` / ``annotations`` -> listing digest, for real data; empty for phantoms.
        packages: Python's and each pinned package's version.
    """

    experiment: str
    notebook: str
    parameters: Mapping[str, Any]
    code: Mapping[str, str] = field(default_factory=dict)
    registry: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    packages: Mapping[str, str] = field(default_factory=dict)

    def _content(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "notebook": self.notebook,
            "parameters": dict(self.parameters),
            "code": dict(sorted(self.code.items())),
            "registry": dict(sorted(self.registry.items())),
            "data": dict(sorted(self.data.items())),
            "packages": dict(sorted(self.packages.items())),
        }

    @property
    def digest(self) -> str:
        """SHA-256 of the whole key: equal digests, equal dependencies."""
        return _sha256_text(_canonical(self._content()))

    @property
    def short(self) -> str:
        """The digest's first characters, as the book's run banner shows it."""
        return self.digest[:SHORT]

    def record(self) -> dict[str, Any]:
        """The key as ``run_key.json`` holds it: its digest, then every part."""
        return {"key": self.digest, **self._content()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunKey:
        """The key a ``run_key.json`` record describes."""
        return cls(
            experiment=str(record["experiment"]),
            notebook=str(record["notebook"]),
            parameters=dict(record["parameters"]),
            code=dict(record.get("code", {})),
            registry=dict(record.get("registry", {})),
            data=dict(record.get("data", {})),
            packages=dict(record.get("packages", {})),
        )

    def changes(self, now: RunKey) -> list[str]:
        """What differs in ``now`` from this (recorded) key, one phrase each, most telling first."""
        found = []
        if now.experiment != self.experiment:
            found.append(f"experiment {self.experiment} -> {now.experiment}")
        if now.parameters.get("profile") != self.parameters.get("profile"):
            found.append(f"profile {self.parameters.get('profile')}, not {now.parameters.get('profile')}")
        for name in sorted(set(self.parameters) | set(now.parameters)):
            if name != "profile" and self.parameters.get(name) != now.parameters.get(name):
                found.append(f"parameter {name} {self.parameters.get(name)!r} -> {now.parameters.get(name)!r}")
        if now.notebook != self.notebook:
            found.append("notebook changed")
        found += _changed("module", self.code, now.code)
        found += _changed("registry", self.registry, now.registry)
        found += _changed("data", self.data, now.data)
        for name in sorted(set(self.packages) | set(now.packages)):
            if self.packages.get(name) != now.packages.get(name):
                found.append(f"{name} {self.packages.get(name)} -> {now.packages.get(name)}")
        return found


def _changed(kind: str, recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """``<kind> <name> changed`` (or removed) for each entry whose digest differs."""
    return [
        f"{kind} {name} {'removed' if now.get(name) == 'absent' else 'changed'}"
        for name in sorted(recorded)
        if now.get(name) != recorded[name]
    ]


def notebook_digest(experiment_id: str) -> str:
    """SHA-256 of the experiment's notebook template (the registry names it)."""
    return file_digest(project_root() / registry.experiment(experiment_id)["notebook"])


def imported_modules() -> dict[str, str]:
    """``common/...py`` path -> SHA-256 of every module of the package this process has imported."""
    root = package_root()
    found = {}
    for name, module in list(sys.modules.items()):
        if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
            continue
        source = getattr(module, "__file__", None)
        if not source:
            continue
        path = Path(source).resolve()
        if path.is_relative_to(root):
            found[path.relative_to(root).as_posix()] = file_digest(path)
    return found


def of_this_process(experiment: str, parameters: Mapping[str, Any], notebook: str = "") -> RunKey:
    """The key of what this process did: its imported modules, the registry parts it read, the packages.

    Args:
        experiment: What ran (a registry id, or ``bench``).
        parameters: Its parameters as JSON-ready values.
        notebook: The digest of its notebook; empty for work that has none.
    """
    parameters = json.loads(_canonical(parameters))
    return RunKey(
        experiment=experiment,
        notebook=notebook,
        parameters=parameters,
        code=imported_modules(),
        registry={name: registry.part_digest(name) for name in registry.parts_read()},
        data=_data_digests(parameters),
        packages=pinned_packages(),
    )


def of_this_run(params: RunParams) -> RunKey:
    """The key of the run in this process (inside the notebook's kernel, as the run ends).

    Args:
        params: The run's parameters.
    """
    notebook = notebook_digest(params.experiment)  # reads the experiment's registry entry, so it is recorded
    return of_this_process(params.experiment, params.as_dict(), notebook)


def now_of(recorded: RunKey, experiment: str, parameters: Mapping[str, Any], notebook: str = "") -> RunKey:
    """The key the same work would have today: ``recorded``'s modules and registry parts hashed as they are now."""
    parameters = json.loads(_canonical(parameters))
    root = package_root()
    return RunKey(
        experiment=experiment,
        notebook=notebook,
        parameters=parameters,
        code={path: file_digest(root / path) for path in recorded.code},
        registry={name: registry.part_digest(name) for name in recorded.registry},
        data=_data_digests(parameters),
        packages=pinned_packages(),
    )


def now_for(
    recorded: RunKey,
    experiment_id: str,
    profile: str,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunKey:
    """The key a run of these arguments would have today, over the modules and registry parts ``recorded`` used.

    Raises:
        ParameterError: for an unknown experiment, profile or parameter.
    """
    parameters = expected_parameters(experiment_id, profile, data_dir, overrides)
    return now_of(recorded, experiment_id, parameters, notebook_digest(experiment_id))


def changes_reason(recorded: RunKey | None, now: RunKey | None) -> str | None:
    """The first few changes from ``recorded`` to ``now`` as one phrase; None when there are none."""
    if recorded is None or now is None:
        return "the run recorded no key (made before keys were recorded)"
    changes = recorded.changes(now)
    if not changes:
        return None
    more = len(changes) - NAMED_CHANGES
    return "; ".join(changes[:NAMED_CHANGES]) + (f"; and {more} more" if more > 0 else "")


def write(key: RunKey, run_dir: str | Path, name: str = KEY_FILE) -> Path:
    """Write the key as ``run_dir/name`` (``run_key.json``)."""
    return write_json_atomic(Path(run_dir) / name, key.record())


def read(run_dir: str | Path, name: str = KEY_FILE) -> RunKey | None:
    """The key recorded as ``run_dir/name``, or None when there is none or it cannot be read."""
    path = Path(run_dir) / name
    try:
        return RunKey.from_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stale_reason(
    run_dir: str | Path,
    experiment_id: str,
    profile: str,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> str | None:
    """Why the run in ``run_dir`` cannot stand for a run of these arguments today; None: reuse it.

    A run is reused only when it finished (a readable ``metrics.json``), recorded a
    key, and every part of that key is the same today.

    Raises:
        ParameterError: for an unknown experiment, profile or parameter.
    """
    run_dir = Path(run_dir)
    try:
        read_metrics(run_dir / "metrics.json")
    except DataError:
        return "no finished run"
    recorded = read(run_dir)
    now = None if recorded is None else now_for(recorded, experiment_id, profile, data_dir, overrides)
    return changes_reason(recorded, now)


def pending(
    experiment_ids: Sequence[str],
    results_dir: str | Path,
    profile: str,
    data_dir: str | Path | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> list[str]:
    """The experiments whose runs under ``results_dir`` must run (again), saying of each why or that it is reused.

    Args:
        experiment_ids: The experiments wanted.
        results_dir: The folder holding ``<id>/`` run folders.
        profile: The profile wanted.
        data_dir: The real data set's folder, or None for phantoms.
        force: Run every one, whatever its key.
        say: Where the one line per experiment goes.
    """
    stale = []
    for experiment_id in experiment_ids:
        run_dir = Path(results_dir) / experiment_id
        reason = "--force" if force else stale_reason(run_dir, experiment_id, profile, data_dir)
        if reason is None:
            shown = recorded.short if (recorded := read(run_dir)) else "?"
            say(f"{experiment_id}: reused, nothing it depends on changed (run key {shown})")
        else:
            say(f"{experiment_id}: runs ({reason})")
            stale.append(experiment_id)
    return stale
