"""Tests of common.training.fit: determinism, fitting, weights, batch-norm recalibration, prediction."""

import pathlib

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common.errors import DataError
from common.models import saving
from common.training import fit, runtime
from tests.training.helpers import batches, tiny_data, tiny_model

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"


def test_set_seed_makes_training_repeatable():
    x, y = tiny_data()

    def run():
        runtime.set_seed(7)
        model = fit.compile_model(tiny_model(dropout=0.3), lr=0.01)
        history = fit.fit(model, batches(x, y, shuffle=True), batches(x, y), epochs=2, verbose=0)
        return model.get_weights(), history

    first_weights, first_history = run()
    second_weights, second_history = run()
    for first, second in zip(first_weights, second_weights, strict=True):
        np.testing.assert_array_equal(first, second)
    pd.testing.assert_frame_equal(first_history.drop(columns="time_s"), second_history.drop(columns="time_s"))


def test_fit_writes_history_and_model_and_restores_the_best_weights(tmp_path):
    runtime.set_seed(0)
    x, y = tiny_data()
    # Validation labels are the training labels flipped: the better the model
    # learns, the worse val_loss gets, so the best epoch is not the last one.
    model = fit.compile_model(tiny_model(), lr=0.05)
    history = fit.fit(model, batches(x, y), batches(x, 1 - y), epochs=6, patience=2, out_dir=tmp_path, verbose=0)
    assert list(history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "time_s"]
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    assert (history["time_s"] > 0).all()
    best = history["val_loss"].idxmin()
    assert best != len(history) - 1
    restored_val_loss = model.evaluate(batches(x, 1 - y), verbose=0)[0]
    assert restored_val_loss == pytest.approx(history["val_loss"][best], rel=1e-5)

    written = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(written, history, check_dtype=False)
    reloaded = saving.load_model_safe(tmp_path / "model.keras")
    np.testing.assert_allclose(fit.predict_proba(reloaded, x), fit.predict_proba(model, x), rtol=1e-6)


def test_without_early_stopping_every_epoch_runs_and_the_first_best_by_the_monitor_is_kept():
    runtime.set_seed(0)
    x, y = tiny_data()
    # As above: the better the fit of the training labels, the worse the flipped validation labels do.
    stopped = fit.fit(
        fit.compile_model(tiny_model(), lr=0.05), batches(x, y), batches(x, 1 - y), 8, patience=1, log=None
    )
    assert len(stopped) < 8  # early stopping would have ended the fit
    runtime.set_seed(0)
    model = fit.compile_model(tiny_model(), lr=0.05)
    history = fit.fit(
        model, batches(x, y), batches(x, 1 - y), 8, patience=1, monitor="val_accuracy", early_stopping=False, log=None
    )
    assert len(history) == 8
    best = history["val_accuracy"].idxmax()  # the first epoch of the highest validation accuracy
    assert best != len(history) - 1
    val_loss, val_accuracy = model.evaluate(batches(x, 1 - y), verbose=0)
    assert val_accuracy == pytest.approx(history["val_accuracy"][best])
    assert val_loss == pytest.approx(history["val_loss"][best], rel=1e-5)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_the_first_train_step_is_traced_once_and_accuracy_fits_the_labels(loss):
    x, y = tiny_data()
    labels = y if loss.startswith("sparse") else np.eye(2, dtype="float32")[y]
    model = fit.compile_model(tiny_model(), lr=0.01, loss=loss)
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: traces.append(1) or train_step(data)
    model.train_on_batch(x, labels)
    model.train_on_batch(x, labels)
    assert len(traces) == 1
    # The dummy batch that built the metrics left nothing behind, and the
    # accuracy variant follows the labels (sparse or one-hot).
    accuracy = model.evaluate(x, labels, verbose=0, return_dict=True)["accuracy"]
    expected = np.mean(fit.predict_proba(model, x).argmax(axis=1) == y)
    assert accuracy == pytest.approx(expected)


def test_class_weights_are_balanced():
    # IQ-OTH/NCCD's class sizes: benign 120, malignant 561, normal 416.
    counts = [120, 561, 416]
    labels = np.repeat(np.arange(3), counts)
    weights = fit.class_weights(labels, 3)
    assert weights == pytest.approx({i: len(labels) / (3 * c) for i, c in enumerate(counts)})
    assert weights[0] > weights[2] > weights[1]
    with pytest.raises(DataError, match=r"\[2\]"):
        fit.class_weights([0, 1, 1], 3)


def test_predict_proba_from_arrays_and_datasets():
    model = tiny_model()
    x, y = tiny_data(n=10)
    from_array = fit.predict_proba(model, x, batch_size=4)
    from_dataset = fit.predict_proba(model, batches(x, y))
    assert from_array.shape == (10, 2) and from_array.dtype == np.float32
    np.testing.assert_allclose(from_array, from_dataset, rtol=1e-6)
    np.testing.assert_allclose(from_array.sum(axis=1), 1.0, rtol=1e-6)


def test_predict_proba_traces_one_function_for_datasets_and_arrays():
    x, _ = tiny_data(n=20)
    model = tiny_model()
    traces = []
    predict_step = model.predict_step
    model.predict_step = lambda data: traces.append(1) or predict_step(data)
    fit.predict_proba(model, batches(x, np.zeros(len(x), dtype="int64")))
    traced = len(traces)  # a full batch, then any batch size
    fit.predict_proba(model, x, batch_size=8)
    fit.predict_proba(model, x[:3])
    assert len(traces) == traced


def _dense_bn_dropout_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="dense")(inputs)
    hidden = keras.layers.BatchNormalization(momentum=0.99, name="bn")(hidden)
    hidden = keras.layers.Dropout(0.5, name="drop")(hidden)
    hidden = keras.layers.Dense(3, activation="relu", name="dense_2")(hidden)
    hidden = keras.layers.BatchNormalization(momentum=0.99, name="bn_2")(hidden)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(hidden))


def test_recalibrate_batch_norm_sets_plain_means_with_dropout_off():
    model = _dense_bn_dropout_model()
    x = np.random.default_rng(0).normal(3.0, 2.0, (32, 4)).astype("float32")
    batches = [(x[i : i + 8], np.zeros(8, int)) for i in range(0, 32, 8)]
    assert fit.recalibrate_batch_norm(model, batches) == 4

    # First batch norm: the mean over batches of each batch's mean and (biased) variance of its input.
    features = model.get_layer("dense")(x).numpy().reshape(4, 8, 3)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    # Second one: the same with dropout off, so a repeat gives the same statistics.
    second = model.get_layer("bn_2").moving_mean.numpy().copy()
    fit.recalibrate_batch_norm(model, batches)
    np.testing.assert_allclose(model.get_layer("bn_2").moving_mean.numpy(), second, rtol=1e-5)
    # Settings are restored, and max_batches caps the batches used.
    assert bn.momentum == 0.99 and model.get_layer("drop").rate == 0.5
    assert fit.recalibrate_batch_norm(model, batches, max_batches=2) == 2


def test_a_traced_forward_recalibrates_as_the_eager_one_and_is_reused():
    eager, traced = _dense_bn_dropout_model(), _dense_bn_dropout_model()
    traced.set_weights(eager.get_weights())
    x = np.random.default_rng(2).normal(1.0, 3.0, (40, 4)).astype("float32")
    batches = [(x[i : i + 8], np.zeros(8, int)) for i in range(0, 40, 8)]  # the last one partial
    forward = tf.function(lambda images: traced(images, training=True), reduce_retracing=True)
    fit.recalibrate_batch_norm(eager, batches, max_batches=3)
    for _ in range(2):  # traced with momentum 0 and dropout off, which the second call sets again
        fit.recalibrate_batch_norm(traced, batches, max_batches=3, forward=forward)
    for name in ("bn", "bn_2"):
        for variable in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(
                getattr(traced.get_layer(name), variable).numpy(),
                getattr(eager.get_layer(name), variable).numpy(),
                rtol=1e-5,
                atol=1e-6,
            )
    assert forward.experimental_get_tracing_count() == 1
    assert traced.get_layer("bn").momentum == 0.99 and traced.get_layer("drop").rate == 0.5


def test_fit_recalibrates_before_each_validation():
    model = _dense_bn_dropout_model()
    fit.compile_model(model, 1e-2)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    fit.fit(model, data, data, epochs=2, patience=2, verbose=0, recalibrate_bn=4)
    bn = model.get_layer("bn")
    features = model.get_layer("dense")(x).numpy().reshape(4, 16, 3)
    # The kept weights carry the statistics of the last recalibration, taken from the final weights.
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=1).mean(axis=0), rtol=1e-3, atol=1e-4)


def test_fit_prints_one_line_for_the_whole_fit_and_none_per_epoch(capfd):
    runtime.set_seed(0)
    x, y = tiny_data()
    model = fit.compile_model(tiny_model(), lr=0.05)
    capfd.readouterr()
    history = fit.fit(model, batches(x, y), batches(x, 1 - y), epochs=6, patience=2)
    out, err = capfd.readouterr()
    assert err == ""
    assert out == f"{model.name}: {fit.summary_line(history, 6)}\n"


def test_fit_with_log_none_prints_nothing(capfd):
    x, y = tiny_data()
    model = fit.compile_model(tiny_model(), lr=0.05)
    capfd.readouterr()
    fit.fit(model, batches(x, y), batches(x, y), epochs=2, log=None)
    assert capfd.readouterr() == ("", "")


def test_summary_line_names_the_epochs_run_and_the_best_epochs_validation_values():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [0.9, 0.5, 0.4],
            "val_accuracy": [0.5, 0.8, 0.75],
            "val_loss": [0.7, 0.3, 0.35],
            "time_s": [10.2, 5.1, 5.0],
        }
    )
    assert fit.summary_line(history, 30) == "3 of 30 epochs in 20 s; best epoch 2: val_accuracy 0.800, val_loss 0.300"
    assert fit.summary_line(history, 3, monitor="val_accuracy").startswith("3 of 3 epochs in 20 s; best epoch 2:")
    history.loc[2, "val_accuracy"] = 0.9
    assert "best epoch 3: val_accuracy 0.900" in fit.summary_line(history, 3, monitor="val_accuracy")
