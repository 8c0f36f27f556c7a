"""Tests of common.report.labels: the line that says what ran, and whether a run can meet its paper."""

from __future__ import annotations

import pytest

from common.config import registry
from common.report import labels
from common.report.results import run_banner

PHANTOM_TEXT = "not comparable with the paper (phantoms: demonstrates the pipeline, not the paper's numbers)"


def record(experiment_id: str, profile: str, source: str, data_dir=None) -> dict:
    """The parts of a metrics.json record a label reads, with the parameters a run of these settings records."""
    params = registry.resolve(experiment_id, profile, data_dir=data_dir)
    return {"experiment": experiment_id, "profile": profile, "parameters": params.as_dict(), "data": {"source": source}}


def test_a_smoke_phantom_run_says_what_ran_and_that_it_is_not_the_papers_numbers():
    smoke = record("resnet50-gradcam", "smoke", "phantoms/chest (chest_48_10)")
    assert labels.run_label(smoke) == (
        "**What ran:** the `smoke` profile on the phantom set `phantoms/chest`, "
        f"random weights (trained from scratch); {PHANTOM_TEXT}."
    )
    assert labels.comparable_with_paper(smoke) is False


def test_a_default_phantom_run_of_an_experiment_without_a_weights_parameter_trains_from_scratch():
    default = record("multi-organ", "default", "phantoms/organs (organs_128_400)")
    assert "weights" not in default["parameters"]
    assert labels.run_label(default) == (
        "**What ran:** the `default` profile on the phantom set `phantoms/organs`, "
        f"random weights (trained from scratch); {PHANTOM_TEXT}."
    )
    assert not labels.comparable_with_paper(default)
    default["runtime"] = {"precision": "bfloat16", "dtype_policy": "mixed_bfloat16"}
    assert labels.run_label(default) == (
        "**What ran:** the `default` profile on the phantom set `phantoms/organs`, random weights "
        f"(trained from scratch), trained in bfloat16 and evaluated in float32; {PHANTOM_TEXT}."
    )


def test_the_paper_profile_on_the_experiments_real_data_is_comparable(tmp_path):
    real = record("resnet50-gradcam", "paper", f"iqothnccd ({tmp_path.name})", data_dir=tmp_path)
    assert labels.run_label(real) == (
        "**What ran:** the `paper` profile on the real data set `iqothnccd`, ImageNet weights; "
        "comparable with the paper's numbers (the paper's settings on the experiment's real data set)."
    )
    assert labels.comparable_with_paper(real) is True
    assert str(tmp_path) not in labels.run_label(real)


def test_the_paper_profile_on_phantoms_is_not_comparable():
    paper_on_phantoms = record("nine-models", "paper", "phantoms/chest (chest_128_300)")
    assert labels.run_label(paper_on_phantoms) == (
        f"**What ran:** the `paper` profile on the phantom set `phantoms/chest`, ImageNet weights; {PHANTOM_TEXT}."
    )
    assert labels.comparable_with_paper(paper_on_phantoms) is False


def test_real_data_without_the_papers_settings_or_data_set_is_not_comparable(tmp_path):
    default = record("iqoth", "default", f"iqothnccd ({tmp_path.name})", data_dir=tmp_path)
    assert labels.run_label(default).endswith(
        "; not comparable with the paper (real data but not the paper's settings)."
    )
    assert labels.run_comparability(default) == labels.Comparability(False, labels.OTHER_SETTINGS)
    other = record("iqoth", "paper", "other (other)", data_dir=tmp_path)
    other["parameters"]["manifest"] = "other"
    assert labels.run_comparability(other) == labels.Comparability(False, labels.OTHER_DATA)
    assert "the real data set `other`" in labels.run_label(other)


@pytest.mark.parametrize(
    "weights, text",
    [
        ("imagenet", "ImageNet weights"),
        (None, "random weights (trained from scratch)"),
        ("/home/someone/weights/resnet50_notop.h5", "weights from `resnet50_notop.h5`"),
    ],
)
def test_the_weights_are_named_without_a_machine_path(weights, text):
    smoke = record("iqoth", "smoke", "phantoms/chest (chest_48_10)")
    smoke["parameters"]["weights"] = weights
    assert f", {text}; " in labels.run_label(smoke)


def test_an_old_record_without_data_dir_is_read_from_its_data_source():
    phantoms = {"experiment": "iqoth", "profile": "paper", "data": {"source": "phantoms/chest"}}
    assert labels.run_comparability(phantoms) == labels.Comparability(False, labels.PHANTOMS)
    assert labels.run_comparability(
        {"experiment": "iqoth", "profile": "paper", "data": {"source": "iqothnccd (x)"}}
    ) == labels.Comparability(True)


def test_the_banner_opens_with_the_label_then_the_run_summary():
    smoke = record("resnet50-gradcam", "smoke", "phantoms/chest (chest_48_10)")
    label, summary = run_banner(smoke).split("\n\n")
    assert label == labels.run_label(smoke)
    assert summary.startswith("**Run summary** — profile `smoke`")
