"""Tests of common.experiments.slice_baselines: 2D slice classifiers pooled to volumes, on the 3D CNN's folds."""

import dataclasses

import keras
import numpy as np
import pytest

from common.errors import DataError, ParameterError
from common.experiments import slice_baselines, volumes
from common.report import figures
from tests.experiments.volume_runs import tiny_params
from tests.runs.checks import assert_png

# fixtures: phantom_dir, samples; inputs, masks, cv_dir, cv
pytest_plugins = ["tests.data.volume_fixtures", "tests.experiments.volume_fixtures"]

# The tiny phantoms are 16 px in-plane; the backbones' smallest input is 32 px.
SIDE = 32
BACKBONE = "ResNet50"  # only its preprocessing and smallest input are used: the model is the tiny one below


def tiny_slice_model():
    """One Conv2D layer and a softmax on 32 px RGB slices."""
    inputs = keras.Input((SIDE, SIDE, 3))
    features = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(pooled))


def slice_params(**changes):
    """The tiny cross-validation's settings (its folds) with a tiny slice loop."""
    values = {
        "slices_per_volume": 4,
        "slice_labels": "lesion",
        "slice_poolings": ["mean", "max"],
        "slice_epochs": 1,
        "slice_batch_size": 8,
        "slice_learning_rate": 1e-3,
        "slice_image_size": None,
        "slice_run_eagerly": False,
    }
    return dataclasses.replace(tiny_params(), **{**values, **changes})


@pytest.fixture(scope="module")
def baseline(samples, inputs, masks):
    return slice_baselines.cross_validate_slices(
        slice_params(), samples, inputs, BACKBONE, masks, new_model=tiny_slice_model
    )


def test_slices_are_evenly_spaced_and_stacked_volume_by_volume():
    assert slice_baselines.slice_depths(24, 8).tolist() == [0, 3, 7, 10, 13, 16, 20, 23]
    assert slice_baselines.slice_depths(8, None).tolist() == list(range(8))
    assert slice_baselines.slice_depths(8, 20).tolist() == list(range(8))
    with pytest.raises(ParameterError, match="at least one"):
        slice_baselines.slice_depths(8, 0)
    stack = np.arange(2 * 3 * 3 * 5, dtype=float).reshape(2, 3, 3, 5, 1)
    stacked = slice_baselines.stack_slices(stack, np.array([0, 4]))
    assert stacked.shape == (4, 3, 3, 1)
    for row, (volume, depth) in enumerate([(0, 0), (0, 4), (1, 0), (1, 4)]):
        np.testing.assert_array_equal(stacked[row, ..., 0], stack[volume, :, :, depth, 0])
    with pytest.raises(DataError, match="N, H, W, D"):
        slice_baselines.stack_slices(stack[0, ..., 0], np.array([0]))


def test_a_slice_is_labelled_by_its_lesion_or_else_by_its_volume():
    labels = np.array([0, 1, 1])
    masks = np.zeros((3, 2, 2, 4), dtype=bool)
    masks[1, 0, 0, 2] = True  # the first tumour's nodule touches slice 2 only; the second tumour has no mask
    depths = np.array([0, 2, 3])
    lesion = slice_baselines.slice_labels(labels, depths, "lesion", masks)
    assert lesion.tolist() == [0, 0, 0, 0, 1, 0, 1, 1, 1]
    assert slice_baselines.slice_labels(labels, depths, "volume", masks).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert slice_baselines.slice_labels(labels, depths, "lesion", None).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    with pytest.raises(ParameterError, match="slice_labels"):
        slice_baselines.slice_labels(labels, depths, "box", masks)


def test_slices_become_three_channel_inputs_at_least_the_backbones_smallest():
    params = slice_params()
    assert slice_baselines.input_size(params, BACKBONE) == (SIDE, SIDE)  # 16 px volumes, raised to 32
    assert slice_baselines.input_size(dataclasses.replace(params, slice_image_size=64), BACKBONE) == (64, 64)
    slices = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    inputs = slice_baselines.slice_inputs(slices, (SIDE, SIDE), "efficientnet")  # EfficientNet rescales inside
    assert inputs.shape == (2, SIDE, SIDE, 3) and inputs.dtype == np.float32
    np.testing.assert_allclose(inputs[..., 0], inputs[..., 2])
    assert 0 <= inputs.min() and inputs.max() <= 255 and inputs.max() > 1
    caffe = slice_baselines.slice_inputs(slices, (16, 16), "resnet50")  # ImageNet means subtracted per channel
    assert not np.allclose(caffe[..., 0], caffe[..., 2])


def test_rotated_training_batches_fill_the_corners_with_the_slices_air():
    images = np.full((4, SIDE, SIDE, 3), 50.0, dtype=np.float32)
    images[:, :, :, :] += np.linspace(-10, 10, SIDE)[None, :, None, None]
    data = slice_baselines.slice_dataset(images, np.array([0, 1, 0, 1]), 4, rotation_degrees=45.0, seed=0)
    batch, labels = next(iter(data))
    assert batch.shape == images.shape and sorted(labels.numpy().tolist()) == [0, 0, 1, 1]
    assert float(np.min(batch)) >= images.min() - 1e-4  # no zero-filled corners below the image's own floor


def test_slice_probabilities_are_pooled_per_volume():
    probabilities = np.array([0.1, 0.9, 0.2, 0.3, 0.3, 0.3])
    np.testing.assert_allclose(slice_baselines.pool_slices(probabilities, 2, "mean"), [0.4, 0.3])
    np.testing.assert_allclose(slice_baselines.pool_slices(probabilities, 2, "max"), [0.9, 0.3])
    with pytest.raises(ParameterError, match="pooling"):
        slice_baselines.pool_slices(probabilities, 2, "median")
    with pytest.raises(DataError, match="evenly"):
        slice_baselines.pool_slices(probabilities, 4, "mean")
    np.testing.assert_allclose(slice_baselines.volume_probabilities(np.array([0.9, 0.3]), 1), [[0.1, 0.9], [0.7, 0.3]])


def test_the_pooling_is_the_one_validation_accuracy_prefers_then_the_lower_log_loss():
    probabilities = np.array([0.1, 0.9, 0.2, 0.3, 0.3, 0.3])  # volume 0: mean 0.4, max 0.9; volume 1: 0.3 both
    tumour_then_normal = slice_baselines.choose_pooling(probabilities, np.array([1, 0]), ["mean", "max"], 1)
    assert tumour_then_normal.pooling == "max"
    assert tumour_then_normal.validation["mean"]["accuracy"] == 0.5 and tumour_then_normal.n_val == 2
    assert slice_baselines.choose_pooling(probabilities, np.array([0, 0]), ["mean", "max"], 1).pooling == "mean"
    # Both right on both volumes: the max (0.7, 0.2) fits better than the mean (0.65, 0.15).
    tie = slice_baselines.choose_pooling(np.array([0.6, 0.7, 0.1, 0.2]), np.array([1, 0]), ["mean", "max"], 1)
    assert tie.pooling == "max" and tie.validation["mean"]["accuracy"] == tie.validation["max"]["accuracy"] == 1.0
    assert slice_baselines.choose_pooling(probabilities, np.array([1, 0]), ["mean"], 1).pooling == "mean"
    assert tie.record()["validation"]["max"]["accuracy"] == 1.0
    with pytest.raises(ParameterError, match="empty"):
        slice_baselines.choose_pooling(probabilities, np.array([1, 0]), [], 1)


def test_a_fresh_start_restores_the_built_weights_and_keeps_the_traced_step():
    keras.utils.set_random_seed(0)
    model = tiny_slice_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    start = slice_baselines.FreshStart.of(model)
    images = np.random.default_rng(0).random((8, SIDE, SIDE, 3)).astype(np.float32)
    model.fit(images, np.array([0, 1] * 4), epochs=1, verbose=0)
    traced = model.train_function
    assert not np.allclose(model.get_weights()[0], start.weights[0])
    assert int(model.optimizer.iterations) > 0
    restored = start.restore()
    assert restored is model and model.train_function is traced
    for now, then in zip(model.get_weights(), start.weights):
        np.testing.assert_array_equal(now, then)
    assert int(model.optimizer.iterations) == 0
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)
    copy = slice_baselines.copy_model(model)
    assert copy is not model and np.array_equal(copy.get_weights()[0], model.get_weights()[0])


def test_baseline_uses_the_3d_cnns_folds_and_tests_every_volume_once(baseline, cv, samples):
    assert [f.fold for f in baseline.cv.folds] == [f.fold for f in cv.folds]
    for mine, theirs in zip(baseline.cv.folds, cv.folds):
        for part in ("fit_positions", "val_positions", "test_positions"):
            np.testing.assert_array_equal(getattr(mine, part), getattr(theirs, part))
    np.testing.assert_array_equal(baseline.cv.fold_of(), cv.fold_of())
    np.testing.assert_allclose(baseline.cv.out_of_fold_probabilities().sum(axis=1), 1.0, rtol=1e-5)
    assert baseline.labelled_by == "lesion" and baseline.depths.tolist() == [0, 2, 5, 7]
    assert baseline.input_size == (SIDE, SIDE) and baseline.preprocess == "resnet50"
    # Each fold keeps its own trained model; the last one is the model that trained.
    first, last = (fold.model for fold in baseline.cv.folds)
    assert first is not last
    assert not np.array_equal(first.get_weights()[0], last.get_weights()[0])


def test_each_fold_pools_its_test_volumes_as_its_validation_volumes_chose(baseline, samples, inputs, monkeypatch):
    labels = samples["label_index"].to_numpy()
    for fold, choice in zip(baseline.cv.folds, baseline.poolings):
        assert choice.n_val == len(fold.val_positions)
        test_slices = slice_baselines.stack_slices(inputs[fold.test_positions], baseline.depths)
        model_inputs = slice_baselines.slice_inputs(test_slices, baseline.input_size, baseline.preprocess)
        positive = slice_baselines.predict_positive(fold.model, model_inputs, 8, 1)
        pooled = slice_baselines.pool_slices(positive, len(fold.test_positions), choice.pooling)
        np.testing.assert_allclose(fold.probabilities[:, 1], pooled, atol=1e-5)
    seen = []
    original = slice_baselines.choose_pooling

    def spy(probabilities, chosen_labels, candidates, positive_index):
        seen.append(np.asarray(chosen_labels).tolist())
        return original(probabilities, chosen_labels, candidates, positive_index)

    monkeypatch.setattr(slice_baselines, "choose_pooling", spy)
    again = slice_baselines.cross_validate_slices(
        slice_params(slice_poolings=["max"]), samples, inputs, BACKBONE, None, new_model=tiny_slice_model
    )
    assert seen == [labels[fold.val_positions].tolist() for fold in again.cv.folds]
    assert [choice.pooling for choice in again.poolings] == ["max", "max"]
    assert again.labelled_by == "volume"  # no masks: every slice carries its volume's class


def test_baseline_record_has_per_fold_values_intervals_and_poolings(baseline):
    entry, record = baseline.record()
    for name in ("accuracy", "recall", "auc"):
        per_fold = [fold["metrics"][name]["value"] for fold in record["folds"]]
        assert entry[name]["folds"] == pytest.approx(per_fold)
        assert entry[name]["value"] == pytest.approx(np.mean(per_fold))
        low, high = entry[name]["ci95"]
        assert low <= entry[name]["value"] <= high
    assert record["slice_labels"] == "lesion" and record["slices_per_volume"] == 4
    assert record["input_shape"] == [SIDE, SIDE, 3]
    assert [fold["pooling"]["pooling"] for fold in record["folds"]] == [c.pooling for c in baseline.poolings]
    assert all(len(fold["history"]["loss"]) == fold["epochs"] for fold in record["folds"])
    assert list(baseline.fold_table().columns[:6]) == ["n_fit", "n_val", "n_test", "epochs", "seconds", "pooling"]


def test_binary_tasks_only_and_matching_tables(samples, inputs):
    with pytest.raises(DataError, match="same table"):
        slice_baselines.cross_validate_slices(
            slice_params(), samples, inputs[:-1], BACKBONE, new_model=tiny_slice_model
        )
    three = dataclasses.replace(slice_params(), classes=["a", "b", "c"], positive="c")
    with pytest.raises(ParameterError, match="binary"):
        slice_baselines.cross_validate_slices(three, samples, inputs, BACKBONE, new_model=tiny_slice_model)


def test_the_three_cam_views_stand_side_by_side(baseline, cv, samples, inputs, masks, tmp_path):
    tumour = int(np.flatnonzero((samples["label_index"].to_numpy() == 1) & masks.any(axis=(1, 2, 3)))[0])
    normal = int(np.flatnonzero(samples["label_index"].to_numpy() == 0)[0])
    shown = {
        "tumour": volumes.ShownVolume(tumour, 1, volumes.fold_cam(cv, inputs, tumour, 1), "t"),
        "normal": volumes.ShownVolume(normal, 0, volumes.fold_cam(cv, inputs, normal, 0), "n"),
    }
    depth = slice_baselines.lesion_depth(masks[tumour], shown["tumour"].cam)
    assert masks[tumour, :, :, depth].sum() == masks[tumour].sum(axis=(0, 1)).max()
    peak = np.zeros((4, 4, 5))
    peak[:, :, 3] = 1.0
    assert slice_baselines.lesion_depth(None, peak) == slice_baselines.lesion_depth(np.zeros((4, 4, 5)), peak) == 3
    cam = slice_baselines.slice_cam(baseline, inputs, tumour, depth, 1)
    assert cam.shape == (SIDE, SIDE) and 0 <= cam.min() and cam.max() <= 1
    baselines = {"EfficientNetB0": baseline, "ResNet50": baseline}
    panels, titles, outlines = slice_baselines.cam_views(
        inputs, masks, shown, cv.out_of_fold_probabilities(), baselines, "CNN3D"
    )
    assert len(panels) == len(titles) == len(outlines) == 2 * 3
    assert all(panel.shape == (*inputs.shape[1:3], 3) and panel.dtype == np.uint8 for panel in panels)
    assert titles[0].startswith(f"tumour, slice {depth}: CNN3D\n3D Grad-CAM, p = ")
    assert titles[1].startswith("EfficientNetB0\n2D Grad-CAM, p = ") and titles[2].startswith("ResNet50\n2D Grad-CAM")
    np.testing.assert_array_equal(outlines[0], masks[tumour, :, :, depth])
    assert outlines[3:] == [None] * 3  # a normal volume has no nodule to outline
    path = tmp_path / "cam_views.png"
    figures.plt.close(figures.image_grid(panels, titles, outlines, ncols=3, path=path))
    assert_png(path)


def test_every_fold_starts_from_the_same_untrained_weights(samples, inputs, masks, monkeypatch):
    from common.training import fit

    starts = []
    original = fit.fit

    def recording_fit(model, *args, **kwargs):
        starts.append([weights.copy() for weights in model.get_weights()])
        return original(model, *args, **kwargs)

    monkeypatch.setattr(fit, "fit", recording_fit)
    slice_baselines.cross_validate_slices(slice_params(), samples, inputs, BACKBONE, masks, new_model=tiny_slice_model)
    assert len(starts) == 2
    for first, second in zip(*starts):
        np.testing.assert_array_equal(first, second)


def stub_baseline(name: str, validation_right: int, n_val: int, labelled_by: str = "lesion"):
    """A baseline whose folds' validation accuracy is ``validation_right`` of ``n_val`` (two folds, classes even)."""
    half = n_val // 2
    choices = [
        slice_baselines.PoolingChoice("mean", {"mean": {"accuracy": right / half, "log_loss": 0.5}}, half, 0.5)
        for right in (validation_right // 2, validation_right - validation_right // 2)
    ]
    return slice_baselines.SliceBaseline(
        name,
        None,
        choices,
        np.arange(4),
        (48, 48),
        None,
        labelled_by,
        None,
        24,
        1.0,  # type: ignore[arg-type]
    )


def test_a_baseline_learned_only_when_its_validation_accuracy_clears_the_class_balance():
    assert stub_baseline("good", 58, 60).learned()
    assert not stub_baseline("chance", 31, 60).learned()
    assert stub_baseline("chance", 31, 60).on_validation() == (31, 60, 0.5)
    # 40 of 60 (0.667) has a Wilson interval of 0.54-0.77: above the 0.5 of the commonest class.
    assert stub_baseline("some", 40, 60).learned() and not stub_baseline("little", 34, 60).learned()


def test_the_verdict_leaves_out_a_baseline_that_did_not_learn_and_says_why():
    from common.evaluation.paired import paired_comparison

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    truth = np.eye(2)[labels]
    probabilities = {
        "CNN3D": 0.9 * truth + 0.05,
        "ResNet50": np.where(rng.random((80, 1)) < 0.7, 0.8 * truth + 0.1, 0.8 * (1 - truth) + 0.1),
        "EfficientNetB0": np.full((80, 2), 0.5) + rng.normal(0, 0.01, (80, 1)) * [1, -1],
    }
    comparison = paired_comparison(labels, probabilities, ["normal", "tumor"], metrics=("accuracy",), n_resamples=200)
    baselines = {name: stub_baseline(name, right, 60) for name, right in (("ResNet50", 55), ("EfficientNetB0", 30))}
    verdict = slice_baselines.claim_verdict(comparison, "CNN3D", baselines).splitlines()
    assert verdict[0].startswith("- Accuracy: CNN3D is best, significantly better than ResNet50 (")
    assert "EfficientNetB0" not in verdict[0].split("(")[0]  # not among the beaten, nor the tied
    assert verdict[1].startswith("- EfficientNetB0 did not learn: on its validation volumes it was right 30 times of")
    assert verdict[2].startswith("- Supervision: ResNet50 learned from slice labels drawn from the nodule masks")
    by_volume = {name: dataclasses.replace(b, labelled_by="volume") for name, b in baselines.items()}
    assert len(slice_baselines.claim_verdict(comparison, "CNN3D", by_volume).splitlines()) == 2
