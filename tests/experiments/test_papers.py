"""Tests of common.experiments.papers: the paper's claims beside a run's metrics."""

import pytest

from common.config import registry
from common.experiments import papers
from common.report import labels

ENTRY = {"value": 0.9, "ci95": [0.8, 0.95]}
RUN = {"ResNet50": {m: ENTRY for m in ("accuracy", "precision", "recall", "f1", "auc", "specificity")}}


def test_paper_rows_of_a_phantom_run_set_the_numbers_side_by_side_but_judge_no_claim():
    params = registry.resolve("resnet50-gradcam", "smoke")
    paper, rows = papers.paper_rows(params, RUN)
    assert "ResNet-50-Grad" in paper
    accuracy = next(r for r in rows if r["metric"] == "accuracy")
    assert accuracy["model"] == "ResNet50" and accuracy["paper"] == pytest.approx(0.982)
    assert accuracy["difference"] == pytest.approx(0.9 - 0.982)
    # A phantom accuracy and the paper's real-data accuracy are different quantities: no inside/outside.
    assert {(r["paper_inside_ci"], r["comparable"], r["reason"]) for r in rows} == {(None, False, labels.PHANTOMS)}
    # The paper profile on phantoms is not comparable either.
    _, paper_profile = papers.paper_rows(registry.resolve("resnet50-gradcam", "paper"), RUN)
    assert {(r["paper_inside_ci"], r["reason"]) for r in paper_profile} == {(None, labels.PHANTOMS)}


def test_paper_rows_of_the_paper_profile_on_the_real_data_say_whether_each_claim_is_inside(tmp_path):
    params = registry.resolve("resnet50-gradcam", "paper", data_dir=tmp_path)
    _, rows = papers.paper_rows(params, RUN)
    inside = {r["metric"]: r["paper_inside_ci"] for r in rows}
    # The interval is [0.80, 0.95]; the paper's 0.982 accuracy lies above it.
    assert inside["accuracy"] is False
    assert all(r["comparable"] is True and r["reason"] is None for r in rows)
    wide = {"ResNet50": {m: {"value": 0.9, "ci95": [0.8, 1.0]} for m in RUN["ResNet50"]}}
    assert next(r for r in papers.paper_rows(params, wide)[1] if r["metric"] == "accuracy")["paper_inside_ci"] is True
    # Real data with the default profile: not the paper's settings.
    _, default = papers.paper_rows(registry.resolve("resnet50-gradcam", "default", data_dir=tmp_path), RUN)
    assert {(r["paper_inside_ci"], r["reason"]) for r in default} == {(None, labels.OTHER_SETTINGS)}


def test_compare_gives_the_rows_with_their_source_and_the_claims_without_a_counterpart():
    params = registry.resolve("resnet50-gradcam", "smoke")
    compared = papers.compare(params, RUN)
    assert (compared.paper, compared.rows) == papers.paper_rows(params, RUN)
    assert compared.source == registry.paper_claims("resnet50-gradcam")["source"]
    assert compared.comparability == labels.Comparability(False, labels.PHANTOMS)
    assert list(compared.table().index) == ["ResNet50"]
    assert set(compared.table()["inside CI"]) == {"not comparable (phantoms)"}
    alone = papers.compare(params, {"other": RUN["ResNet50"]})
    assert alone.rows == [] and "ResNet-50-Grad" in alone.table().index
