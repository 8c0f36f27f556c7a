"""The book page "Which CAM should I trust?", drawn from every experiment's CAM benchmark.

Each run that benchmarked its CAM methods (:mod:`common.explain.benchmark`)
records, under ``cam_benchmark`` in its ``metrics.json``, every method's score
per metric with its interval, the methods tied with the best per metric, the
metrics that separate the methods at all, and a sentence. This page sets them
side by side: which method is best on which metric in which experiment, where
the random map cannot be told from the best, and what the randomisation
check says of Grad-CAM. Nothing on it is typed: every value is a record's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.config import registry
from common.evaluation.tables import format_estimate, join_words
from common.explain.metric_names import ALL_TIE, FAITHFULNESS, LOCALISATION, NO_MASKS, RANDOMISATION, column_title
from common.report.render import render

NOT_RUN = "not benchmarked"
"""A ranking cell of an experiment without a CAM benchmark."""


@dataclass(frozen=True)
class BenchmarkSection:
    """One experiment's benchmark, as the page shows it.

    Attributes:
        experiment: The experiment id (its page's file name).
        title: The experiment's title.
        n: Images (or volumes) benchmarked.
        layer: The layer the maps were taken at.
        summary: The benchmark's own sentence.
        header: The table's column titles (method, then one per metric).
        rows: One row per method: its name, then each metric's value with its interval (``◆``: best or tied).
        randomisation: A sentence on Grad-CAM's randomisation check, or None.
        models: How many models' benchmarks the section pools (0: one model's own).
    """

    experiment: str
    title: str
    n: int
    layer: str
    summary: str
    header: list[str]
    rows: list[list[str]]
    randomisation: str | None
    models: int = 0


def _randomisation(metrics: Mapping[str, Any]) -> str | None:
    """Grad-CAM's Spearman correlation after the last step of the cascade (one step per layer), as a sentence."""
    for model, methods in (metrics.get("explanations") or {}).items():
        spearman = (methods.get("gradcam") or {}).get("randomisation_spearman")
        if spearman:
            return (
                f"Grad-CAM of {model} after re-initialising the top {len(spearman)} layers correlates with the "
                f"trained model's by ρ = {spearman[-1]:.2f} (Spearman; 1 would mean the heatmap ignores the weights)."
            )
    return None


def section(experiment_id: str, metrics: Mapping[str, Any]) -> BenchmarkSection | None:
    """The section of one run's ``cam_benchmark`` record, or None when the run has none."""
    found = metrics.get("cam_benchmark")
    if not found:
        return None
    shown = [metric for metric in (*LOCALISATION, *FAITHFULNESS, *RANDOMISATION) if metric in found["best"]]
    rows = []
    for method, scores in found["methods"].items():
        marks = [" ◆" if method in found["best"][metric] else "" for metric in shown]
        rows.append([method, *(format_estimate(scores[metric]) + mark for metric, mark in zip(shown, marks))])
    return BenchmarkSection(
        experiment=experiment_id,
        title=registry.experiment(experiment_id)["title"],
        n=int(found["n"]),
        layer=found["layer"],
        summary=found["summary"],
        header=["method", *(column_title(metric) for metric in shown)],
        rows=rows,
        randomisation=_randomisation(metrics),
        models=len(found.get("models") or {}),
    )


def ranking_rows(all_metrics: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The page's first table: per metric (rows) and experiment (columns), the best method and its ties.

    A cell reads :data:`ALL_TIE` when the paired tests separate no method on that metric,
    ``no masks`` for localisation without lesion masks, :data:`NOT_RUN` without a benchmark.
    """
    experiments = [experiment_id for experiment_id in registry.experiment_ids() if experiment_id in all_metrics]
    rows = []
    for metric in (*LOCALISATION, *FAITHFULNESS, *RANDOMISATION):
        row = [column_title(metric)]
        for experiment_id in experiments:
            found = all_metrics[experiment_id].get("cam_benchmark")
            if not found:
                row.append(NOT_RUN)
            elif metric not in found["best"]:
                row.append(NO_MASKS if metric in LOCALISATION else NOT_RUN)
            elif metric not in found["separating"]:
                row.append(ALL_TIE)
            else:
                row.append(join_words(found["best"][metric]))
        rows.append(row)
    return ["metric", *experiments], rows


def which_cam_markdown(all_metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """The page: the ranking per metric and experiment, then each experiment's table, sentence and sanity check.

    Args:
        all_metrics: ``{experiment id: metrics.json record}`` of the finished runs.
    """
    sections = [
        found
        for experiment_id in registry.experiment_ids()
        if experiment_id in all_metrics and (found := section(experiment_id, all_metrics[experiment_id]))
    ]
    header, rows = ranking_rows(all_metrics)
    return render("which_cam.md.j2", header=header, rows=rows, sections=sections, all_tie=ALL_TIE)
