"""Tests of common.models: flat backbones, data-defined heads, the papers' CNNs."""

import time

import keras
import numpy as np
import pytest

from common.explain import cams
from common import models
from common.errors import DataError, ParameterError

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


def backbone_layers(model):
    return [layer for layer in model.layers if not models.is_head_layer(layer)]


def head_layers(model):
    return [layer for layer in model.layers if models.is_head_layer(layer)]


def assert_head_matches(model, spec_layers, n_classes):
    """The head layers of ``model`` are the spec's, in order, then the softmax."""
    built = head_layers(model)
    assert [type(layer) for layer in built] == [
        models.LAYER_TYPES[entry["layer"]] for entry in spec_layers
    ] + [keras.layers.Dense]
    for layer, entry in zip(built, spec_layers):
        if entry["layer"] == "dense":
            assert layer.units == entry["units"]
        if entry["layer"] == "dropout":
            assert layer.rate == entry["rate"]
    output = built[-1]
    assert output.name == "predictions"
    assert output.units == n_classes
    assert output.activation is keras.activations.softmax


def test_every_backbone_builds_flat_at_its_paper_size_with_the_paper_head_and_trainable_layers():
    # weights=None, no training: building is symbolic, as quick at 320 px as at 32 px.
    started = time.perf_counter()
    for name, spec in models.BACKBONES.items():
        keras.backend.clear_session()
        setting = models.NINE_MODEL_SETTINGS[name]
        model = models.build_backbone_model(
            name, (spec.paper_size, spec.paper_size, 3), 2, head="nine_models",
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
        finer = cams.finer_layers(model)
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


def test_nine_models_heads_follow_the_paper():
    # No dropout for the VGGs; Xception has none before its first Dense.
    for name in ("VGG16", "VGG19"):
        kinds = [entry["layer"] for entry in models.NINE_MODEL_SETTINGS[name].head["layers"]]
        assert "dropout" not in kinds
    xception = [e["layer"] for e in models.NINE_MODEL_SETTINGS["Xception"].head["layers"]]
    assert xception[:4] == ["upsampling2d", "gap2d", "batchnorm", "dense"]
    second_dense = {
        name: setting.dense_units[1]
        for name, setting in models.NINE_MODEL_SETTINGS.items()
        if len(setting.dense_units) == 2
    }
    assert second_dense == {"ResNet50": 128, "ResNet101": 256, "Xception": 128}
    assert set(models.NINE_MODEL_SETTINGS) == set(models.BACKBONES)


def test_gap_head_and_custom_head_spec():
    model = models.build_backbone_model("VGG16", (32, 32, 1), 3, head="gap")
    assert_head_matches(model, models.gap_head(0.3)["layers"], 3)
    assert model.get_layer("predictions").dtype == "float32"
    assert model.name == "VGG16_gap"

    custom = {"layers": [{"layer": "gap2d"}, {"layer": "dense", "units": 7, "activation": "relu"}]}
    model = models.build_backbone_model("VGG16", (32, 32, 3), 2, head=custom, name="mine")
    assert_head_matches(model, custom["layers"], 2)
    assert model.get_layer("head_dense_1").units == 7
    assert model.name == "mine"

    assert [e["layer"] for e in models.gap_head(0)["layers"]] == ["gap2d"]
    with pytest.raises(ParameterError, match="layer"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, head={"layers": [{"units": 3}]})
    with pytest.raises(ParameterError, match="Unknown head"):
        models.build_backbone_model("VGG16", (32, 32, 3), 2, head="nope")
    with pytest.raises(ParameterError, match="Unknown backbone"):
        models.min_input_size("ResNet18")
    with pytest.raises(ParameterError, match="softmax"):
        models.build_backbone_model("VGG16", (32, 32, 3), 1)
    with pytest.raises(ParameterError, match="3 input channels"):
        models.build_backbone_model("VGG16", (32, 32, 1), 2, weights="imagenet")


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
    model = models.build_backbone_model(
        "MobileNetV2", (32, 32, 3), 2, trainable_fraction=0.3, bn_momentum=0.9
    )
    backbone = backbone_layers(model)
    n_trainable = int(np.floor(0.3 * len(backbone) + 0.5))
    assert [layer.trainable for layer in backbone] == (
        [False] * (len(backbone) - n_trainable) + [True] * n_trainable
    )
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
        models.build_backbone_model(
            "VGG16", (32, 32, 3), 2, trainable_fraction=0.3, trainable_last_layers=3
        )
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
    loaded = models.build_backbone_model("ResNet50", (32, 32, 3), 2, zero_init_residual=True,
                                         weights=tmp_path / "resnet50.weights.h5")
    assert all(gamma.all() for gamma in closing_gammas(loaded))
    assert models.zero_init_residual_branches(models.build_backbone_model("VGG16", (32, 32, 3), 2), None) == 0


def test_multi_organ_cnn_matches_the_paper_summary():
    model = models.build_multi_organ_cnn()
    total, trainable = models.count_params(model)
    assert total == trainable == 3_305_096
    # The paper's summary (seed 003) prints 3,305,098: it counts the compiled
    # Adam's two scalar variables (iteration, learning rate) as well.
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    assert total + len(model.optimizer.variables) == 3_305_098
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
        "MaxPooling2D", "Flatten", "Dense", "Dense",
    ]
    assert model.output.shape == (None, 8)
    assert model.get_layer("flatten_1").output.shape == (None, 25088)


def test_cnn3d_layers_and_shapes():
    model = models.build_cnn3d()
    assert model.output.shape == (None, 2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == (
        ["InputLayer"]
        + ["Conv3D", "MaxPooling3D", "BatchNormalization"] * 4
        + ["Conv3D", "Conv3D", "MaxPooling3D", "Flatten", "Dense"]
    )
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == [32, 64, 128, 128, 256, 512]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 4 + [(1, 1, 1)] * 2
    # 'same' padding: each pooling halves every axis, 64x64x32 -> 4x4x2 -> 2x2x1.
    assert model.get_layer("conv3d_6").output.shape == (None, 4, 4, 2, 512)

    paper = models.build_cnn3d((512, 512, 64, 1))
    assert paper.get_layer("conv3d_6").output.shape == (None, 32, 32, 4, 512)

    small = models.build_cnn3d(width=0.25, hidden_units=16, dropout=0.2)
    convs = [layer for layer in small.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == [8, 16, 32, 32, 64, 128]
    assert small.get_layer("dense_1").units == 16
    assert len([layer for layer in small.layers if isinstance(layer, keras.layers.Dropout)]) == 2


def test_plain_cnn():
    model = models.build_plain_cnn((64, 64, 3), 2)
    assert model.output.shape == (None, 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128]
    assert model.get_layer("conv2d_3").output.shape == (None, 16, 16, 128)
    probabilities = model(np.zeros((2, 64, 64, 3), dtype="float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
