"""The paper beside the run: its claims under this run's model names, and the paper-vs-run rows.

The registry holds each paper's reported numbers (``paper_claims``); a run
states, for every paper model it has a counterpart of, the paper's number, its
own with the 95% interval and the difference (:func:`compare` ->
:class:`PaperComparison`). Whether the claim is inside the interval is stated
only for a run comparable with the paper, the ``paper`` profile on the
experiment's real data set (:func:`common.report.labels.comparability`); the
rows of any other run say that it is not comparable, and why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from common.config import registry
from common.config.params import RunParams
from common.errors import DataError
from common.report.labels import PHANTOMS, Comparability, comparability


def run_comparability(params: RunParams) -> Comparability:
    """Whether a run with these parameters can be compared with its paper (see :mod:`common.report.labels`)."""
    return comparability(params.experiment, params.profile, params.data_dir, params.manifest)


def paper_rows(
    params: RunParams,
    models_metrics: dict,
    data: Mapping[str, str] | None = None,
    on_phantoms: Collection[str] = (),
) -> tuple[dict, list[dict]]:
    """The paper's claims (under this run's model names) and the paper-vs-run rows.

    Args:
        params: Run parameters (``experiment``, and what :func:`run_comparability` reads).
        models_metrics: This run's model name -> its test metrics.
        data: This run's model name -> the data set it was tested on, for models tested on
            other data than the run's own (e.g. volumes beside slices); their rows say so.
        on_phantoms: Models tested on phantoms whatever data the run reads (e.g. Table I's 3D
            rows on phantom volumes): their rows are never comparable (reason :data:`~common.report.labels.PHANTOMS`).

    Returns:
        ``(paper, rows)``: ``paper`` maps each paper model name to its claimed
        metrics; ``rows`` are :func:`common.evaluation.tables.paper_vs_run` rows for the
        paper models this run has a counterpart of (``run_model_for`` in the registry),
        in the paper's order, each naming its paper model (``paper_model``).
        Each row carries ``comparable`` and ``reason`` (:func:`run_comparability`);
        ``paper_inside_ci`` is True or False in a comparable run and None otherwise.
        A model of ``data`` has its rows' ``data`` set.
    """
    from common.evaluation import tables

    claims = registry.paper_claims(params.experiment)
    paper = claims.get("models", {})
    mapping = claims.get("run_model_for") or {name: name for name in paper}
    pairs = {
        paper_name: mapping[paper_name]
        for paper_name in paper
        if paper_name in mapping and mapping[paper_name] in models_metrics
    }
    if not pairs:
        return paper, []
    against = run_comparability(params)
    table = tables.paper_vs_run(
        {run_name: paper[paper_name] for paper_name, run_name in pairs.items()},
        {run_name: models_metrics[run_name] for run_name in pairs.values()},
        comparable=against.comparable,
        reason=against.reason,
    )
    paper_model = {run_name: paper_name for paper_name, run_name in pairs.items()}
    rows = []
    for row in table.to_dict("records"):
        judged = Comparability(False, PHANTOMS) if row["model"] in on_phantoms else against
        rows.append(
            {
                "model": row["model"],
                "paper_model": paper_model[row["model"]],
                **({"data": data[row["model"]]} if data and row["model"] in data else {}),
                "metric": row["metric"],
                "paper": row["paper"],
                "this_run": row["this_run"],
                "ci95": [row["ci95_low"], row["ci95_high"]],
                "difference": row["difference"],
                "paper_inside_ci": None
                if row["paper_inside_ci"] is None or not judged.comparable
                else bool(row["paper_inside_ci"]),
                **judged.record(),
            }
        )
    return paper, rows


@dataclass(frozen=True)
class PaperComparison:
    """A paper's claims beside a run's metrics.

    Attributes:
        paper: Paper model name -> its claimed metrics (``metrics.json``'s ``paper``).
        rows: The paper-vs-run rows (``metrics.json``'s ``paper_vs_run``), empty when
            the run has no counterpart of a paper model.
        source: Where the claims come from (the registry's ``source``).
        comparability: Whether the run can be compared with the paper, and why not.
    """

    paper: dict
    rows: list[dict]
    source: str
    comparability: Comparability

    def table(self, sizes: Mapping[str, str | None] | None = None) -> pd.DataFrame:
        """The rows with an "inside CI" column (:func:`~common.evaluation.tables.paper_beside_run`).

        Args:
            sizes: Model -> its test set's size (:func:`~common.evaluation.tables.sample_size`),
                for a first column ``n``; None: no such column.

        Without rows, the claims alone (one row per paper model).
        """
        from common.evaluation import tables

        return tables.paper_beside_run(self.rows, sizes) if self.rows else pd.DataFrame(self.paper).T


def compare(
    params: RunParams, models_metrics: dict, data: Mapping[str, str] | None = None, on_phantoms: Collection[str] = ()
) -> PaperComparison:
    """:func:`paper_rows` of the run's models, with the claims' source.

    Args:
        params: Run parameters (``experiment``).
        models_metrics: Model name -> its test metrics.
        data: Model name -> the data set it was tested on, for models tested on other data
            than the run's own (see :func:`paper_rows`).
        on_phantoms: Models tested on phantoms whatever the run's data (see :func:`paper_rows`).
    """
    paper, rows = paper_rows(params, models_metrics, data, on_phantoms)
    return PaperComparison(paper, rows, registry.paper_claims(params.experiment)["source"], run_comparability(params))


# ---------------------------------------------------------------- the paper's own numbers, checked against each other


# How the consistency note names a metric.
METRIC_NAMES = {"f1": "F1", "auc": "AUC"}


def _half_unit(value: float | int) -> float:
    """Half the last printed digit of a reported number: how far rounding may have moved it (0.5 for 84)."""
    if isinstance(value, int):
        return 0.5
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10.0**-decimals


def _harmonic(precision: float, recall: float) -> float:
    """F1 of a precision and a recall (their harmonic mean); 0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _number(value: float | int) -> str:
    """A reported number as the paper prints it (84, 97.3)."""
    return str(value)


@dataclass(frozen=True)
class Inconsistency:
    """Numbers of a paper that cannot all be true.

    Attributes:
        kind: ``"f1"`` (an F1 that is not the harmonic mean of the precision and recall beside it)
            or ``"same_network"`` (rows of one network that report different numbers).
        models: The paper's rows concerned.
        text: One Markdown sentence that says what and why, with the numbers.
    """

    kind: str
    models: tuple[str, ...]
    text: str


def f1_inconsistencies(models: Mapping[str, Mapping[str, float | int]]) -> list[Inconsistency]:
    """Rows whose F1 cannot come from the precision and recall printed beside it.

    F1 is the harmonic mean of precision and recall, so it lies between them (nearer the
    smaller). Every printed number may be off by half its last digit; a row is flagged only
    when no values within that rounding fit together: its F1, give or take half a digit, misses
    the range of harmonic means of its precision and recall, each give or take half a digit.

    Args:
        models: Paper model -> claimed metrics (the registry's ``paper_claims.models``); rows
            without all of ``precision``, ``recall`` and ``f1`` are skipped.

    Returns:
        One :class:`Inconsistency` per flagged row, in the rows' order.
    """
    found = []
    for model, claims in models.items():
        if not {"precision", "recall", "f1"} <= set(claims):
            continue
        precision, recall, f1 = claims["precision"], claims["recall"], claims["f1"]
        low = _harmonic(precision - _half_unit(precision), recall - _half_unit(recall))
        high = _harmonic(precision + _half_unit(precision), recall + _half_unit(recall))
        if low <= f1 + _half_unit(f1) and f1 - _half_unit(f1) <= high:
            continue
        side = "above" if f1 > high else "below"
        where = (
            f"{side} both"
            if (f1 > max(precision, recall) or f1 < min(precision, recall))
            else f"{side} what they allow"
        )
        found.append(
            Inconsistency(
                "f1",
                (model,),
                f"**{model}**: F1 {_number(f1)} is {where} of its precision {_number(precision)} and recall "
                f"{_number(recall)}; their harmonic mean, which F1 is, lies between {low:.1f} and {high:.1f} "
                "for any values that round to the printed ones.",
            )
        )
    return found


def same_network_inconsistencies(
    models: Mapping[str, Mapping[str, float | int]], same_network: Sequence[Mapping]
) -> list[Inconsistency]:
    """Rows the paper gives for one network that report different numbers.

    Args:
        models: Paper model -> claimed metrics (the registry's ``paper_claims.models``).
        same_network: Entries ``{"rows": [paper models], "why": "..."}`` (the registry's
            ``paper_claims.same_network``): rows that describe one network, and why they do.

    Returns:
        One :class:`Inconsistency` per entry whose rows differ, beyond rounding, in a metric
        they both report; its text lists every such metric.

    Raises:
        DataError: An entry names a row the claims do not hold.
    """
    from common.evaluation import tables

    found = []
    for entry in same_network:
        rows = list(entry["rows"])
        missing = [row for row in rows if row not in models]
        if missing:
            raise DataError(f"paper_claims.same_network names {missing}, which paper_claims.models does not hold.")
        differences = []
        for metric in models[rows[0]]:
            values = [models[row].get(metric) for row in rows]
            if any(v is None for v in values):
                continue
            tolerance = sum(_half_unit(v) for v in values[:2]) if len(values) == 2 else max(map(_half_unit, values))
            if max(values) - min(values) > tolerance:
                differences.append(f"{METRIC_NAMES.get(metric, metric)} " + " vs ".join(_number(v) for v in values))
        if differences:
            names = tables.join_words([f"**{row}**" for row in rows])
            found.append(
                Inconsistency(
                    "same_network",
                    tuple(rows),
                    f"{names} are one network ({entry['why']}), yet they report {'; '.join(differences)}: "
                    "one trained network cannot score both.",
                )
            )
    return found


@dataclass(frozen=True)
class ConsistencyNote:
    """What a paper's table says that cannot all be true, read from the registry's claims.

    Attributes:
        source: Where the claims come from (the registry's ``paper_claims.source``).
        findings: Every :class:`Inconsistency` found, F1 rows first.
    """

    source: str
    findings: tuple[Inconsistency, ...]

    def markdown(self) -> str:
        """The note as Markdown: a sentence per finding, or that the claims are consistent."""
        heading = (
            f"**Does the paper agree with itself?** Its claims ({self.source.rstrip('.')}), checked against each other"
        )
        if not self.findings:
            return f"{heading}: every F1 fits its precision and recall, and no network is reported twice."
        return "\n".join([f"{heading}:", "", *(f"- {finding.text}" for finding in self.findings)])

    def record(self) -> list[dict]:
        """JSON-ready findings for ``metrics.json``."""
        return [{"kind": f.kind, "models": list(f.models), "text": f.text} for f in self.findings]


def internal_consistency(experiment_id: str) -> ConsistencyNote:
    """Check an experiment's paper claims against each other.

    Runs :func:`f1_inconsistencies` and :func:`same_network_inconsistencies` on the registry's claims.

    Args:
        experiment_id: An experiment of the registry; its ``paper_claims`` are read.
    """
    claims = registry.paper_claims(experiment_id)
    models = claims.get("models") or {}
    findings = [*f1_inconsistencies(models), *same_network_inconsistencies(models, claims.get("same_network") or [])]
    return ConsistencyNote(claims["source"], tuple(findings))
