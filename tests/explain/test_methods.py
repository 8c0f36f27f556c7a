"""Tests of common.explain.methods: each method's maps by hand, against tf-keras-vis, eager and compiled."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from scipy import ndimage, stats

from common.explain import cams, methods
from tests.explain.helpers import (
    INPUT_2D,
    hand_features_and_gradients,
    hand_gradcam,
    min_max,
    random_images,
    tiny_model,
)


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


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("units,activation", [(3, "softmax"), (1, "sigmoid")])
@pytest.mark.parametrize("max_channels", [None, 2])
def test_batched_scorecam_reproduces_tf_keras_vis_image_by_image(max_channels, units, activation, three_d):
    """Many images per call give tf-keras-vis 0.8.7's Score-CAM of each image alone (the reference)."""
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    model = tiny_model(three_d=three_d, units=units, activation=activation, pooled=True, seed=3)
    images = random_images(model, n=4)
    classes = [0, 1, 1, 0]
    view = cams.logit_model(model)
    reference = Scorecam(methods._two_logit_head(view) if units == 1 else view, clone=False)
    raw = [
        np.asarray(
            reference(
                CategoricalScore([c]),
                image[None],
                penultimate_layer="relu",
                seek_penultimate_conv_layer=False,
                normalize_cam=False,
                expand_cam=False,
                max_N=max_channels,
            )
        )[0]
        for image, c in zip(images, classes)
    ]
    expected = cams.normalise_cams(cams.upsample_cams(np.stack(raw), images.shape[1:-1]))
    assert np.ptp(expected.reshape(4, -1), axis=1).min() > 0, "degenerate fixture: a flat reference CAM"
    computed = cams.compute_cam(model, images, classes, method="scorecam", layer="relu", max_channels=max_channels)
    np.testing.assert_allclose(computed, expected, atol=1e-4)


def test_scorecam_maps_do_not_depend_on_the_call_or_its_chunks(monkeypatch):
    """An image's Score-CAM is the same alone, among others, and when the masked copies are made in chunks."""
    model = tiny_model(pooled=True, seed=3)
    images = random_images(model, n=5)
    together = cams.compute_cam(model, images, 1, method="scorecam", layer="relu", max_channels=2)
    alone = cams.compute_cam(model, images[3:4], 1, method="scorecam", layer="relu", max_channels=2)
    np.testing.assert_allclose(alone[0], together[3], atol=1e-5)
    # Room for the masked copies of one image at a time: five chunks, the same maps.
    monkeypatch.setattr(methods, "SCORE_BYTES", 2 * images[0].nbytes)
    explainer = cams.CamExplainer(model, "scorecam")
    chunks = list(explainer.algorithm.raw_maps(images, np.ones(5, int), ("relu",), methods.CamOptions(max_channels=2)))
    assert [rows for rows, _ in chunks] == [slice(i, i + 1) for i in range(5)]
    np.testing.assert_allclose(
        cams.compute_cam(model, images, 1, method="scorecam", layer="relu", max_channels=2), together, atol=1e-5
    )


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

    assert list(methods.METHODS) == [
        "gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "xgradcam", "eigencam", "random"
    ]  # fmt: skip
    assert all(issubclass(method, methods.CamMethod) for method in methods.METHODS.values())
    weights = {
        "gradcam": methods.gradcam_weights,
        "gradcam++": methods.gradcam_plus_plus_weights,
        "hirescam": methods.hirescam_weights,
        "layercam": methods.layercam_weights,
        "xgradcam": methods.xgradcam_weights,
        "eigencam": methods.eigencam_weights,
    }
    for name, channel_weights in weights.items():
        assert issubclass(methods.METHODS[name], methods.GradientMethod)
        assert methods.METHODS[name].channel_weights is channel_weights
    assert [name for name, method in methods.METHODS.items() if method.baseline] == ["random"]
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


def _hand_maps(model, images, class_index, layer):
    """Each gradient method's raw map by hand from A and G (numpy), at the layer's resolution."""
    a, g = hand_features_and_gradients(model, images, class_index, layer)
    spatial = tuple(range(1, a.ndim - 1))
    flat = a.reshape(len(a), -1, a.shape[-1])
    eigen = []
    for matrix in flat:
        first = np.linalg.svd(matrix, full_matrices=False)[2][0]
        projection = matrix @ first
        eigen.append(projection if projection.sum() >= 0 else -projection)
    relu = lambda maps: np.maximum(maps, 0.0)  # noqa: E731
    return {
        "gradcam": relu((g.mean(axis=spatial, keepdims=True) * a).sum(-1)),
        "hirescam": relu((g * a).sum(-1)),
        "layercam": relu((np.maximum(g, 0.0) * a).sum(-1)),
        "xgradcam": relu(((a * g).sum(axis=spatial, keepdims=True) / a.sum(axis=spatial, keepdims=True) * a).sum(-1)),
        "eigencam": relu(np.stack(eigen).reshape(a.shape[:-1])),
    }


@pytest.mark.parametrize("method", ["hirescam", "layercam", "xgradcam", "eigencam"])
@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
def test_each_new_method_matches_its_hand_computation_at_a_finer_layer(method, three_d):
    # "conv" of the pooled model lies before a pooling and another convolution: its gradients vary by position.
    model = tiny_model(three_d=three_d, pooled=True, seed=5)
    images = random_images(model, n=3)
    expected = _hand_maps(model, images, 1, "conv")[method]
    assert np.ptp(expected.reshape(3, -1), axis=1).min() > 0, "degenerate fixture: a flat hand map"
    computed = cams.compute_cam(model, images, 1, method=method, layer="conv")
    np.testing.assert_allclose(computed, min_max(expected), atol=1e-4)


def test_before_global_pooling_hirescam_and_xgradcam_are_gradcam_and_layercam_drops_negative_channels():
    model = tiny_model(seed=2)
    images = random_images(model, n=3)
    hand = _hand_maps(model, images, 1, "relu")
    computed = {name: cams.compute_cam(model, images, 1, method=name, layer="relu") for name in hand}
    np.testing.assert_allclose(computed["hirescam"], computed["gradcam"], atol=1e-5)
    np.testing.assert_allclose(computed["xgradcam"], computed["gradcam"], atol=1e-5)
    a, g = hand_features_and_gradients(model, images, 1, "relu")
    channel = g[:, :1, :1, :]  # constant over positions here
    np.testing.assert_allclose(g, np.broadcast_to(channel, g.shape), atol=1e-7)
    layercam = np.maximum((np.maximum(channel, 0.0) * a).sum(-1), 0.0)
    np.testing.assert_allclose(computed["layercam"], min_max(layercam), atol=1e-4)


def test_eigencam_is_the_same_for_every_class_and_points_where_the_features_are_largest():
    model = tiny_model(pooled=True, seed=5)
    images = random_images(model, n=2)
    first, second = (cams.compute_cam(model, images, c, method="eigencam", layer="conv") for c in (0, 1))
    np.testing.assert_allclose(first, second, atol=1e-6)
    # One channel: the first principal direction is that channel, so the map is the channel itself.
    features = np.zeros((1, 4, 4, 1), np.float32)
    features[0, 1, 2, 0] = 3.0
    features[0, 3, 0, 0] = 1.0
    maps = methods.GradCam.weighted_sum(features, methods.eigencam_weights(features, np.zeros_like(features)))
    np.testing.assert_allclose(np.asarray(maps)[0], features[0, ..., 0], atol=1e-6)


def test_the_random_baseline_is_the_same_for_the_same_image_and_independent_of_the_model():
    model = tiny_model(pooled=True)
    other = tiny_model(pooled=True, seed=9)
    images = random_images(model, n=3)
    batched = cams.compute_cam(model, images, [0, 1, 1], method="random", layer="conv2")
    alone = cams.compute_cam(other, images[2:], 0, method="random", layer="conv2")
    np.testing.assert_allclose(batched[2:], alone)  # another model, class and batch: the same map
    assert not np.allclose(batched[0], batched[1])
    assert not np.allclose(batched[0], cams.compute_cam(model, images[:1], 0, method="random", layer="conv")[0])


def test_the_random_baseline_points_at_a_lesion_about_as_often_as_the_lesion_covers_the_image():
    from common.explain import scores

    model = tiny_model()  # "relu" has the input's 16 x 16 resolution: no upsampling
    images = np.random.default_rng(3).random((400, *INPUT_2D), dtype=np.float32)
    maps = cams.compute_cam(model, images, 0, method="random", layer="relu")
    masks = np.zeros(maps.shape, bool)
    masks[:, 2:10, 4:12] = True  # 64 of 256 pixels
    hits = scores.pointing_game(maps, masks, tolerance_px=0)
    low, high = stats.binomtest(int(hits.sum()), len(hits), 0.25).proportion_ci(0.99)
    assert low <= 0.25 <= high, hits.mean()


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("units,activation", [(2, "softmax"), (1, "sigmoid")])
def test_one_shared_pass_gives_every_gradient_method_its_own_maps(three_d, units, activation):
    model = tiny_model(three_d=three_d, units=units, activation=activation, pooled=True, seed=5)
    images = random_images(model, n=5)
    classes = [0, 1, 1, 0, 1]
    shared = cams.CamExplainer(model).cams_of_gradient_methods(images, classes, "conv", methods.GRADIENT_METHODS, 2)
    assert list(shared) == list(methods.GRADIENT_METHODS) and "scorecam" not in shared
    for name, maps in shared.items():
        np.testing.assert_allclose(maps, cams.compute_cam(model, images, classes, name, "conv"), atol=1e-5)
    from common.errors import ParameterError

    with pytest.raises(ParameterError, match="not all of"):
        cams.CamExplainer(model).cams_of_gradient_methods(images, classes, "conv", ["gradcam", "scorecam"])
