"""Tests of common.explain.cams on tiny functional models (and one small ResNet50 without weights)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy import ndimage  # noqa: E402

from common.explain import cams  # noqa: E402
from common.errors import ParameterError  # noqa: E402

INPUT_2D = (16, 16, 1)
INPUT_3D = (8, 8, 6, 1)


def tiny_model(three_d=False, units=2, activation="softmax", pooled=False, seed=0):
    """Input -> conv -> [pool -> conv2] -> ReLU('relu') -> GAP -> Dense('head').

    With pooled=True the CAM layer has half the input resolution, so CAMs are upsampled.
    """
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv3D if three_d else keras.layers.Conv2D
    pool = keras.layers.MaxPooling3D if three_d else keras.layers.MaxPooling2D
    global_pool = keras.layers.GlobalAveragePooling3D if three_d else keras.layers.GlobalAveragePooling2D
    inputs = keras.Input(INPUT_3D if three_d else INPUT_2D)
    x = conv(4, 3, padding="same", name="conv")(inputs)
    if pooled:
        x = pool(2)(keras.layers.ReLU()(x))
        x = conv(3, 3, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = global_pool()(x)
    outputs = keras.layers.Dense(units, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs)


def random_images(model, n=4, seed=1):
    return np.random.default_rng(seed).random((n,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)


def hand_gradcam(model, images, class_index, layer="relu"):
    """Grad-CAM by hand on the logit (or +-logit of a sigmoid unit), at feature-map resolution."""
    head = model.get_layer("head")
    features = keras.Model(model.inputs, [model.get_layer(layer).output, head.input])
    with tf.GradientTape() as tape:
        activations, pooled = features(tf.constant(images), training=False)
        logits = tf.matmul(pooled, head.kernel) + head.bias
        score = logits[:, 0] * (2 * class_index - 1) if logits.shape[-1] == 1 else logits[:, class_index]
    gradients = tape.gradient(score, activations).numpy()
    activations = activations.numpy()
    spatial_axes = tuple(range(1, activations.ndim - 1))
    weights = gradients.mean(axis=spatial_axes, keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0)


def min_max(maps):
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    return (maps - low) / (high - low)


@pytest.mark.parametrize("three_d", [False, True], ids=["2d", "3d"])
@pytest.mark.parametrize("method", sorted(cams.METHODS))
def test_compute_cam_shape_range_and_batching(method, three_d):
    model = tiny_model(three_d=three_d, pooled=True)
    images = random_images(model, n=3)
    classes = [0, 1, 1]
    batched = cams.compute_cam(model, images, classes, method=method, batch_size=2, max_channels=2)
    one_by_one = np.concatenate(
        [
            cams.compute_cam(model, images[i : i + 1], classes[i], method=method, max_channels=2)
            for i in range(3)
        ]
    )
    assert batched.shape == images.shape[:-1]
    assert batched.dtype == np.float32
    assert batched.min() >= 0.0 and batched.max() <= 1.0
    assert np.isclose(batched.reshape(3, -1).max(axis=1), 1.0).any()
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


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
        model, model_modifier=ReplaceToLinear(), clone=True)
    score = BinaryScore([bool(c) for c in classes]) if units == 1 else CategoricalScore(classes)
    raw = reference(score, images, penultimate_layer="relu", seek_penultimate_conv_layer=False,
                    normalize_cam=False, expand_cam=False)
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
    assert not eager._layer_steps[("relu",)]["compiled"] and compiled._layer_steps[("relu",)]["compiled"]
    # By default one batch runs eagerly: a call that fits one batch is never compiled,
    # and a step that runs again is, within a call or over calls.
    default = cams.CamExplainer(model, method)
    np.testing.assert_allclose(default.cams(images, 1, "relu"), first, atol=1e-5)
    assert not default._layer_steps[("relu",)]["compiled"]
    np.testing.assert_allclose(default.cams(images, 1, "relu"), first, atol=1e-5)
    assert default._layer_steps[("relu",)]["compiled"]
    split = cams.CamExplainer(model, method)
    np.testing.assert_allclose(split.cams(images, 1, "relu", batch_size=2), first, atol=1e-5)
    assert split._layer_steps[("relu",)] == {**split._layer_steps[("relu",)], "batches": 3, "compiled": True}


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
@pytest.mark.parametrize("three_d", [False, True])
def test_several_layers_at_once_equal_each_layer_alone(method, three_d):
    model = tiny_model(three_d=three_d, pooled=True, seed=4)
    images = random_images(model, n=3)
    explainer = cams.CamExplainer(model, method)
    together = explainer.cams_at_layers(images, [0, 1, 1], ["conv", "relu", "conv2", "relu"])
    assert list(together) == ["conv", "relu", "conv2"]  # in order, a repeat once
    for layer, maps in together.items():
        alone = cams.CamExplainer(model, method).cams(images, [0, 1, 1], layer)
        np.testing.assert_allclose(maps, alone, atol=1e-5, err_msg=layer)
    if method != "scorecam":  # one gradient step for the three layers
        assert list(explainer._layer_steps) == [("conv", "relu", "conv2")]
    with pytest.raises(ParameterError, match="no layer"):
        explainer.cams_at_layers(images, 0, [])
    with pytest.raises(ParameterError, match="no layer 'nope'"):
        explainer.cams_at_layers(images, 0, ["relu", "nope"])


def test_mean_cam_is_the_renormalised_mean():
    first, second = np.array([[0.0, 1.0]]), np.array([[0.0, 0.5]])
    np.testing.assert_allclose(cams.mean_cam([first, second]), [[0.0, 1.0]])
    np.testing.assert_allclose(cams.mean_cam(iter([first])), first)


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


def test_compute_cam_leaves_the_model_untouched():
    model = tiny_model()
    images = random_images(model)
    before = model.predict(images, verbose=0)
    for method in cams.METHODS:
        cams.compute_cam(model, images, 0, method=method)
    np.testing.assert_allclose(model.predict(images, verbose=0), before, rtol=1e-6)
    assert model.get_layer("head").activation is keras.activations.softmax


def test_scorecam_max_channels_limits_channels():
    model = tiny_model(pooled=True)
    images = random_images(model, n=2)
    full = cams.compute_cam(model, images, 1, method="scorecam", layer="conv")
    limited = cams.compute_cam(model, images, 1, method="scorecam", layer="conv", max_channels=1)
    # One channel's Score-CAM is that feature map scaled: it differs from the 4-channel map.
    assert limited.shape == full.shape
    assert not np.allclose(limited, full)


def test_last_conv_layer_rule_on_tiny_models():
    assert cams.last_conv_layer(tiny_model()) == "relu"
    assert cams.last_conv_layer(tiny_model(three_d=True, pooled=True)) == "relu"
    inputs = keras.Input(INPUT_2D)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="last_conv")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    plain = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert cams.last_conv_layer(plain) == "last_conv"


def test_last_conv_layer_of_resnet50_with_upsampling_head():
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    x = keras.layers.UpSampling2D(4)(base.output)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(base.inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert cams.last_conv_layer(model) == "conv5_block3_out"
    # The stage outputs the resnet50-gradcam experiment lists by hand, found from shapes;
    # the UpSampling2D head's finer grid is not among them.
    assert cams.finer_layers(model) == ["conv4_block6_out", "conv3_block4_out", "conv2_block3_out"]
    assert cams.finer_layers(model, finest_stride=16) == ["conv4_block6_out"]


@pytest.mark.parametrize("three_d", [False, True])
def test_finer_layers_take_the_widest_layer_of_each_scale(three_d):
    conv, pool, pad = ((keras.layers.Conv3D, keras.layers.MaxPooling3D, keras.layers.ZeroPadding3D) if three_d
                       else (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.ZeroPadding2D))
    inputs = keras.Input((32, 32, 32, 1) if three_d else (32, 32, 1))
    x = conv(4, 3, padding="same", name="full")(inputs)  # 32: one cell per pixel, finer than kept
    x = pool(4)(x)
    stage = conv(16, 3, padding="same", name="stage_8")(x)  # 8: one cell per 4 pixels
    branch = conv(2, 1, name="narrow_branch_8")(stage)  # later, narrower, same grid
    x = pad(1, name="padding_10")(branch)  # not a feature map
    x = conv(8, 3, strides=2, name="stage_4")(x)  # (10 - 3) // 2 + 1 = 4
    x = conv(8, 3, padding="same", strides=2, name="last")(x)  # 2: the CAM layer
    x = keras.layers.UpSampling3D(4)(x) if three_d else keras.layers.UpSampling2D(4)(x)
    x = keras.layers.GlobalAveragePooling3D()(x) if three_d else keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert cams.last_conv_layer(model) == "last"
    assert cams.finer_layers(model) == ["stage_4", "stage_8"]
    assert cams.finer_layers(model, finest_stride=8) == ["stage_4"]
    assert cams.finer_layers(model, finest_stride=32) == []


def test_bad_arguments_raise_parameter_error():
    model = tiny_model()
    images = random_images(model)
    with pytest.raises(ParameterError, match="unknown CAM method"):
        cams.compute_cam(model, images, 0, method="lime")
    with pytest.raises(ParameterError, match="class_indices"):
        cams.compute_cam(model, images, 2)
    with pytest.raises(ParameterError, match="no layer"):
        cams.compute_cam(model, images, 0, layer="missing")
    sequential = keras.Sequential([keras.Input(INPUT_2D), keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
    with pytest.raises(ParameterError, match="Sequential"):
        cams.compute_cam(sequential, images, 0)


def test_layer_cams_and_group_average():
    model = tiny_model(pooled=True)
    images = random_images(model, n=3)
    per_layer = cams.layer_cams(model, images, 1, ["conv", "conv2"], method="gradcam")
    assert set(per_layer) == {"conv", "conv2"}
    assert all(cam.shape == (3, 16, 16) for cam in per_layer.values())
    averaged = cams.group_average_cam(model, images, 1, ["conv", "conv2"])
    np.testing.assert_allclose(averaged, min_max((per_layer["conv"] + per_layer["conv2"]) / 2), atol=1e-5)


def disc_cam(size=64, centre=(40, 22), radius=8.0):
    rows, cols = np.mgrid[:size, :size]
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return np.exp(-0.5 * (distance / radius) ** 2).astype(np.float32), distance


def test_cam_region_box_of_a_gaussian_blob():
    cam, distance = disc_cam()
    # cam >= 0.5 * max is the disc of radius r * sqrt(2 ln 2) around the centre.
    rows, cols = np.nonzero(distance <= 8.0 * np.sqrt(2 * np.log(2)))
    true_box = (cols.min(), rows.min(), cols.max(), rows.max())
    contours, box = cams.cam_region(cam, fraction=0.5)
    assert len(contours) == 1
    assert np.all(np.abs(np.array(box) - np.array(true_box)) <= 2)


def test_cam_region_picks_the_largest_of_two_regions_and_handles_zero_maps():
    cam = np.zeros((40, 40), np.float32)
    cam[5:8, 5:8] = 1.0
    cam[20:35, 10:30] = 0.9
    contours, box = cams.cam_region(cam, fraction=0.5)
    assert len(contours) == 2
    assert box == (10, 20, 29, 34)
    assert cams.cam_region(np.zeros((8, 8)), 0.5) == ([], None)


def test_draw_contours_draws_green_outline_and_box():
    cam, _ = disc_cam()
    image = np.full((64, 64), 0.5, np.float32)
    drawn = cams.draw_contours(image, cam)
    assert drawn.shape == (64, 64, 3) and drawn.dtype == np.uint8
    green = np.all(drawn == (0, 255, 0), axis=-1)
    _, (x0, y0, x1, y1) = cams.cam_region(cam)
    assert green[y0, x0:x1 + 1].all() and green[y0:y1 + 1, x1].all()
    assert not green[40, 22], "the centre of the region stays unpainted"
    assert np.all(drawn[~green] == 128)


@pytest.mark.parametrize(
    "image",
    [np.full((32, 32), 0.5), np.full((32, 32), 127.5), np.full((32, 32, 1), 128, np.uint8),
     np.full((32, 32, 3), 128, np.uint8)],
    ids=["unit-float", "byte-float", "grey-uint8", "rgb-uint8"],
)
def test_overlay_blends_colour_map_over_image(image):
    cam = np.zeros((16, 16), np.float32)
    cam[8:, :] = 1.0
    blended = cams.overlay(image, cam, alpha=0.4)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(cams.overlay(image, cam, alpha=0.0), np.full((32, 32, 3), 128, np.uint8))
    # jet: low values blue, high values red.
    top, bottom = blended[0, 0].astype(int), blended[-1, 0].astype(int)
    assert top[2] > top[0] and bottom[0] > bottom[2]


def test_upsampling_keeps_a_coarse_peak_over_the_block_its_cell_saw():
    coarse = np.zeros((1, 3, 3), np.float32)
    coarse[0, 0, 0] = 1.0  # the top-left cell covers rows and columns 0..31 of a 96 px image
    fine = cams.upsample_cams(coarse, (96, 96))
    assert fine.shape == (1, 96, 96)
    row, col = np.unravel_index(fine[0].argmax(), (96, 96))
    assert row < 32 and col < 32
    # cell-centred: the value sits at the block's centre (15.5) and its half-maximum region
    # ends at the block's edge (31.5); corner-aligned zoom would end it at pixel 23.75
    assert fine[0, 15, 15] == pytest.approx(1.0, abs=0.02)
    assert fine[0, 15, 30] > 0.5 > fine[0, 15, 33]
