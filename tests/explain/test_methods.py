"""Tests of common.explain.methods: each method's maps by hand, against tf-keras-vis, eager and compiled."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from scipy import ndimage

from common.explain import cams
from tests.explain.helpers import hand_gradcam, min_max, random_images, tiny_model


@pytest.mark.parametrize(
    "units,activation,class_index",
    [(2, "softmax", 1), (2, "softmax", 0), (1, "sigmoid", 1), (1, "sigmoid", 0)],
)
def test_gradcam_matches_hand_computation_2d(units, activation, class_index):
    model = tiny_model(units=units, activation=activation)
    images = random_images(model, n=3)
    expected = hand_gradcam(model, images, class_index)
    assert np.ptp(expected.reshape(3, -1), axis=1).min() > 0, "degenerate fixture: a flat hand CAM"
    computed = cams.compute_cam(model, images, class_index, layer="relu")
    np.testing.assert_allclose(computed, min_max(expected), atol=1e-4)


def test_gradcam_matches_hand_computation_3d_with_upsampling():
    model = tiny_model(three_d=True, pooled=True, seed=3)
    images = random_images(model, n=2)
    expected = hand_gradcam(model, images, 1)
    assert expected.shape == (2, 4, 4, 3)
    assert np.ptp(expected.reshape(2, -1), axis=1).min() > 0, "degenerate fixture: a flat hand CAM"
    # cell-centred linear upsampling: each cell's value sits at the centre of the block it covers
    upsampled = ndimage.zoom(expected, (1, 2, 2, 2), order=1, grid_mode=True, mode="nearest")
    computed = cams.compute_cam(model, images, 1)
    np.testing.assert_allclose(computed, min_max(upsampled), atol=1e-4)


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("units,activation", [(3, "softmax"), (1, "sigmoid")])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_compiled_gradient_methods_reproduce_tf_keras_vis(method, units, activation, three_d):
    """The compiled Grad-CAM and Grad-CAM++ give tf-keras-vis 0.8.7's maps (the reference implementation)."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

    model = tiny_model(three_d=three_d, units=units, activation=activation, pooled=True, seed=3)
    images = random_images(model, n=4)
    classes = [0, 1, 1, 0]
    reference = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus}[method](
        model, model_modifier=ReplaceToLinear(), clone=True
    )
    score = BinaryScore([bool(c) for c in classes]) if units == 1 else CategoricalScore(classes)
    raw = reference(
        score,
        images,
        penultimate_layer="relu",
        seek_penultimate_conv_layer=False,
        normalize_cam=False,
        expand_cam=False,
    )
    expected = cams.normalise_cams(cams.upsample_cams(np.asarray(raw), images.shape[1:-1]))
    assert np.ptp(expected.reshape(4, -1), axis=1).min() > 0, "degenerate fixture: a flat reference CAM"
    computed = cams.compute_cam(model, images, classes, method=method, layer="relu", batch_size=3)
    np.testing.assert_allclose(computed, expected, atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_eager_and_compiled_steps_give_the_same_maps(method):
    model = tiny_model(pooled=True, seed=3)
    images = random_images(model, n=5)
    eager = cams.CamExplainer(model, method, compile_after_batches=100)
    compiled = cams.CamExplainer(model, method, compile_after_batches=0)
    first = eager.cams(images, 1, "relu")
    np.testing.assert_allclose(compiled.cams(images, 1, "relu"), first, atol=1e-5)
    assert (
        not eager.algorithm.layer_steps[("relu",)]["compiled"] and compiled.algorithm.layer_steps[("relu",)]["compiled"]
    )
    # By default one batch runs eagerly: a call that fits one batch is never compiled,
    # and a step that runs again is, within a call or over calls.
    default = cams.CamExplainer(model, method)
    np.testing.assert_allclose(default.cams(images, 1, "relu"), first, atol=1e-5)
    assert not default.algorithm.layer_steps[("relu",)]["compiled"]
    np.testing.assert_allclose(default.cams(images, 1, "relu"), first, atol=1e-5)
    assert default.algorithm.layer_steps[("relu",)]["compiled"]
    split = cams.CamExplainer(model, method)
    np.testing.assert_allclose(split.cams(images, 1, "relu", batch_size=2), first, atol=1e-5)
    assert split.algorithm.layer_steps[("relu",)] == {
        **split.algorithm.layer_steps[("relu",)],
        "batches": 3,
        "compiled": True,
    }


def test_binary_classes_give_opposite_evidence():
    model = tiny_model(units=1, activation="sigmoid")
    images = random_images(model, n=2)
    positive = hand_gradcam(model, images, 1)
    negative = hand_gradcam(model, images, 0)
    # The -logit score flips the sign before the ReLU: the two maps never both fire.
    assert np.all(np.minimum(positive, negative) < 1e-6)


@pytest.mark.parametrize(
    "method,class_zero_sign",
    [("gradcam", -1.0), ("gradcam++", -1.0), ("scorecam", 0.0)],
)
def test_sigmoid_model_matches_its_two_unit_softmax_equivalent(method, class_zero_sign):
    """A sigmoid unit with logit z is explained like a softmax over the logits [sign * z, z].

    Gradient methods score class 0 by -z (sign -1); Score-CAM weighs by probabilities, and
    softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)] (sign 0).
    """
    # Seed 3 gives non-flat maps for both classes with every method.
    binary = tiny_model(units=1, activation="sigmoid", pooled=True, seed=3)
    softmax = tiny_model(units=2, activation="softmax", pooled=True)
    for name in ("conv", "conv2"):
        softmax.get_layer(name).set_weights(binary.get_layer(name).get_weights())
    kernel, bias = binary.get_layer("head").get_weights()
    softmax.get_layer("head").set_weights(
        [np.concatenate([class_zero_sign * kernel, kernel], axis=1), np.concatenate([class_zero_sign * bias, bias])]
    )
    images = random_images(binary, n=4)
    classes = [0, 1, 0, 1]
    expected = cams.compute_cam(softmax, images, classes, method=method)
    assert np.ptp(expected.reshape(4, -1), axis=1).min() > 0, "degenerate fixture: a flat CAM"
    np.testing.assert_allclose(cams.compute_cam(binary, images, classes, method=method), expected, atol=1e-4)


def test_scorecam_max_channels_limits_channels():
    model = tiny_model(pooled=True)
    images = random_images(model, n=2)
    full = cams.compute_cam(model, images, 1, method="scorecam", layer="conv")
    limited = cams.compute_cam(model, images, 1, method="scorecam", layer="conv", max_channels=1)
    # One channel's Score-CAM is that feature map scaled: it differs from the 4-channel map.
    assert limited.shape == full.shape
    assert not np.allclose(limited, full)


def test_the_method_table_shares_one_base_and_gradient_methods_differ_in_channel_weights():
    from common.errors import ParameterError
    from common.explain import methods

    assert list(methods.METHODS) == ["gradcam", "gradcam++", "scorecam"]
    assert all(issubclass(method, methods.CamMethod) for method in methods.METHODS.values())
    gradient = [methods.METHODS["gradcam"], methods.METHODS["gradcam++"]]
    assert all(issubclass(method, methods.GradientMethod) for method in gradient)
    assert gradient[0].channel_weights is methods.gradcam_weights
    assert gradient[1].channel_weights is methods.gradcam_plus_plus_weights
    view = cams.logit_model(tiny_model())
    assert isinstance(methods.make_method("scorecam", view, binary=False), methods.ScoreCam)
    assert methods.make_method("gradcam++", view, False, compile_after_batches=0).compile_after_batches == 0
    with pytest.raises(ParameterError, match="unknown CAM method"):
        methods.make_method("lime", view, False)
    with pytest.raises(ParameterError, match="max_channels"):
        methods.CamOptions(max_channels=0)


def test_many_explainers_each_compiling_its_step_once_are_not_reported_as_retracing(caplog):
    # Every explainer traces its own step once; TensorFlow warned "triggered tf.function retracing"
    # from the fifth such step on when the steps were closures sharing one function's code.
    model = tiny_model()
    images = random_images(model, n=4)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for _ in range(7):
            explainer = cams.CamExplainer(model, "gradcam")
            explainer.cams(images, 1, batch_size=2)  # one eager batch, one compiled
            assert all(entry["compiled"] for entry in explainer.algorithm.layer_steps.values())
    assert not [r.getMessage() for r in caplog.records if "retracing" in r.getMessage()]
