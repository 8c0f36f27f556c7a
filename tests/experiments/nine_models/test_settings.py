"""Tests of common.experiments.nine_models.settings: per-model settings from the registry and the run.

Head layers and trainable-layer counts of all nine backbones are checked in
tests/models (built at each architecture's minimum size, whose layer
structure is the paper size's); here the same table is checked through the
settings a profile resolves to.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from common import models
from common.config import registry
from common.data import augment, pipeline, scaling
from common.data.folders import load_class_folders
from common.errors import ParameterError
from common.experiments import fitting, nine_models

# Seed 002 as distilled in STUDY.md: input size, trainable last layers, Adam learning rate and epsilon.
PAPER_SPEC = {
    "DenseNet121": (224, 128, 6e-5, 1e-2),
    "MobileNetV2": (320, 46, 1e-5, 5e-3),
    "InceptionV3": (299, 94, 1e-5, 1e-2),
    "InceptionResNetV2": (299, 170, 1e-4, 7.5e-2),
    "ResNet50": (224, 53, 5e-5, 1e-2),
    "ResNet101": (224, 104, 1e-5, 1e-2),
    "VGG16": (320, 7, 5e-6, 1e-2),
    "VGG19": (320, 8, 5e-6, 5e-3),
    "Xception": (299, 41, 1e-4, 1e-1),
}


# The authors' input scaling per model (STUDY.md, from their processing.py), as a function of a set of
# images on the 0..255 scale: VGGs, InceptionV3 and Xception x / 255; DenseNet121, MobileNetV2 and
# InceptionResNetV2 x / 127.5 - 1; the ResNets minus the set's own per-channel mean, channels reversed.
def _unit(images):
    return images / 255


def _symmetric(images):
    return images / 127.5 - 1


def _own_mean_reversed(images):
    return (images - images.mean(axis=(0, 1, 2)))[..., ::-1]


AUTHORS_SCALING_SPEC = {
    "DenseNet121": _symmetric,
    "MobileNetV2": _symmetric,
    "InceptionV3": _unit,
    "InceptionResNetV2": _symmetric,
    "ResNet50": _own_mean_reversed,
    "ResNet101": _own_mean_reversed,
    "VGG16": _unit,
    "VGG19": _unit,
    "Xception": _unit,
}
# A set of two 1 x 3 RGB images whose channels differ, so a reversal and a per-channel mean show.
KNOWN_SET = np.array(
    [[[[0, 51, 255], [255, 102, 0], [127.5, 153, 51]]], [[[10, 20, 30], [200, 100, 50], [90, 180, 240]]]], np.float32
)
# The authors' augmentation (STUDY.md, from their main.py's ImageDataGenerator) in its own units:
# width and height shift 0.2, zoom 0.2 (zx and zy drawn apart), shear 0.15 (degrees), both flips,
# rotation 10 (degrees), fill nearest; and training: 120 epochs, the best validation accuracy kept.
AUTHORS_AUGMENTATION = (
    "rotation ±10°, shift ±0.2, zoom ±0.2 per axis, shear ±0.15°, flips horizontal_and_vertical, fill nearest"
)


def test_paper_profile_resolves_to_the_papers_settings():
    params = registry.resolve("nine-models", "paper")
    assert params.models == list(PAPER_SPEC)
    assert params.batch_size == 16 and params.weights == "imagenet"
    assert params.split_counts == {"train": 714, "val": 150, "test": 150}
    for name, (size, trainable, learning_rate, epsilon) in PAPER_SPEC.items():
        settings = nine_models.model_settings(params, name)
        assert (settings.input_size, settings.trainable_last_layers) == (size, trainable), name
        assert settings.learning_rate == pytest.approx(learning_rate) and settings.epsilon == pytest.approx(epsilon)
    assert set(nine_models.settings_table(params, PAPER_SPEC).index) == set(PAPER_SPEC)


@pytest.mark.parametrize("name", list(AUTHORS_SCALING_SPEC))
def test_paper_profile_scales_each_models_inputs_as_the_authors_code(name):
    settings = nine_models.model_settings(registry.resolve("nine-models", "paper"), name)
    mean = scaling.set_mean([KNOWN_SET], 3) if scaling.needs_set_mean(settings.preprocess) else None
    scaled = pipeline.preprocess_function(settings.preprocess, mean)(tf.constant(KNOWN_SET))
    np.testing.assert_allclose(scaled, AUTHORS_SCALING_SPEC[name](KNOWN_SET.astype(np.float64)), atol=1e-5)


def test_paper_profile_augments_and_keeps_epochs_as_the_authors_code():
    params = registry.resolve("nine-models", "paper")
    assert augment.describe(params.augment) == AUTHORS_AUGMENTATION
    assert params.augment["shift"] == 0.2 and params.augment["zoom"] == 0.2
    assert params.augment["zoom_axes"] == "independent" and params.augment["flip"] == "horizontal_and_vertical"
    assert 360 * params.augment["rotation"] == pytest.approx(10)
    assert math.degrees(math.atan(params.augment["shear"])) == pytest.approx(0.15, abs=1e-5)
    assert params.augment["fill"] == "nearest"
    # The transforms drawn stay in those ranges: rotation up to 10 degrees, each axis's scale 0.8 to 1.2.
    transforms = augment.affine_transforms(params.augment, tf.constant([1, 2], tf.int64), 2048, 224, 224).numpy()
    angles = np.degrees(np.abs(np.arctan(transforms[:, 3] / transforms[:, 0])))
    assert angles.max() <= 10 + 0.01 and angles.max() > 9.9
    scale_x = np.hypot(transforms[:, 0], transforms[:, 3])
    assert scale_x.min() >= 0.8 - 1e-4 and scale_x.max() <= 1.2 + 1e-4 and np.ptp(scale_x) > 0.38
    assert (transforms[:, 0] < 0).any() and (transforms[:, 4] < 0).any()  # mirrored both ways
    assert params.epochs == 120 and params.checkpoint_monitor == "val_accuracy" and params.early_stopping is False
    row = nine_models.settings_table(params, ["ResNet50"]).loc["ResNet50"]
    assert row["input scaling"] == scaling.SET_MEAN_REVERSED and row["augment"] == AUTHORS_AUGMENTATION
    assert (row["epochs"], row["epoch kept"]) == (120, "best val_accuracy of all epochs")


def _fit_arguments(params, monkeypatch) -> dict:
    """What compile_and_fit hands common.training.fit.fit for ``params`` (the fit itself replaced)."""
    from common.training import fit

    seen: dict = {}

    def record(model, train, val, epochs, **options):
        seen.update(options, epochs=epochs)

    monkeypatch.setattr(fit, "fit", record)
    model = nine_models.build_model(nine_models.model_settings(params, "VGG16"), 2)
    fitting.compile_and_fit(params, model, {"train": None, "val": None}, log=None)
    return seen


def test_paper_profile_trains_all_its_epochs_and_keeps_the_best_validation_accuracy(monkeypatch):
    paper = registry.resolve("nine-models", "paper", {"weights": None, "paper_input_sizes": False})
    seen = _fit_arguments(paper, monkeypatch)
    assert (seen["epochs"], seen["monitor"], seen["early_stopping"]) == (120, "val_accuracy", False)


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_cpu_profiles_keep_the_studys_scaling_augmentation_and_early_stopping(profile, monkeypatch):
    params = registry.resolve("nine-models", profile)
    assert (params.input_scaling, params.checkpoint_monitor, params.early_stopping) == ("keras", "val_loss", True)
    assert params.augment is None
    for name in PAPER_SPEC:
        assert nine_models.model_settings(params, name).preprocess == models.BACKBONES[name].preprocess, name
    seen = _fit_arguments(params, monkeypatch)
    assert (seen["monitor"], seen["early_stopping"], seen["patience"]) == ("val_loss", True, params.patience)
    assert seen["epochs"] == params.epochs


def test_the_studys_choices_stay_available_in_the_paper_profile():
    params = registry.resolve(
        "nine-models", "paper", {"input_scaling": "keras", "checkpoint_monitor": "val_loss", "early_stopping": True}
    )
    for name in PAPER_SPEC:
        assert nine_models.model_settings(params, name).preprocess == models.BACKBONES[name].preprocess, name
    assert nine_models.epoch_kept(params) == f"best val_loss, early stopping (patience {params.patience})"
    with pytest.raises(ParameterError, match="input_scaling"):
        registry.resolve("nine-models", "paper", {"input_scaling": "imagenet"})


def test_the_authors_resnet_rule_centres_each_split_on_its_own_mean(make_class_folders):
    samples, _ = load_class_folders(make_class_folders({"cancer": 6, "pneumonia": 6}, size=(20, 20)))
    samples["split"] = ["train"] * 4 + ["val"] * 2 + ["test"] * 2 + ["train"] * 4
    params = registry.resolve("nine-models", "smoke", {"input_scaling": "authors"})
    settings = nine_models.model_settings(params, "ResNet50")
    data = fitting.datasets(params, samples, settings.preprocess, image_size=settings.input_size)
    for split, part in samples.groupby("split"):
        images = fitting.model_inputs(data[split])  # no augmentation in smoke; training images shuffled
        raw = pipeline.load_arrays(part, settings.input_size, channels=3) * 255.0
        expected = _own_mean_reversed(raw)
        if split == "train":
            images, expected = np.sort(images, axis=None), np.sort(expected, axis=None)
        np.testing.assert_allclose(images, expected, atol=1e-3)
        assert abs(raw.mean()) > 1  # so the zero mean comes from the centring


def test_cpu_profiles_use_the_smallest_accepted_size_and_train_everything():
    params = registry.resolve("nine-models", "smoke")
    sizes = {name: nine_models.model_settings(params, name).input_size for name in PAPER_SPEC}
    assert sizes["InceptionV3"] == 75 and sizes["Xception"] == 71
    assert sizes["VGG16"] == max(params.image_size, 32)
    settings = nine_models.model_settings(params, "ResNet50")
    assert settings.trainable_last_layers is None and settings.paper_trainable_last_layers == 53
    assert settings.learning_rate == params.learning_rate
    assert settings.epsilon == nine_models.KERAS_ADAM_EPSILON and settings.weights is None
    assert nine_models.largest_input_size(params) == max(sizes.values()) == 75
    assert nine_models.largest_input_size(params, ["VGG16", "Xception"]) == 71


def test_a_models_override_row_changes_that_model_only():
    params = registry.resolve(
        "nine-models",
        "smoke",
        {"model_overrides": {"MobileNetV2": {"learning_rate": 0.003, "epochs": 4, "augment": {"flip": "horizontal"}}}},
    )
    changed = nine_models.model_parameters(params, "MobileNetV2")
    other = nine_models.model_parameters(params, "VGG16")
    assert (changed.epochs, changed.augment) == (4, {"flip": "horizontal"})
    assert other == params and params.epochs == 1  # the run's parameters themselves are left alone
    assert nine_models.model_settings(params, "MobileNetV2").learning_rate == 0.003
    assert nine_models.model_settings(params, "VGG16").learning_rate == params.learning_rate
    table = nine_models.settings_table(params, ["MobileNetV2", "VGG16"])
    assert table.loc["MobileNetV2", "epochs"] == 4 and table.loc["VGG16", "epochs"] == 1
    assert table.loc["VGG16", "augment"] == "none"


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"MobileNetV3": {"epochs": 2}}, "unknown model"),
        ({"VGG16": {"epoch": 2}}, "epoch"),
        ({"VGG16": {"models": ["VGG16"]}}, "models"),
        ({"VGG16": {"epochs": "two"}}, "Parameter 'epochs' expects an integer like 6, got 'two'"),
    ],
)
def test_override_rows_name_known_models_and_parameters(rows, message):
    params = registry.resolve("nine-models", "smoke", {"model_overrides": rows})
    with pytest.raises(ParameterError, match=message):
        nine_models.model_settings(params, "VGG16")


def test_model_names_are_checked():
    with pytest.raises(ParameterError, match="Unknown model"):
        nine_models.check_model_names(["VGG16", "ResNet18"])
    with pytest.raises(ParameterError, match="more than once"):
        nine_models.check_model_names(["VGG16", "VGG16"])
    with pytest.raises(ParameterError, match="empty"):
        nine_models.check_model_names([])
