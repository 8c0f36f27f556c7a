"""Where each setting of an experiment's ``paper`` profile comes from.

A reader comparing a notebook with its paper needs to know which settings are
the paper's and which this study had to choose. The registry marks every
parameter of every experiment: ``paper`` (the paper's text says so, and where),
``authors_code`` (the authors' public code, where the paper is silent) or
``chosen_here`` (with the reason). Each experiment's own ``provenance`` entries
come first; parameters every experiment has the same way (the seed, the
bootstrap, this study's audits and explanation scores, execution switches)
take theirs from the registry's ``provenance_shared``.

A notebook shows them in its parameter table
(:meth:`common.experiments.session.Session.parameters_table`), after
``provenance.of(P).summary()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.config import registry
from common.errors import ParameterError

if TYPE_CHECKING:
    from common.config.params import RunParams

#: The sources a setting may come from, with the label the parameter table shows for each.
SOURCES: dict[str, str] = {
    "paper": "the paper",
    "authors_code": "the authors' code",
    "chosen_here": "chosen here",
}


@dataclass(frozen=True)
class Setting:
    """One parameter: its paper-profile value, this run's value and where the former comes from.

    Attributes:
        name: The parameter's name in the registry.
        paper_value: Its value in the ``paper`` profile.
        run_value: Its value in the run being described.
        source: A key of :data:`SOURCES`.
        note: Where in the paper, or why it was chosen here (one line).
    """

    name: str
    paper_value: Any
    run_value: Any
    source: str
    note: str

    @property
    def differs(self) -> bool:
        """Whether this run's value is not the paper profile's."""
        return bool(self.run_value != self.paper_value)


@dataclass(frozen=True)
class Provenance:
    """The provenance of every parameter of one experiment, beside one run's values.

    Attributes:
        experiment: The experiment's id.
        profile: The profile of the run described.
        settings: One :class:`Setting` per parameter, in the registry's order.
    """

    experiment: str
    profile: str
    settings: tuple[Setting, ...]

    def of_source(self, source: str) -> list[Setting]:
        """The settings from one source (a key of :data:`SOURCES`), in the registry's order."""
        return [setting for setting in self.settings if setting.source == source]

    def summary(self) -> str:
        """One paragraph: how many settings come from where, and how many this run changes."""
        count = {source: len(self.of_source(source)) for source in SOURCES}
        from_paper = ", ".join(f"`{s.name}`" for s in self.of_source("paper")) or "none"
        text = (
            f"Of the {len(self.settings)} settings of this experiment's `paper` profile, {count['paper']} come "
            f"from the paper, {count['authors_code']} from the authors' code and {count['chosen_here']} were "
            f"chosen here (the table says where, or why). From the paper: {from_paper}."
        )
        changed = [s for s in self.settings if s.differs]
        if not changed:
            return text + f" This run (`{self.profile}` profile) uses the paper profile's value of every one."
        return (
            text + f" This run (`{self.profile}` profile) differs from the paper profile in {len(changed)} of "
            f"them: {', '.join(f'`{s.name}`' for s in changed)}."
        )


def entries(experiment_id: str) -> dict[str, dict[str, str]]:
    """The provenance entry of every parameter the registry gives one experiment.

    Returns:
        ``{parameter: {"source": ..., "note": ...}}`` in the registry's parameter order; the
        experiment's own entry where it has one, else the shared one.

    Raises:
        ParameterError: for a parameter without an entry, an entry naming no parameter of the
            experiment, an unknown source or an empty note.
    """
    experiment = registry.experiment(experiment_id)
    own = experiment.get("provenance", {})
    shared = registry.section("provenance_shared")
    parameters = list(experiment["parameters"])
    stale = sorted(set(own) - set(parameters))
    if stale:
        raise ParameterError(f"{experiment_id}: provenance for parameters it does not have: {', '.join(stale)}.")
    missing = [name for name in parameters if name not in own and name not in shared]
    if missing:
        raise ParameterError(f"{experiment_id}: no provenance for {', '.join(missing)} (registry.yaml).")
    found = {name: own.get(name, shared.get(name)) for name in parameters}
    for name, entry in found.items():
        if entry.get("source") not in SOURCES or not str(entry.get("note", "")).strip():
            raise ParameterError(
                f"{experiment_id}: the provenance of {name} needs a source ({', '.join(SOURCES)}) and a note; "
                f"it has {entry}."
            )
    return found


def of(params: RunParams) -> Provenance:
    """The provenance of every parameter of a run's experiment, beside the run's own values."""
    found = entries(params.experiment)
    paper = registry.resolve(params.experiment, "paper").as_dict()
    run = params.as_dict()
    settings = tuple(
        Setting(name, paper[name], run[name], entry["source"], entry["note"]) for name, entry in found.items()
    )
    return Provenance(params.experiment, params.profile, settings)


def shown(value: Any) -> str:
    """A parameter value as a table shows it (``null`` as in the registry)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}" if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)
