"""Tests of common.config.provenance: where every paper-profile setting comes from."""

import copy

import pytest

from common.config import provenance, registry
from common.errors import ParameterError


@pytest.mark.parametrize("experiment_id", registry.experiment_ids())
def test_every_paper_profile_value_has_a_provenance_entry(experiment_id):
    found = provenance.entries(experiment_id)
    paper = registry.resolve(experiment_id, "paper").as_dict()
    assert list(found) == list(registry.experiment(experiment_id)["parameters"])
    assert set(found) <= set(paper)
    for name, entry in found.items():
        assert entry["source"] in provenance.SOURCES, name
        assert len(entry["note"].strip()) > 10, name


def test_every_shared_entry_belongs_to_some_experiment():
    experiments = [registry.experiment(experiment_id) for experiment_id in registry.experiment_ids()]
    used = {name for experiment in experiments for name in experiment["parameters"]}
    assert set(registry.section("provenance_shared")) <= used


def test_the_papers_own_settings_are_marked_as_theirs():
    found = provenance.entries("nine-models")
    assert found["paper_optimiser"]["source"] == "authors_code"
    assert found["split_counts"]["source"] == "paper"
    assert provenance.entries("gradcam-3d")["learning_rate"]["source"] == "chosen_here"
    assert provenance.entries("iqoth")["class_weights"]["source"] == "chosen_here"
    assert provenance.entries("resnet50-gradcam")["trainable_fraction"]["source"] == "chosen_here"


@pytest.fixture
def edited_registry(monkeypatch):
    """Run a test against a copy of one experiment's entry, edited by the test."""
    entry = registry.experiment("multi-organ")
    real = registry.experiment

    def experiment(experiment_id):
        return copy.deepcopy(entry) if experiment_id == "multi-organ" else real(experiment_id)

    monkeypatch.setattr(registry, "experiment", experiment)
    return entry


def test_a_parameter_without_an_entry_is_refused(edited_registry):
    edited_registry["parameters"]["contour_rule"] = "otsu"
    with pytest.raises(ParameterError, match="no provenance for contour_rule"):
        provenance.entries("multi-organ")


def test_an_entry_for_a_parameter_the_experiment_lacks_is_refused(edited_registry):
    edited_registry["provenance"]["dropout"] = {"source": "paper", "note": "Section 4.2: no dropout."}
    with pytest.raises(ParameterError, match="parameters it does not have: dropout"):
        provenance.entries("multi-organ")


@pytest.mark.parametrize("entry", [{"source": "the paper", "note": "Section 4.3."}, {"source": "paper", "note": " "}])
def test_an_entry_needs_a_known_source_and_a_note(edited_registry, entry):
    edited_registry["provenance"]["epochs"] = entry
    with pytest.raises(ParameterError, match="the provenance of epochs needs a source"):
        provenance.entries("multi-organ")


def test_a_run_is_compared_with_the_paper_profile():
    settings = provenance.of(registry.resolve("resnet50-gradcam", "default"))
    by_name = {s.name: s for s in settings.settings}
    assert by_name["image_size"].paper_value == 224 and by_name["image_size"].run_value == 96
    assert by_name["image_size"].differs and not by_name["backbone"].differs
    summary = settings.summary()
    paper = len(settings.of_source("paper"))
    assert f"{len(settings.settings)} settings" in summary and f"{paper} come from the paper" in summary
    assert "`image_size`" in summary.split("differs")[1] and "`backbone`" not in summary.split("differs")[1]


def test_a_paper_run_differs_only_where_it_is_overridden():
    assert "uses the paper profile's value of every one" in provenance.of(registry.resolve("iqoth", "paper")).summary()
    summary = provenance.of(registry.resolve("iqoth", "paper", {"epochs": 3})).summary()
    assert summary.endswith("differs from the paper profile in 1 of them: `epochs`.")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        ([0.7, 0.15, 0.15], "[0.7, 0.15, 0.15]"),
        ({"flip": "horizontal", "zoom": None}, "{flip: horizontal, zoom: null}"),
        ({}, "{}"),
    ],
)
def test_values_are_shown_as_the_registry_writes_them(value, shown):
    assert provenance.shown(value) == shown
