"""Tests of common.models.backbones: the registry's table, flat models, freezing, weights files."""

import time

import keras
import numpy as np
import pytest

from common import models
from common.config import registry
from common.errors import DataError, ParameterError
from common.explain.layers import finer_layers
from common.models import backbones
from tests.models.helpers import assert_head_matches, backbone_layers

# Parameter counts stated in seed 002's Discussion (millions, one decimal):
# ResNet50 24.1, VGG19 20.1, InceptionV3 22.3, InceptionResNetV2 55.1, DenseNet121 7.3,
# MobileNetV2 2.6; VGG16 has 5.3 M fewer than VGG19. ResNet101 and Xception are only in
# the paper's supplement. Counts do not depend on the input size (the heads pool globally).
PAPER_PARAMS_MILLIONS = {
    "ResNet50": 24.1,
    "VGG19": 20.1,
    "VGG16": 20.1 - 5.3,
    "InceptionV3": 22.3,
    "InceptionResNetV2": 55.1,
    "DenseNet121": 7.3,
    "MobileNetV2": 2.6,
}

# The widest layer of the grid before the last one, named as the paper's Fig. 4 and Keras name them.
COARSEST_FINER_LAYER = {
    "ResNet50": "conv4_block6_out",
    "ResNet101": "conv4_block23_out",
    "VGG16": "block4_conv3",
    "VGG19": "block4_conv4",
    "InceptionV3": "mixed7",
    "DenseNet121": "pool4_relu",
}


def test_every_backbone_builds_flat_at_its_paper_size_with_the_paper_head_and_trainable_layers():
    # weights=None, no training: building is symbolic, as quick at 320 px as at 32 px.
    started = time.perf_counter()
    for name, setting in models.NINE_MODEL_SETTINGS.items():
        keras.backend.clear_session()
        spec = models.BACKBONES[name]
        model = models.build_backbone_model(
            name,
            (spec.paper_size, spec.paper_size, 3),
            2,
            head="nine_models",
            trainable_last_layers=setting.trainable_last_layers,
        )
        assert model.input.shape == (None, spec.paper_size, spec.paper_size, 3)
        # Flat: no layer is itself a model, and the input is the backbone's own.
        assert not any(isinstance(layer, keras.Model) for layer in model.layers), name
        assert model.output.shape == (None, 2)
        assert_head_matches(model, setting.head["layers"], 2)

        trainable = [layer.trainable for layer in backbone_layers(model)]
        n_trainable = setting.trainable_last_layers
        assert trainable == [False] * (len(trainable) - n_trainable) + [True] * n_trainable, name
        # The paper froze about 70 % of each backbone.
        assert 0.2 <= n_trainable / len(trainable) <= 0.4, name

        # Grad-CAM's finer candidates are the stage outputs, coarsest first (the nine-models experiment scores one).
        finer = finer_layers(model)
        assert finer and finer[0] == COARSEST_FINER_LAYER.get(name, finer[0]), (name, finer)

        if name in PAPER_PARAMS_MILLIONS:
            total, _ = models.count_params(model)
            assert abs(total / 1e6 - PAPER_PARAMS_MILLIONS[name]) < 0.1, (name, total)

        # The minimum size is Keras' own limit, not only ours.
        size = models.min_input_size(name)
        with pytest.raises(ValueError):
            spec.constructor(include_top=False, weights=None, input_shape=(size - 1, size - 1, 3))
        with pytest.raises(ParameterError, match=str(size)):
            models.build_backbone_model(name, (size - 1, size + 10, 3), 2)
    print(f"nine backbones built in {time.perf_counter() - started:.1f} s")


def test_a_backbone_outside_the_nine_builds_flat_at_its_smallest_input():
    # Seed 001's EfficientNetB0 baseline: no nine-models setting and no paper size, the rest as for the nine.
    spec = models.BACKBONES["EfficientNetB0"]
    assert spec.paper_size is None and "EfficientNetB0" not in models.NINE_MODEL_SETTINGS
    size = models.min_input_size("EfficientNetB0")
    model = models.build_backbone_model("EfficientNetB0", (size, size, 3), 2, head=models.gap_head(0.0))
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.output.shape == (None, 2)
    with pytest.raises(ValueError):
        spec.constructor(include_top=False, weights=None, input_shape=(size - 1, size - 1, 3))


def test_backbone_weights_file_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    saved = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    # Non-default moving statistics, so they are checked too.
    saved.get_layer("bn_Conv1").moving_mean.assign(np.full(32, 0.25, dtype="float32"))
    path = tmp_path / "mobilenet_v2.weights.h5"
    saved.save_weights(path)

    # A larger input: convolution weights do not depend on the input size.
    model = models.build_backbone_model("MobileNetV2", (48, 48, 3), 2, weights=path)
    loaded = {layer.name: layer for layer in backbone_layers(model)}
    for layer in (layer for layer in saved.layers if layer.weights):
        for expected, actual in zip(layer.weights, loaded[layer.name].weights, strict=True):
            np.testing.assert_array_equal(actual.numpy(), expected.numpy())

    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(DataError, match="does not exist"):
        models.build_backbone_model("MobileNetV2", (32, 32, 3), 2, weights=missing)
    wrong_suffix = tmp_path / "backbone.h5"
    wrong_suffix.write_bytes(b"")
    with pytest.raises(DataError, match="weights.h5"):
        models.build_backbone_model("MobileNetV2", (32, 32, 3), 2, weights=wrong_suffix)
    with pytest.raises(DataError, match="Could not load"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, weights=path)


def test_freezing_and_batchnorm_momentum():
    model = models.build_backbone_model("MobileNetV2", (32, 32, 3), 2, trainable_fraction=0.3, bn_momentum=0.9)
    backbone = backbone_layers(model)
    n_trainable = int(np.floor(0.3 * len(backbone) + 0.5))
    assert [layer.trainable for layer in backbone] == ([False] * (len(backbone) - n_trainable) + [True] * n_trainable)
    norms = [layer for layer in backbone if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)

    # A training-mode call updates the moving statistics of trainable BatchNorms only.
    frozen = next(layer for layer in norms if not layer.trainable)
    unfrozen = next(layer for layer in reversed(norms) if layer.trainable)
    before = {layer.name: layer.moving_mean.numpy().copy() for layer in (frozen, unfrozen)}
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    model(images, training=True)
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), before[frozen.name])
    assert not np.array_equal(unfrozen.moving_mean.numpy(), before[unfrozen.name])

    everything = models.build_backbone_model("VGG16", (32, 32, 3), 2)
    assert all(layer.trainable for layer in everything.layers)
    assert models.count_params(everything)[0] == models.count_params(everything)[1]
    nothing = models.build_backbone_model("VGG16", (32, 32, 3), 2, trainable_last_layers=0)
    total, trainable = models.count_params(nothing)
    assert trainable == 512 * 2 + 2  # the softmax layer only
    with pytest.raises(ParameterError, match="not both"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, trainable_fraction=0.3, trainable_last_layers=3)
    with pytest.raises(ParameterError, match="trainable_fraction"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, trainable_fraction=1.5)


def test_zero_init_residual_starts_every_resnet_block_as_the_identity(tmp_path):
    def closing_gammas(model):
        return [layer.gamma.numpy() for layer in model.layers if layer.name.endswith("_3_bn")]

    zeroed = models.build_backbone_model("ResNet50", (32, 32, 3), 2, zero_init_residual=True)
    gammas = closing_gammas(zeroed)
    assert len(gammas) == 16  # ResNet50's 3 + 4 + 6 + 3 bottleneck blocks
    assert all(not gamma.any() for gamma in gammas)
    # Only the closing batch norms change; the shortcut's (convN_block1_0_bn) keeps gamma 1.
    assert zeroed.get_layer("conv3_block1_0_bn").gamma.numpy().all()
    assert all(gamma.all() for gamma in closing_gammas(models.build_backbone_model("ResNet50", (32, 32, 3), 2)))
    # Loaded weights are never overwritten, and a backbone without residual branches is untouched.
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "resnet50.weights.h5")
    loaded = models.build_backbone_model(
        "ResNet50", (32, 32, 3), 2, zero_init_residual=True, weights=tmp_path / "resnet50.weights.h5"
    )
    assert all(gamma.all() for gamma in closing_gammas(loaded))
    assert models.zero_init_residual_branches(models.build_backbone_model("VGG16", (32, 32, 3), 2), None) == 0


def test_backbones_table_is_read_from_the_registry(monkeypatch):
    entries = registry.section("backbones")
    assert list(models.BACKBONES) == list(entries)
    for name, entry in entries.items():
        spec = models.BACKBONES[name]
        assert spec.constructor is getattr(keras.applications, entry["application"])
        assert (spec.preprocess, spec.paper_size, spec.min_size, spec.residual_bn_suffix) == (
            entry["preprocess"],
            entry["paper_size"],
            entry["min_size"],
            entry.get("residual_bn_suffix"),
        )
    # The paper's input sizes (seed 002, Methods), grouped as the paper groups them.
    sizes = {name: models.BACKBONES[name].paper_size for name in models.NINE_MODEL_SETTINGS}
    assert {size: sorted(n for n in sizes if sizes[n] == size) for size in set(sizes.values())} == {
        224: ["DenseNet121", "ResNet101", "ResNet50"],
        299: ["InceptionResNetV2", "InceptionV3", "Xception"],
        320: ["MobileNetV2", "VGG16", "VGG19"],
    }
    assert [n for n, spec in models.BACKBONES.items() if spec.residual_bn_suffix] == ["ResNet50", "ResNet101"]

    monkeypatch.setattr(registry, "section", lambda name: {"Mine": {"application": "NoSuchNet"}})
    with pytest.raises(ParameterError, match="backbones.Mine.*NoSuchNet"):
        backbones.load_backbones()
    monkeypatch.setattr(
        registry,
        "section",
        lambda name: {
            "VGG16": {"application": "VGG16", "preprocess": "vgg16", "paper_size": 1, "min_size": 1, "colour": "red"}
        },
    )
    with pytest.raises(ParameterError, match="backbones.VGG16.*colour"):
        backbones.load_backbones()
