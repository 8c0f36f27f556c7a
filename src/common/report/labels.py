"""What a run is, said plainly: the line that opens its page, and whether its numbers can meet the paper's.

A run's numbers can be set against a paper's claims only when the run did what
the paper did: the ``paper`` profile (the paper's settings) on the real data set
the registry names for the experiment (``real_data.manifest``). A phantom run
shows that the pipeline works; its accuracy is another quantity than the
paper's accuracy on real scans, so no claim is "inside" or "outside" its interval.
:class:`Comparability` says which case a run is, :func:`run_label` says in one
sentence what ran, and :func:`comparable_with_paper` answers yes or no.

Example:
    >>> record = {"experiment": "iqoth", "profile": "smoke", "parameters": {"data_dir": None, "weights": None},
    ...           "data": {"source": "phantoms/chest (chest_48)"}}
    >>> comparable_with_paper(record)
    False
    >>> print(run_label(record))  # doctest: +ELLIPSIS
    **What ran:** the `smoke` profile on the phantom set `phantoms/chest`, random weights ...; not comparable with ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from common.config import registry

# The profile that sets the paper's own settings (registry.PROFILES).
PAPER_PROFILE = "paper"
# The value of the ``weights`` parameter that loads ImageNet weights (else a weights file, or None: random).
IMAGENET = "imagenet"
# Why a run cannot be compared with its paper, in short (a table cell reads "not comparable (phantoms)").
PHANTOMS = "phantoms"
OTHER_DATA = "not the paper's data set"
OTHER_SETTINGS = "not the paper's settings"
# The same reasons as a page's opening line says them.
EXPLANATIONS = {
    PHANTOMS: "phantoms: demonstrates the pipeline, not the paper's numbers",
    OTHER_DATA: "real data but not the paper's data set",
    OTHER_SETTINGS: "real data but not the paper's settings",
}
COMPARABLE_TEXT = "comparable with the paper's numbers (the paper's settings on the experiment's real data set)"


@dataclass(frozen=True)
class Comparability:
    """Whether a run's numbers can be set against its paper's claims, and why not.

    Attributes:
        comparable: True only for the ``paper`` profile on the experiment's real data set.
        reason: Why not, in short (:data:`PHANTOMS`, :data:`OTHER_DATA`, :data:`OTHER_SETTINGS`);
            None when comparable.
    """

    comparable: bool
    reason: str | None = None

    @property
    def sentence(self) -> str:
        """The clause of :func:`run_label` that says whether the numbers can meet the paper's."""
        if self.comparable:
            return COMPARABLE_TEXT
        return f"not comparable with the paper ({EXPLANATIONS.get(self.reason or '', self.reason)})"

    def record(self) -> dict[str, Any]:
        """``{"comparable": ..., "reason": ...}``, as each paper-vs-run row of ``metrics.json`` carries it."""
        return {"comparable": self.comparable, "reason": self.reason}


def paper_manifest(experiment_id: str) -> str | None:
    """The manifest of the real data set the registry names for an experiment (None when it names none)."""
    return (registry.experiment(experiment_id).get("real_data") or {}).get("manifest")


def comparability(experiment_id: str, profile: str, data_dir: str | None, manifest: str | None) -> Comparability:
    """Whether a run with these settings can be compared with its paper.

    Args:
        experiment_id: The experiment's id in the registry.
        profile: The run's profile.
        data_dir: The real data set's root, or None for phantoms.
        manifest: The manifest of the run's real data set (``phantoms`` or None for phantoms).
    """
    if not data_dir:
        return Comparability(False, PHANTOMS)
    if manifest != paper_manifest(experiment_id):
        return Comparability(False, OTHER_DATA)
    if profile != PAPER_PROFILE:
        return Comparability(False, OTHER_SETTINGS)
    return Comparability(True)


def _source_name(metrics: Mapping[str, Any]) -> str | None:
    """The data's name of a record's ``data.source`` (``"phantoms/chest"``), without the folder."""
    source = (metrics.get("data") or {}).get("source")
    return source.split(" (")[0] if source else None


def _on_real_data(metrics: Mapping[str, Any]) -> bool:
    """True when the run read a real data set: its ``data_dir`` is set.

    A record without ``data_dir`` or ``data_source`` (an old or partial one) is read
    from its ``data.source``: phantom sources start with ``phantoms``.
    """
    params = metrics.get("parameters") or {}
    if "data_dir" in params or "data_source" in params:
        return bool(params.get("data_dir")) or params.get("data_source") == "real_data"
    name = _source_name(metrics)
    return bool(name) and not str(name).startswith(PHANTOMS)


def run_comparability(metrics: Mapping[str, Any]) -> Comparability:
    """:func:`comparability` of a run from its ``metrics.json`` record.

    Args:
        metrics: The record (``experiment``, ``profile``, ``parameters``'s ``data_dir`` and ``manifest``).
    """
    params = metrics.get("parameters") or {}
    real = _on_real_data(metrics)
    return comparability(
        str(metrics.get("experiment")),
        str(metrics.get("profile")),
        params.get("data_dir") or ("real" if real else None),
        params.get("manifest") or (_source_name(metrics) if real else None),
    )


def comparable_with_paper(metrics: Mapping[str, Any]) -> bool:
    """True when a run's numbers can be compared with its paper's: the ``paper`` profile on the paper's real data.

    Args:
        metrics: A ``metrics.json`` record.
    """
    return run_comparability(metrics).comparable


def _weights_text(weights: Any) -> str:
    """The run's starting weights: ImageNet, a weights file (its name), or random."""
    if not weights:
        return "random weights (trained from scratch)"
    if str(weights).lower() == IMAGENET:
        return "ImageNet weights"
    return f"weights from `{PurePath(str(weights)).name}`"


def _data_text(metrics: Mapping[str, Any]) -> str:
    """The run's data: the phantom set, or the real data set by its manifest."""
    params = metrics.get("parameters") or {}
    name = _source_name(metrics)
    if _on_real_data(metrics):
        return f"the real data set `{params.get('manifest') or name or '?'}`"
    return f"the phantom set `{name}`" if name else "phantoms"


def run_label(metrics: Mapping[str, Any]) -> str:
    """One Markdown sentence that says exactly what ran: profile, data, weights, and whether it meets the paper.

    Args:
        metrics: A ``metrics.json`` record (``experiment``, ``profile``, ``data.source``,
            ``parameters``'s ``data_dir``, ``manifest`` and ``weights``; an experiment without
            a ``weights`` parameter trains from scratch).

    Returns:
        E.g. "**What ran:** the `default` profile on the phantom set `phantoms/chest`, random weights
        (trained from scratch), trained in bfloat16 and evaluated in float32; not comparable with the
        paper (phantoms: demonstrates the pipeline, not the paper's numbers)."
    """
    weights = (metrics.get("parameters") or {}).get("weights")
    return (
        f"**What ran:** the `{metrics.get('profile', '?')}` profile on {_data_text(metrics)}, "
        f"{_weights_text(weights)}{_precision_text(metrics)}; {run_comparability(metrics).sentence}."
    )


def _precision_text(metrics: Mapping[str, Any]) -> str:
    """How the run trained when not in float32 (``runtime.precision``), e.g. ", trained in bfloat16 ..."."""
    trained_in = (metrics.get("runtime") or {}).get("precision", "float32")
    return "" if trained_in == "float32" else f", trained in {trained_in} and evaluated in float32"
