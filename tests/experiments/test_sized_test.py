"""Tests of common.experiments.sized_test: the test-size rule and the phantoms' test-only extension."""

import dataclasses
import math

import pandas as pd
import pytest

from common.config import registry
from common.experiments import leakage, loading, sized_test


def test_rule_size_is_the_normal_approximation_by_hand():
    rule = sized_test.SizingRule(max_half_width=0.03, planning_accuracy=0.8, confidence=0.95)
    # 1.959964^2 * 0.8 * 0.2 / 0.03^2 = 682.9 -> 683
    assert rule.n_images == 683
    assert rule.half_width(0.8, 683) <= 0.03
    assert rule.half_width(0.8, 682) > 0.03 - 1e-4
    assert sized_test.SizingRule(0.05, 0.5, 0.95).n_images == 385  # the textbook 385 at p = 0.5, +-0.05


def test_registry_rule_gives_every_2d_experiment_its_share_per_class():
    assert sized_test.SizingRule.from_registry("nine-models").n_images == 801  # planned for 0.75
    assert sized_test.SizingRule.from_registry("iqoth").n_images == 683  # the rule's 0.8
    for experiment_id in ("resnet50-gradcam", "nine-models", "multi-organ", "iqoth"):
        rule = sized_test.SizingRule.from_registry(experiment_id)
        params = registry.resolve(experiment_id, "default")
        n_classes = len(params.phantom_classes)
        own = math.floor(params.n_per_class * params.split_fractions[-1])
        extra = sized_test.extension_per_class(params)
        assert (own + extra) * n_classes >= rule.n_images
        assert (own + extra - 1) * n_classes < rule.n_images or extra == 0


def test_no_extension_in_smoke_on_real_data_or_without_a_split():
    assert sized_test.extension_per_class(registry.resolve("iqoth", "smoke")) == 0
    real = dataclasses.replace(registry.resolve("iqoth", "default"), data_dir="/some/real/folder")
    assert sized_test.extension_per_class(real) == 0
    assert sized_test.extension_per_class(registry.resolve("gradcam-3d", "default")) == 0  # cross-validated


def test_place_extension_drops_an_extension_image_grouped_with_a_training_image():
    table = pd.DataFrame(
        {
            "path": ["a", "b", "c", "x", "y"],
            "split": ["train", "val", "test", None, None],
            "group": [1, 2, 3, 1, 9],
            "stratum": [None, None, None, sized_test.EXTENSION, sized_test.EXTENSION],
        }
    )
    placed = sized_test.place_extension(table)
    assert placed["path"].tolist() == ["a", "b", "c", "y"]
    assert placed.set_index("path").loc["y", "split"] == "test"


def test_extension_joins_the_test_split_only(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    monkeypatch.setattr(
        sized_test.SizingRule,
        "from_registry",
        classmethod(lambda cls, experiment_id=None: sized_test.SizingRule(0.2, 0.5, 0.95)),
    )
    base = registry.resolve("iqoth", "smoke", {"n_per_class": 6, "phantom_size": 32})
    params = dataclasses.replace(base, sized_test=True)
    # 0.2 half-width at 0.5: 25 images, 9 per class of 3; the set's own test split holds 0 (6 * 0.15).
    assert sized_test.extension_per_class(params) == 9
    loaded = loading.load_samples(params)
    plain = loading.split(base, loading.load_samples(base).samples)
    plan = leakage.plan_splits(params, loaded.samples)
    table = plan.samples
    extension = table["stratum"] == sized_test.EXTENSION
    assert set(table.loc[extension, "split"]) == {"test"}
    # The phantom set's own rows are split exactly as without the extension.
    own = table[~extension].set_index("path")["split"]
    assert own.to_dict() == plain.set_index("path")["split"].to_dict()
    # New images, not copies: the extension's files are the set's next indices.
    assert not set(table.loc[extension, "path"].map(lambda p: p.split("/")[-1])) & set(
        table.loc[~extension, "path"].map(lambda p: p.split("/")[-1])
    )
    assert sized_test.record(table, params)["from_extension"] == int(extension.sum())


@pytest.mark.parametrize("experiment_id", ["resnet50-gradcam", "nine-models", "multi-organ", "iqoth"])
def test_default_runs_extend_and_smoke_runs_do_not(experiment_id):
    assert registry.resolve(experiment_id, "default").sized_test
    assert not registry.resolve(experiment_id, "smoke").sized_test
