"""The study's registry: experiments, profiles and paper claims, read from YAML.

Everything that names an experiment, a class, a profile or a paper number is
read from ``registry.yaml`` beside this module, so code and notebooks never
repeat it (the MedMNIST ``info.py`` idea).

Example:
    >>> from common.config import registry
    >>> params = registry.resolve("iqoth", "smoke", {"epochs": 2})
    >>> params["epochs"]
    2
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping

import yaml

from common.errors import ParameterError

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
PROFILES = ("smoke", "default", "paper")


@functools.lru_cache(maxsize=1)
def _load() -> dict:
    with open(REGISTRY_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def experiment_ids() -> list[str]:
    """Return every experiment id, in the registry's order."""
    return list(_load()["experiments"])


def profile_descriptions() -> dict[str, str]:
    """Return ``{profile: one-line description}``."""
    return dict(_load()["profiles"])


def experiment(experiment_id: str) -> dict:
    """Return a deep copy of one experiment's registry entry.

    Raises:
        ParameterError: for an unknown id, listing the known ones.
    """
    experiments = _load()["experiments"]
    if experiment_id not in experiments:
        raise ParameterError(
            f"Unknown experiment {experiment_id!r}; choose one of {', '.join(experiments)}."
        )
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
    return copy.deepcopy(registry[name])


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


# The words YAML 1.1 reads as booleans, besides true and false (see parse_value).
YAML_BOOLEAN_WORDS = {"on": True, "yes": True, "off": False, "no": False}


def _check_type(name: str, value: Any, reference: Any) -> Any:
    """Return ``value`` if it fits the registry's value for ``name``, else raise.

    ``None`` is allowed wherever the registry's value can be ``None`` in some
    profile; an int is accepted for a float parameter.
    """
    if reference is None or value is None:
        return value
    if isinstance(reference, bool):
        if isinstance(value, str) and value.lower() in YAML_BOOLEAN_WORDS:
            value = YAML_BOOLEAN_WORDS[value.lower()]
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(reference, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(reference, dict):
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ParameterError(
            f"Parameter {name!r} expects a {type(reference).__name__} like {reference!r}, "
            f"got {value!r}."
        )
    return value


def resolve(
    experiment_id: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Resolve an experiment and profile (plus overrides) into its full parameters.

    Args:
        experiment_id: One of :func:`experiment_ids`.
        profile: ``smoke``, ``default`` or ``paper``.
        overrides: Single parameters to change; each must be a known parameter
            of the experiment and match its type.
        data_dir: A real data set's root; ``None`` means the embedded phantoms.

    Returns:
        A plain dict: every parameter, plus ``experiment``, ``profile``,
        ``data_dir``, ``task``, ``classes``, ``positive`` and ``label_map``
        (the folder-to-label map of the data actually used).

    Raises:
        ParameterError: unknown experiment, profile or parameter, or a wrong type.
    """
    entry = experiment(experiment_id)
    if profile not in PROFILES:
        raise ParameterError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    base = entry["parameters"]
    params = dict(base)
    profile_values = entry["profiles"].get(profile) or {}
    # A parameter may be None in the base and set in a profile: its type is the profile's.
    types = {name: value for name, value in base.items()}
    for values in entry["profiles"].values():
        for name, value in (values or {}).items():
            if types.get(name) is None:
                types[name] = value
    params.update(profile_values)
    for name, value in (overrides or {}).items():
        if name not in base:
            raise ParameterError(
                f"Unknown parameter {name!r} for {experiment_id}; known: {', '.join(sorted(base))}."
            )
        params[name] = _check_type(name, value, types[name])

    source = "real_data" if data_dir is not None else "phantoms"
    params.update(
        experiment=experiment_id,
        profile=profile,
        data_dir=None if data_dir is None else str(data_dir),
        data_source=source,
        task=entry["task"],
        classes=list(entry["classes"]),
        positive=entry.get("positive"),
        # An experiment may declare a label_map parameter so a user can map other folder names.
        label_map=params.get("label_map") or entry[source].get("label_map"),
        manifest=entry["real_data"].get("manifest") if source == "real_data" else "phantoms",
    )
    if source == "phantoms":
        params["phantom_kind"] = entry["phantoms"]["kind"]
        params["phantom_classes"] = list(entry["phantoms"]["classes"])
    return params
