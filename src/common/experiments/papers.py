"""The paper beside the run: its claims under this run's model names, and the paper-vs-run rows.

The registry holds each paper's reported numbers (``paper_claims``); a run
states, for every paper model it has a counterpart of, the paper's number, its
own with the 95% interval, the difference, and whether the claim is inside the
interval (:func:`compare` -> :class:`PaperComparison`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from common.config import registry
from common.config.params import RunParams


def paper_rows(params: RunParams, models_metrics: dict) -> tuple[dict, list[dict]]:
    """The paper's claims (under this run's model names) and the paper-vs-run rows.

    Returns:
        ``(paper, rows)``: ``paper`` maps each paper model name to its claimed
        metrics; ``rows`` are :func:`common.evaluation.tables.paper_vs_run` rows for the
        paper models this run has a counterpart of (``run_model_for`` in the registry).
    """
    from common.evaluation import tables

    claims = registry.paper_claims(params.experiment)
    paper = claims.get("models", {})
    mapping = claims.get("run_model_for") or {name: name for name in paper}
    pairs = {paper_name: run_name for paper_name, run_name in mapping.items() if run_name in models_metrics}
    if not pairs:
        return paper, []
    table = tables.paper_vs_run(
        {run_name: paper[paper_name] for paper_name, run_name in pairs.items()},
        {run_name: models_metrics[run_name] for run_name in pairs.values()},
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
                "paper_inside_ci": bool(row["paper_inside_ci"]),
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
    """

    paper: dict
    rows: list[dict]
    source: str

    def table(self) -> pd.DataFrame:
        """The rows, or the claims alone (one row per paper model) when there are none."""
        from common.evaluation import tables

        return tables.paper_beside_run(self.rows) if self.rows else pd.DataFrame(self.paper).T


def compare(params: RunParams, models_metrics: dict) -> PaperComparison:
    """:func:`paper_rows` of the run's models, with the claims' source.

    Args:
        params: Run parameters (``experiment``).
        models_metrics: Model name -> its test metrics.
    """
    paper, rows = paper_rows(params, models_metrics)
    return PaperComparison(paper, rows, registry.paper_claims(params.experiment)["source"])
