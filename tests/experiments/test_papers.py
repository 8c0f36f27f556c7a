"""Tests of common.experiments.papers: the paper's claims beside a run's metrics."""

import pytest

from common.config import registry
from common.experiments import papers

ENTRY = {"value": 0.9, "ci95": [0.8, 0.95]}
RUN = {"ResNet50": {m: ENTRY for m in ("accuracy", "precision", "recall", "f1", "auc", "specificity")}}


def test_paper_rows_pair_paper_models_with_this_runs_models():
    params = registry.resolve("resnet50-gradcam", "smoke")
    paper, rows = papers.paper_rows(params, RUN)
    assert "ResNet-50-Grad" in paper
    accuracy = next(r for r in rows if r["metric"] == "accuracy")
    assert accuracy["model"] == "ResNet50" and accuracy["paper"] == pytest.approx(0.982)
    assert accuracy["difference"] == pytest.approx(0.9 - 0.982) and accuracy["paper_inside_ci"] is False


def test_compare_gives_the_rows_with_their_source_and_the_claims_without_a_counterpart():
    params = registry.resolve("resnet50-gradcam", "smoke")
    compared = papers.compare(params, RUN)
    assert (compared.paper, compared.rows) == papers.paper_rows(params, RUN)
    assert compared.source == registry.paper_claims("resnet50-gradcam")["source"]
    assert list(compared.table().index) == ["ResNet50"]
    alone = papers.compare(params, {"other": RUN["ResNet50"]})
    assert alone.rows == [] and "ResNet-50-Grad" in alone.table().index
