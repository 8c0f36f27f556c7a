"""Compiling, fitting and predicting: one training loop for every model of the study.

Seeds, devices and precision are set beforehand by :mod:`common.training.runtime`.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from common.errors import DataError, ParameterError
from common.training import precision


def compile_model(
    model: keras.Model,
    lr: float,
    epsilon: float = 1e-7,
    loss: str | keras.losses.Loss = "sparse_categorical_crossentropy",
    metrics: Sequence = ("accuracy",),
    jit_compile: bool = False,
) -> keras.Model:
    """Compile ``model`` with Adam.

    Args:
        model: Model to compile.
        lr: Adam learning rate.
        epsilon: Adam epsilon (the nine-models paper uses 1e-3..1e-1).
        loss: Keras loss; ``"sparse_categorical_crossentropy"`` for integer
            labels, ``"categorical_crossentropy"`` or ``"binary_crossentropy"``
            for one-hot labels.
        metrics: Keras metrics.
        jit_compile: XLA compilation (see :func:`common.training.runtime.gpu_speedups`).

    Returns:
        The same model, compiled.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=epsilon),
        loss=loss,
        metrics=list(metrics),
        jit_compile=jit_compile,
    )
    # Create Adam's slots now: created inside the first traced train step they make
    # TensorFlow trace that step twice (ResNet50, 64 px: first step 49 s, 24 s this way).
    model.optimizer.build(model.trainable_variables)
    if not tf.distribute.has_strategy():
        # The same for the metrics' totals, which Keras builds in the first traced step
        # unless a strategy scope is active (DenseNet121, 64 px: first step 95 s, 53 s).
        _build_compiled_metrics(model, loss)
    return model


def _build_compiled_metrics(model: keras.Model, loss) -> None:
    """Create the compiled metrics' variables from one dummy prediction, then zero them.

    Keras picks a metric's variant from the label and prediction shapes ("accuracy" is
    sparse categorical for integer labels), so the dummy labels follow the loss.
    """
    n_outputs = model.output_shape[-1]
    y_pred = np.full((1, n_outputs), 1.0 / n_outputs, dtype="float32")
    loss_name = loss if isinstance(loss, str) else type(loss).__name__
    sparse = "sparse" in loss_name.lower()
    y_true = np.zeros((1,), dtype="int64") if sparse else np.zeros_like(y_pred)
    model.compute_metrics(None, y_true, y_pred)
    model.reset_metrics()


class _EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch, validation included."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def recalibrate_batch_norm(
    model: keras.Model, batches, max_batches: int | None = None, forward: Callable | None = None
) -> int:
    """Set the moving statistics of every batch norm to their mean over ``batches``, dropout off.

    A batch norm predicts with moving averages collected while training, with
    dropout on. Two things make those averages wrong for a model trained from
    scratch for a few dozen steps: they lag behind weights that still change
    fast, and a batch norm fed through dropout sees a wider spread of values
    in training than at prediction (Li et al., 2019, "Understanding the
    disharmony between dropout and batch normalization"). The nine-models
    paper's head (batch norm, dropout, dense, batch norm) has both: its models
    predicted one class for every validation image although they fitted the
    training images. Recomputing the statistics as plain means over training
    batches with dropout off ("precise BN", Wu & Johnson, 2021, "Rethinking
    'Batch' in BatchNorm") removes both; no validation or test image is used.

    One forward pass per batch with momentum 0, so each pass leaves that
    batch's statistics in the moving variables; their mean is written at the
    end. Frozen batch norms keep theirs.

    Args:
        model: The model to recalibrate (its weights are not changed).
        batches: ``(images, labels)`` batches of training data.
        max_batches: Use at most this many batches; None uses all.
        forward: Runs ``model(images, training=True)``; None runs it eagerly.
            A ``tf.function`` of it may be passed and reused between calls
            (:class:`_RecalibrateBeforeValidation` does): it is traced with
            momentum 0 and dropout off, which every call sets.

    Returns:
        The number of batches used.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [layer.momentum for layer in norms], [layer.rate for layer in dropouts]
    forward = forward or (lambda images: model(images, training=True))
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in norms]
    used = 0
    try:
        for layer in dropouts:
            layer.rate = 0.0
        for layer in norms:
            layer.momentum = 0.0
        for images, _ in batches:
            if max_batches is not None and used >= max_batches:
                break
            used += 1
            forward(images)
            for total, layer in zip(sums, norms):
                total[0] += layer.moving_mean.numpy()
                total[1] += layer.moving_variance.numpy()
        if used:
            for (mean, variance), layer in zip(sums, norms):
                layer.moving_mean.assign((mean / used).astype(layer.moving_mean.dtype))
                layer.moving_variance.assign((variance / used).astype(layer.moving_variance.dtype))
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, rates):
            layer.rate = rate
    return used


class _RecalibrateBeforeValidation(keras.callbacks.Callback):
    """Runs :func:`recalibrate_batch_norm` before each validation inside ``fit``.

    A model trained as a graph recalibrates through one traced forward pass,
    traced once per ``fit``: eager passes cost more than the training steps
    they follow (DenseNet121, 64 px, batch 8: 1.6-2.2 s eager, 0.31 s traced,
    8.8 s to trace; four passes before each of six validations).
    """

    def __init__(self, batches, max_batches: int | None):
        super().__init__()
        self.batches, self.max_batches = batches, max_batches
        self._forward = None

    def on_test_begin(self, logs=None):
        if self._forward is None and not self.model.run_eagerly:
            model = self.model
            self._forward = tf.function(lambda images: model(images, training=True), reduce_retracing=True)
        recalibrate_batch_norm(self.model, self.batches, self.max_batches, forward=self._forward)


def fit(
    model: keras.Model,
    train_ds,
    val_ds,
    epochs: int,
    patience: int = 5,
    class_weight: dict[int, float] | None = None,
    out_dir: str | pathlib.Path | None = None,
    monitor: str = "val_loss",
    verbose: int = 0,
    recalibrate_bn: int | None = None,
    log: Callable[[str], None] | None = print,
    early_stopping: bool = True,
) -> pd.DataFrame:
    """Train a compiled model and keep the weights of its best epoch, by default with early stopping.

    Args:
        model: A compiled model.
        train_ds: Training ``tf.data.Dataset`` of ``(input, label)`` batches,
            shuffled by the pipeline.
        val_ds: Validation dataset of batches, monitored for the best epoch.
        epochs: Maximum number of epochs (all of them without ``early_stopping``).
        patience: Epochs without improvement of ``monitor`` before stopping early.
        class_weight: Optional ``{class index: weight}`` (see :func:`class_weights`).
        out_dir: If given, ``history.csv`` and ``model.keras`` are written there.
        monitor: Logged quantity whose best epoch's weights are kept (the first
            such epoch); minimised when its name contains "loss", maximised otherwise.
        verbose: Keras verbosity; 0 (the default) prints no line per epoch: the curves are
            drawn from the returned history, and ``log`` gets one line for the whole fit.
        recalibrate_bn: If set, before each validation the batch norms'
            statistics are recomputed from this many training batches with
            dropout off (:func:`recalibrate_batch_norm`), so validation, early
            stopping and the kept weights see the statistics prediction uses.
        log: Called with one line when training ends, ``"<model name>: "`` and
            :func:`summary_line`; None for silence.
        early_stopping: Stop after ``patience`` epochs without improvement; False
            trains all ``epochs`` and still keeps the best epoch's weights (as a
            checkpoint saved only when ``monitor`` improves would).

    Returns:
        One row per epoch: ``epoch`` (from 1), every logged quantity (loss,
        accuracy, val_loss, val_accuracy, ...) and ``time_s``. The model holds
        the weights of the best epoch afterwards and computes in float32, also
        when it was built under a mixed policy (:mod:`common.training.precision`).
    """
    if epochs < 1:
        raise ParameterError(f"epochs={epochs} must be at least 1.")
    timer = _EpochTimer()
    # Keras restores the best epoch's weights when training ends, stopped early or not; without early
    # stopping the patience is one no fit of `epochs` epochs can use up (at most epochs - 1 epochs follow
    # the first), so the callback only keeps the best weights.
    stopper = keras.callbacks.EarlyStopping(
        monitor=monitor,
        mode="min" if "loss" in monitor else "max",
        patience=patience if early_stopping else epochs,
        restore_best_weights=True,
    )
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        class_weight=class_weight,
        # The recalibration runs first, so early stopping's kept weights include its statistics.
        callbacks=([_RecalibrateBeforeValidation(train_ds, recalibrate_bn)] if recalibrate_bn else [])
        + [stopper, timer],
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself; Keras warns if asked to
    )
    precision.to_float32(model)  # trained in mixed precision or not, it is evaluated and saved in float32
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", np.arange(1, len(table) + 1))
    table["time_s"] = timer.seconds
    if log is not None:
        log(f"{model.name}: {summary_line(table, epochs, monitor)}")
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_dir / "history.csv", index=False)
        model.save(out_dir / "model.keras")
    return table


def summary_line(history: pd.DataFrame, epochs: int, monitor: str = "val_loss") -> str:
    """One line for a finished fit: epochs run, its wall time and the best epoch's validation values.

    Example: ``"6 of 30 epochs in 137 s; best epoch 4: val_loss 0.087, val_accuracy 0.978"``
    (fewer epochs than asked for: early stopping ended the fit).

    Args:
        history: :func:`fit`'s table, one row per epoch.
        epochs: The most epochs the fit was allowed.
        monitor: The quantity early stopping watched; its best epoch is reported.
    """
    best = history[monitor].idxmin() if "loss" in monitor else history[monitor].idxmax()
    row = history.loc[best]
    values = ", ".join(f"{name} {row[name]:.3f}" for name in history.columns if name.startswith("val_"))
    return (
        f"{len(history)} of {epochs} epochs in {history['time_s'].sum():.0f} s; "
        f"best epoch {int(row['epoch'])}: {values}"
    )


def class_weights(labels: Sequence[int], n_classes: int) -> dict[int, float]:
    """Balanced class weights, ``n_samples / (n_classes * count)`` per class.

    Args:
        labels: Integer labels of the training set.
        n_classes: Number of classes; every one must occur in ``labels``.

    Returns:
        ``{class index: weight}`` for ``fit(class_weight=...)``.

    Raises:
        DataError: A class has no training sample.
    """
    labels = np.asarray(labels, dtype=int)
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise DataError(
            f"Classes {missing} have no training sample; class weights need every class "
            "in the training split (check the split or the label map)."
        )
    weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=labels)
    return {index: float(weight) for index, weight in enumerate(weights)}


def predict_proba(model: keras.Model, data, batch_size: int = 32) -> np.ndarray:
    """Class probabilities of ``model`` for an array or a dataset.

    Args:
        model: Model ending in a softmax.
        data: Array of inputs, or a ``tf.data.Dataset`` of batches (labels,
            if present, are ignored).
        batch_size: Batch size for array input.

    Returns:
        ``(N, n_classes)`` float32 array.
    """
    if isinstance(data, tf.data.Dataset):
        if isinstance(data.element_spec, tuple):
            # Inputs only, as an array gives them: a change of structure traces the
            # predict function again (a forward graph of the whole model each time).
            data = data.map(lambda inputs, *labels: inputs)
        probabilities = model.predict(data, verbose=0)
    else:
        probabilities = model.predict(np.asarray(data), batch_size=batch_size, verbose=0)
    return np.asarray(probabilities, dtype=np.float32)
