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

from dataclasses import dataclass

import pandas as pd

from common.config import registry
from common.config.params import RunParams
from common.report.labels import Comparability, comparability


def run_comparability(params: RunParams) -> Comparability:
    """Whether a run with these parameters can be compared with its paper (see :mod:`common.report.labels`)."""
    return comparability(params.experiment, params.profile, params.data_dir, params.manifest)


def paper_rows(params: RunParams, models_metrics: dict) -> tuple[dict, list[dict]]:
    """The paper's claims (under this run's model names) and the paper-vs-run rows.

    Returns:
        ``(paper, rows)``: ``paper`` maps each paper model name to its claimed
        metrics; ``rows`` are :func:`common.evaluation.tables.paper_vs_run` rows for the
        paper models this run has a counterpart of (``run_model_for`` in the registry).
        Each row carries ``comparable`` and ``reason`` (:func:`run_comparability`);
        ``paper_inside_ci`` is True or False in a comparable run and None otherwise.
    """
    from common.evaluation import tables

    claims = registry.paper_claims(params.experiment)
    paper = claims.get("models", {})
    mapping = claims.get("run_model_for") or {name: name for name in paper}
    pairs = {paper_name: run_name for paper_name, run_name in mapping.items() if run_name in models_metrics}
    if not pairs:
        return paper, []
    against = run_comparability(params)
    table = tables.paper_vs_run(
        {run_name: paper[paper_name] for paper_name, run_name in pairs.items()},
        {run_name: models_metrics[run_name] for run_name in pairs.values()},
        comparable=against.comparable,
        reason=against.reason,
    )
    rows = []
    for row in table.to_dict("records"):
        rows.append(
            {
                "model": row["model"],
                "metric": row["metric"],
                "paper": row["paper"],
                "this_run": row["this_run"],
                "ci95": [row["ci95_low"], row["ci95_high"]],
                "difference": row["difference"],
                "paper_inside_ci": None if row["paper_inside_ci"] is None else bool(row["paper_inside_ci"]),
                **against.record(),
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

    def table(self) -> pd.DataFrame:
        """The rows with an "inside CI" column (:func:`~common.evaluation.tables.paper_beside_run`).

        Without rows, the claims alone (one row per paper model).
        """
        from common.evaluation import tables

        return tables.paper_beside_run(self.rows) if self.rows else pd.DataFrame(self.paper).T


def compare(params: RunParams, models_metrics: dict) -> PaperComparison:
    """:func:`paper_rows` of the run's models, with the claims' source.

    Args:
        params: Run parameters (``experiment``).
        models_metrics: Model name -> its test metrics.
    """
    paper, rows = paper_rows(params, models_metrics)
    return PaperComparison(paper, rows, registry.paper_claims(params.experiment)["source"], run_comparability(params))
