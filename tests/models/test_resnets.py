"""Tests of common.models.resnets: ResNet-18, ResNet-32 and the 3D ResNet-18 against their published designs."""

import dataclasses

import keras
import numpy as np
import pytest

from common import models
from common.errors import ParameterError
from common.models import resnets


def test_resnet18_has_the_weights_of_the_published_imagenet_design():
    model = resnets.build_resnet(resnets.RESNET18, (224, 224, 3), 1000)
    total, trainable = models.count_params(model)
    # 11,689,512 weights with the 1000-class classifier (the count torchvision's resnet18 reports for
    # He et al.'s design with projection shortcuts); 512 x 1000 + 1000 of them are the classifier.
    assert trainable == 11_689_512
    # Batch norms' moving means and variances are weights Keras counts but nothing trains.
    assert total - trainable == 2 * sum(layer.gamma.shape[0] for layer in model.layers if "_bn" in layer.name)
    assert resnets.RESNET18.depth == 18
    # The grid halves in the stem (twice) and at each of stages 2-4: 224 -> 7 at the last block.
    assert model.get_layer("stem_pool").output.shape[1:3] == (56, 56)
    assert model.get_layer("stage4_block2_out").output.shape[1:] == (7, 7, 512)
    assert model.output.shape == (None, 1000) and model.layers[-1].name == "predictions"


def test_resnet32_has_the_weights_of_the_published_cifar_design():
    model = resnets.build_resnet(resnets.RESNET32, (32, 32, 3), 10)
    _, trainable = models.count_params(model)
    # He et al. 2016, Table 6: "ResNet-32 ... 0.46M" parameters on CIFAR-10 (option A shortcuts add none).
    assert trainable == 464_154
    assert resnets.RESNET32.depth == 32
    weighted = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(weighted) == 32  # 6n + 2 with n = 5: no projection convolution anywhere
    assert model.get_layer("stage1_block5_out").output.shape[1:] == (32, 32, 16)
    assert model.get_layer("stage3_block5_out").output.shape[1:] == (8, 8, 64)


def test_resnet3d_18_has_the_weights_of_hara_et_als_design():
    model = resnets.build_resnet(resnets.RESNET3D_18, (112, 112, 16, 3), 400)
    _, trainable = models.count_params(model)
    # Hara et al. 2018, Table 1: 3D ResNet-18 (shortcut A), 33.2M parameters for Kinetics' 400 classes.
    assert trainable == 33_235_280
    assert model.get_layer("stem_conv").kernel.shape == (7, 7, 7, 3, 64)
    assert model.get_layer("stage4_block2_out").output.shape[1:] == (4, 4, 1, 512)


def test_option_a_shortcut_subsamples_and_pads_with_zero_channels():
    keras.utils.set_random_seed(0)
    model = resnets.build_resnet(resnets.RESNET32, (8, 8, 2), 2, width=0.25)
    block_input = model.get_layer("stage1_block5_out").output
    shortcut = model.get_layer("stage2_block1_pad").output
    probe = keras.Model(model.input, [block_input, shortcut])
    x = np.random.default_rng(0).random((2, 8, 8, 2), dtype=np.float32)
    before, after = (np.asarray(y) for y in probe(x))
    assert before.shape == (2, 8, 8, 4) and after.shape == (2, 4, 4, 8)
    np.testing.assert_allclose(after[..., :4], before[:, ::2, ::2, :])
    assert not after[..., 4:].any()


def test_a_model_with_zero_padded_shortcuts_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    model = resnets.build_resnet(resnets.RESNET32, (8, 8, 1), 2, width=0.25)
    assert model.get_layer("stem_conv").filters == 4 and model.name == "resnet32"
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # the custom ZeroPadChannels layer is registered: safe mode loads it
    x = np.random.default_rng(1).random((2, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_batch_norm_momentum_is_set_or_left_at_keras_default():
    built = resnets.build_resnet(resnets.RESNET32, (8, 8, 1), 2, width=0.25, bn_momentum=0.8)
    default = resnets.build_resnet(resnets.RESNET32, (8, 8, 1), 2, width=0.25, bn_momentum=None)
    norms = [layer for layer in built.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {0.8}
    assert {layer.momentum for layer in default.layers if isinstance(layer, keras.layers.BatchNormalization)} == {
        keras.layers.BatchNormalization().momentum
    }


def test_bad_designs_and_inputs_are_refused():
    with pytest.raises(ParameterError, match="2D network"):
        resnets.build_resnet(resnets.RESNET18, (32, 32, 8, 1), 2)
    with pytest.raises(ParameterError, match="width"):
        resnets.build_resnet(resnets.RESNET32, (32, 32, 3), 2, width=0)
    with pytest.raises(ParameterError, match="one filter count per stage"):
        dataclasses.replace(resnets.RESNET18, filters=(64, 128))
    with pytest.raises(ParameterError, match="stem"):
        dataclasses.replace(resnets.RESNET18, stem="vgg")
    with pytest.raises(ParameterError, match="ndim"):
        dataclasses.replace(resnets.RESNET18, ndim=1)
    with pytest.raises(ParameterError, match="drop channels"):
        resnets.ZeroPadChannels(-1)
