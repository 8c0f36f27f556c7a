"""Tests of common.experiments.papers: the paper's claims beside a run's metrics."""

import pytest

from common.config import registry
from common.errors import DataError
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


def test_rows_tested_on_phantom_volumes_are_never_judged_even_in_a_paper_run_on_real_data(tmp_path):
    params = registry.resolve("resnet50-gradcam", "paper", data_dir=tmp_path)
    run = {**RUN, "cnn3d": RUN["ResNet50"]}
    _, rows = papers.paper_rows(params, run, on_phantoms={"cnn3d"})
    by_model = {(r["model"], r["metric"]): r for r in rows}
    assert by_model["cnn3d", "accuracy"]["paper_model"] == "3D CNN"
    assert (by_model["cnn3d", "accuracy"]["paper_inside_ci"], by_model["cnn3d", "accuracy"]["reason"]) == (
        None,
        labels.PHANTOMS,
    )
    assert by_model["cnn3d", "accuracy"]["comparable"] is False
    assert by_model["ResNet50", "accuracy"]["paper_inside_ci"] is False  # the 2D row is still judged


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


def test_paper_rows_name_the_paper_model_follow_the_papers_order_and_say_what_other_data_was_tested():
    params = registry.resolve("resnet50-gradcam", "smoke")
    run = {"ResNet50": RUN["ResNet50"], "resnet3d_18": RUN["ResNet50"], "plain_cnn": RUN["ResNet50"]}
    _, rows = papers.paper_rows(params, run, data={"resnet3d_18": "volumes"})
    order = list(dict.fromkeys(row["model"] for row in rows))
    assert order == ["plain_cnn", "resnet3d_18", "ResNet50"]  # the paper's rows: CNN, 3D ResNet, ResNet-50-Grad
    paper_model = {row["model"]: row["paper_model"] for row in rows}
    assert paper_model == {"plain_cnn": "CNN", "resnet3d_18": "3D ResNet", "ResNet50": "ResNet-50-Grad"}
    assert {row["model"] for row in rows if row.get("data") == "volumes"} == {"resnet3d_18"}
    assert not any("data" in row for row in rows if row["model"] != "resnet3d_18")
    table = papers.compare(params, run, data={"resnet3d_18": "volumes"}).table(sizes={"ResNet50": "30"})
    assert (
        table.loc["resnet3d_18", "paper's model"] == "3D ResNet" and table.loc["resnet3d_18", "tested on"] == "volumes"
    )
    assert table.loc["ResNet50", "n"] == "30" and table.loc["plain_cnn", "tested on"] == "–"


def test_every_table_one_row_has_a_model_of_this_run():
    claims = registry.paper_claims("resnet50-gradcam")
    assert set(claims["run_model_for"]) == set(claims["models"])
    assert len(set(claims["run_model_for"].values())) == len(claims["models"])  # one model per row


def test_an_f1_outside_its_precision_and_recall_is_flagged_only_beyond_rounding():
    flagged = papers.f1_inconsistencies(
        {
            "above": {"precision": 83, "recall": 82, "f1": 84},
            "rounded": {"precision": 97.3, "recall": 97.8, "f1": 98},  # harmonic mean 97.55, printed as 98
            "edge": {"precision": 82, "recall": 80, "f1": 80},  # 82.5 and 80.5 give 81.49; 79.5-80.5 overlaps 80.49
            "below": {"precision": 0.95, "recall": 0.90, "f1": 0.80},
            "no_f1": {"precision": 0.9, "recall": 0.8},
        }
    )
    assert [finding.models for finding in flagged] == [("above",), ("below",)]
    assert "F1 84 is above both of its precision 83 and recall 82" in flagged[0].text
    assert "between 82.0 and 83.0" in flagged[0].text
    assert "below both" in flagged[1].text
    assert flagged[0].kind == "f1"


def test_rows_of_one_network_that_differ_are_flagged_with_every_differing_metric():
    models = {
        "A": {"accuracy": 84, "precision": 84, "f1": 86},
        "A-Grad": {"accuracy": 98.2, "precision": 84.3, "f1": 98, "auc": 0.98},
        "B": {"accuracy": 90},
        "B again": {"accuracy": 90.4},
    }
    entries = [{"rows": ["A", "A-Grad"], "why": "the same ResNet"}, {"rows": ["B", "B again"], "why": "same"}]
    found = papers.same_network_inconsistencies(models, entries)
    assert len(found) == 1 and found[0].models == ("A", "A-Grad") and found[0].kind == "same_network"
    # precision 84 vs 84.3 lies within the rounding of 84 (half a point) and of 84.3: not a difference.
    assert "accuracy 84 vs 98.2; F1 86 vs 98" in found[0].text and "precision" not in found[0].text
    assert "(the same ResNet)" in found[0].text
    with pytest.raises(DataError, match="C"):
        papers.same_network_inconsistencies(models, [{"rows": ["A", "C"], "why": "?"}])


def test_the_consistency_note_of_table_one_is_generated_from_the_registry():
    note = papers.internal_consistency("resnet50-gradcam")
    assert [(f.kind, f.models) for f in note.findings] == [
        ("f1", ("ResNet-18",)),
        ("f1", ("ResNet-32",)),
        ("f1", ("ResNet-50",)),
        ("same_network", ("ResNet-50", "ResNet-50-Grad")),
    ]
    text = note.markdown()
    assert text.count("\n- ") == 4 and "accuracy 84 vs 98.2" in text
    assert note.record()[3]["models"] == ["ResNet-50", "ResNet-50-Grad"]
    # A paper whose claims fit together gets a sentence saying so.
    assert papers.internal_consistency("nine-models").findings == ()
    assert "every F1 fits" in papers.internal_consistency("nine-models").markdown()
