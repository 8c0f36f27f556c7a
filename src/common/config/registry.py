"""The study's registry: experiments, profiles and paper claims, read from YAML.

Everything that names an experiment, a class, a profile or a paper number is
read from ``registry.yaml`` beside this module, so code and notebooks never
repeat it (the MedMNIST ``info.py`` idea).

Example:
    >>> from common.config import registry
    >>> params = registry.resolve("iqoth", "smoke", {"epochs": 2})
    >>> params.epochs
    2
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import yaml

from common.errors import ParameterError

if TYPE_CHECKING:
    from common.config.params import (
        Gradcam3dParams,
        IqothParams,
        MultiOrganParams,
        NineModelsParams,
        ResNet50GradCamParams,
        RunParams,
    )

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
PROFILES = ("smoke", "default", "paper")
# The parts of the registry this process has read (``experiments.<id>`` or a top-level section):
# a run's key (common.run_key) depends on exactly these.
_READ: set[str] = set()


@functools.lru_cache(maxsize=1)
def _load() -> dict:
    with open(REGISTRY_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def experiment_ids() -> list[str]:
    """Return every experiment id, in the registry's order."""
    return list(_load()["experiments"])


def profile_descriptions() -> dict[str, str]:
    """Return ``{profile: one-line description}``."""
    _READ.add("profiles")
    return dict(_load()["profiles"])


def experiment(experiment_id: str) -> dict:
    """Return a deep copy of one experiment's registry entry.

    Raises:
        ParameterError: for an unknown id, listing the known ones.
    """
    experiments = _load()["experiments"]
    if experiment_id not in experiments:
        raise ParameterError(f"Unknown experiment {experiment_id!r}; choose one of {', '.join(experiments)}.")
    _READ.add(f"experiments.{experiment_id}")
    entry = copy.deepcopy(experiments[experiment_id])
    entry["id"] = experiment_id
    return entry


def section(name: str) -> dict:
    """Return a deep copy of one top-level section of the registry (``backbones``, ...).

    Raises:
        ParameterError: for a section the registry does not have.
    """
    registry = _load()
    if name not in registry:
        raise ParameterError(f"The registry has no section {name!r}; it has {', '.join(registry)}.")
    _READ.add(name)
    return copy.deepcopy(registry[name])


def parts_read() -> list[str]:
    """The registry parts this process has read so far, sorted (``experiments.<id>`` or a section name)."""
    return sorted(_READ)


def part_digest(name: str) -> str:
    """SHA-256 of one registry part (``experiments.<id>`` or a top-level section) as canonical JSON.

    Comments and layout do not count; a changed value does. A part the registry no
    longer has digests as ``"absent"``.
    """
    registry = _load()
    top, _, experiment_id = name.partition(".")
    if experiment_id:
        part = registry.get(top, {}).get(experiment_id)
    else:
        part = registry.get(name)
    if part is None:
        return "absent"
    text = json.dumps(part, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def paper_claims(experiment_id: str) -> dict:
    """Return the paper's claims of one experiment (``models``, ``source``, ...)."""
    return experiment(experiment_id).get("paper_claims", {})


def parse_value(text: str) -> Any:
    """Parse a command-line value the way YAML would (``3`` -> int, ``[a, b]`` -> list)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        # YAML 1.1 reads on/off/yes/no as booleans; keep the word, so a switch such as
        # gpu_speedups=off stays a string (a boolean parameter accepts the words too).
        return text.strip()
    if isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no dot) as a string; a user means a number.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["epochs=3", "weights=imagenet"]`` into a dict of parsed values.

    Raises:
        ParameterError: for a pair without ``=``.
    """
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ParameterError(f"Parameter {pair!r} is not of the form name=value.")
        overrides[name.strip()] = parse_value(value)
    return overrides


@overload
def resolve(
    experiment_id: Literal["resnet50-gradcam"],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> ResNet50GradCamParams: ...


@overload
def resolve(
    experiment_id: Literal["nine-models"],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> NineModelsParams: ...


@overload
def resolve(
    experiment_id: Literal["multi-organ"],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> MultiOrganParams: ...


@overload
def resolve(
    experiment_id: Literal["iqoth"],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> IqothParams: ...


@overload
def resolve(
    experiment_id: Literal["gradcam-3d"],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> Gradcam3dParams: ...


@overload
def resolve(
    experiment_id: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> RunParams: ...


def resolve(
    experiment_id: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> RunParams:
    """Resolve an experiment and profile (plus overrides) into its typed, validated parameters.

    The one entry point code and notebooks call; the parameter classes and
    their validation live in :mod:`common.config.params`.

    Args:
        experiment_id: One of :func:`experiment_ids`.
        profile: ``smoke``, ``default`` or ``paper``.
        overrides: Single parameters to change; each must be a known parameter
            of the experiment and match its type.
        data_dir: A real data set's root; ``None`` means the embedded phantoms.

    Returns:
        The experiment's frozen :class:`common.config.params.RunParams`
        subclass (``P.epochs``; ``P.as_dict()`` for a plain dict). A literal
        experiment id gives type checkers that subclass (``resolve("iqoth", ...)``
        is an :class:`~common.config.params.IqothParams`).

    Raises:
        ParameterError: unknown experiment, profile or parameter, or a wrong type.
    """
    from common.config import params  # params reads this module's registry

    return params.from_registry(experiment_id, profile, overrides, data_dir)
