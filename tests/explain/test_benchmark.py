"""Tests of common.explain.benchmark on a model whose evidence is known: its score is the image's brightness."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from common.errors import DataError
from common.evaluation.paired import paired_score_comparison
from common.explain import benchmark
from common.explain.driver import ExplainSettings, FoldModels, ImageSubset
from common.explain.faithfulness import Perturbation
from common.explain.metric_names import FAITHFULNESS, LOCALISATION, LOWER_IS_BETTER, NO_MASKS

SIDE = 16
SETTINGS = ExplainSettings(seed=0, n_resamples=200)
STEPS = Perturbation(steps=8)


def brightness_model() -> keras.Model:
    """Class 1's logit grows with the image's mean brightness: every bright pixel is evidence, equally.

    Input -> 1x1 conv (weight 1, "conv") -> ReLU ("relu") -> global average -> softmax head. Grad-CAM at
    "relu" is the image itself.
    """
    inputs = keras.Input((SIDE, SIDE, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    x = keras.layers.ReLU(name="relu")(conv(inputs))
    head = keras.layers.Dense(2, activation="softmax", name="head")
    outputs = head(keras.layers.GlobalAveragePooling2D()(x))
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    head.set_weights([np.array([[-20.0, 20.0]], np.float32), np.array([2.0, -2.0], np.float32)])
    return keras.Model(inputs, outputs)


def lesion_images(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dim noisy images, each with a bright 4 x 4 lesion somewhere; and the lesion masks."""
    rng = np.random.default_rng(seed)
    images = (0.05 + 0.02 * rng.random((n, SIDE, SIDE, 1))).astype(np.float32)
    masks = np.zeros((n, SIDE, SIDE), bool)
    for image, mask in zip(images, masks):
        row, col = rng.integers(0, SIDE - 4, 2)
        image[row : row + 4, col : col + 4] = 1.0
        mask[row : row + 4, col : col + 4] = True
    return images, masks


def subset(images: np.ndarray, masks: np.ndarray) -> ImageSubset:
    return ImageSubset(np.arange(len(images)), images, np.ones(len(images), int), masks)


def test_on_a_brightness_model_gradcam_beats_the_random_map_on_every_metric():
    model = brightness_model()
    images, masks = lesion_images()
    found = benchmark.benchmark(model, subset(images, masks), ["gradcam", "random"], SETTINGS, STEPS, layer="relu")
    assert found.has_masks and found.metrics == LOCALISATION + FAITHFULNESS
    gradcam, random = found.per_image["gradcam"], found.per_image["random"]
    assert gradcam["pointing_game"].all() and gradcam["energy_share"].mean() > 0.5 > random["energy_share"].mean()
    assert gradcam["iou"].mean() > 0.9
    # Deleting the brightest pixels first dims the image fastest. (A blur keeps the mean brightness, so the
    # insertion curve of this model hardly moves under any order: insertion is checked in test_faithfulness.)
    assert (gradcam["deletion_auc"] < random["deletion_auc"]).all()
    for metric in ("pointing_game", "energy_share", "iou", "deletion_auc", "average_drop"):
        assert found.best(metric) == ["gradcam"], metric
    sentence = found.disagreements()
    assert sentence.startswith("`gradcam` is among the best on every metric that separates the methods"), sentence
    assert "the best methods beat the random map" in sentence, sentence
    table = found.table()
    assert list(table.index) == ["gradcam", "random"] and table.index.name == "method (n = 12)"
    assert table.loc["gradcam", "deletion AUC (lower is better)"].endswith("◆")
    assert not table.loc["random", "IoU"].endswith("◆")
    record = json.loads(json.dumps(found.record()))
    assert record["n"] == 12 and record["layer"] == "relu" and set(record["methods"]) == {"gradcam", "random"}
    assert record["paired_tests"]["metrics"]["deletion_auc"]["better"] == "lower"
    assert (
        record["seconds"][benchmark.WHOLE]
        >= record["seconds"]["random"] + record["seconds"]["gradient methods, one pass"]
    )


def test_without_masks_only_faithfulness_is_scored_and_the_table_says_no_masks():
    model = brightness_model()
    images, _ = lesion_images(6)
    found = benchmark.benchmark(
        model, subset(images, np.zeros((6, SIDE, SIDE), bool)), ["gradcam", "eigencam"], SETTINGS, STEPS, layer="relu"
    )
    assert not found.has_masks and found.metrics == FAITHFULNESS
    assert set(found.per_image["gradcam"]) == set(FAITHFULNESS)
    table = found.table()
    assert (table["pointing game"] == NO_MASKS).all()
    assert found.record()["localisation"] == NO_MASKS


def test_fold_models_score_each_image_on_its_own_model():
    images, masks = lesion_images(6)
    dark = brightness_model()
    dark.get_layer("head").set_weights([np.array([[20.0, -20.0]], np.float32), np.array([-2.0, 2.0], np.float32)])
    owners = np.array([0, 0, 0, 1, 1, 1])
    folds = FoldModels({0: brightness_model(), 1: dark}, owners)
    found = benchmark.benchmark(folds, subset(images, masks), ["gradcam", "random"], SETTINGS, STEPS, layer="relu")
    alone = benchmark.benchmark(
        brightness_model(), subset(images[:3], masks[:3]), ["gradcam", "random"], SETTINGS, STEPS, layer="relu"
    )
    np.testing.assert_allclose(
        found.per_image["gradcam"]["deletion_auc"][:3], alone.per_image["gradcam"]["deletion_auc"]
    )


def test_a_single_method_has_no_comparison_and_bad_subsets_are_refused():
    model = brightness_model()
    images, masks = lesion_images(4)
    found = benchmark.benchmark(model, subset(images, masks), ["gradcam"], SETTINGS, STEPS, layer="relu")
    assert found.comparison is None and found.disagreements() == "One method: nothing to compare."
    masks[0] = False
    with pytest.raises(DataError, match="1 of 4 images have an empty mask"):
        benchmark.benchmark(model, subset(images, masks), ["gradcam"], SETTINGS, STEPS, layer="relu")
    with pytest.raises(DataError, match="no images"):
        benchmark.benchmark(model, subset(images[:0], masks[:0]), ["gradcam"], SETTINGS, STEPS)
    with pytest.raises(DataError, match="unknown CAM method"):
        benchmark.benchmark(model, subset(images, masks), ["lime"], SETTINGS, STEPS)


def test_the_sentence_says_when_no_metric_separates_the_methods_and_when_metrics_disagree():
    model = brightness_model()
    images, masks = lesion_images(6)
    # Before global pooling HiResCAM is Grad-CAM: nothing can separate them.
    same = benchmark.benchmark(model, subset(images, masks), ["gradcam", "hirescam"], SETTINGS, STEPS, layer="relu")
    assert same.disagreements().startswith("On these 6 images no metric tells the methods apart"), same.disagreements()
    low = np.linspace(0.1, 0.4, 12)
    per_image = {
        "A": {"deletion_auc": low, "insertion_auc": low, "average_drop": low, "increase_in_confidence": low > 1},
        "B": {
            "deletion_auc": low + 0.3,
            "insertion_auc": low + 0.3,
            "average_drop": low,
            "increase_in_confidence": low > 1,
        },
    }
    comparison = paired_score_comparison(per_image, lower_is_better=LOWER_IS_BETTER, n_resamples=2000)
    split = benchmark.Benchmark(("A", "B"), "relu", np.arange(12), False, per_image, comparison, {}, {})
    assert split.disagreements() == (
        "The metrics disagree on the best method (deletion AUC: `A`; insertion AUC: `B`). "
        "Average drop and increase in confidence: every method ties (n = 12)."
    )


def test_the_sanity_check_scores_the_random_map_one_and_a_gradient_map_below_one():
    from tests.explain.helpers import random_images, tiny_model

    model = tiny_model(pooled=True, seed=4)
    images = random_images(model, n=6)
    masks = np.zeros(images.shape[:-1], bool)
    masks[:, 4:10, 4:10] = True
    chosen = ImageSubset(np.arange(6), images, np.ones(6, int), masks)
    found = benchmark.benchmark(
        model, chosen, ["gradcam", "random"], SETTINGS, STEPS, layer="conv", randomisation_layers=2
    )
    assert found.metrics[-1] == "randomisation_spearman"
    np.testing.assert_allclose(found.per_image["random"]["randomisation_spearman"], 1.0)  # it ignores the model
    assert found.per_image["gradcam"]["randomisation_spearman"].mean() < 0.99
    assert "randomisation |Spearman| (lower is better)" in found.table().columns
    without = benchmark.benchmark(model, chosen, ["gradcam", "random"], SETTINGS, STEPS, layer="conv")
    assert "randomisation_spearman" not in without.metrics
    np.testing.assert_allclose(
        model.predict(images, verbose=0), tiny_model(pooled=True, seed=4).predict(images, verbose=0)
    )


def test_pooled_benchmarks_test_every_models_images_together():
    """Two models' few images each tie everything alone; pooled, the same per-image scores separate the methods."""
    images, masks = lesion_images(12)
    parts = {
        name: benchmark.benchmark(
            brightness_model(), subset(images[rows], masks[rows]), ["gradcam", "random"], SETTINGS, STEPS, layer="relu"
        )
        for name, rows in (("first", slice(0, 3)), ("second", slice(3, 12)))
    }
    assert parts["first"].best("deletion_auc") == ["gradcam", "random"]  # 3 images cannot separate them
    pooled = benchmark.pooled(parts)
    assert pooled.layer == benchmark.POOLED_LAYER and len(pooled.positions) == 12 and pooled.has_masks
    for method in ("gradcam", "random"):
        np.testing.assert_array_equal(
            pooled.per_image[method]["deletion_auc"],
            np.concatenate(
                [parts["first"].per_image[method]["deletion_auc"], parts["second"].per_image[method]["deletion_auc"]]
            ),
        )
    assert pooled.best("deletion_auc") == ["gradcam"] and pooled.cams == {}
    assert pooled.seconds["random"] == pytest.approx(
        parts["first"].seconds["random"] + parts["second"].seconds["random"], abs=0.02
    )
    assert json.loads(json.dumps(pooled.record()))["n"] == 12
    unmasked = benchmark.benchmark(
        brightness_model(),
        subset(images[:3], np.zeros((3, SIDE, SIDE), bool)),
        ["gradcam", "random"],
        SETTINGS,
        STEPS,
        layer="relu",
    )
    with pytest.raises(DataError, match="masks in all of them or in none"):
        benchmark.pooled({"masked": parts["first"], "unmasked": unmasked})
    with pytest.raises(DataError, match="no benchmarks"):
        benchmark.pooled({})
