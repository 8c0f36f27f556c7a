"""Building, training and timing the comparison's models, one after another.

:func:`train_and_evaluate` trains every listed model with the shared fitting
steps (:mod:`common.experiments.fitting`) and records, besides the metrics,
what the paper's Table S3 and a reader deciding between models care about:
parameter counts, training time and inference throughput (:class:`ModelRun`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import pathlib
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from common import models
from common.config.params import NineModelsParams
from common.errors import DataError
from common.experiments.nine_models.settings import (
    ModelSettings,
    check_model_names,
    model_parameters,
    model_settings,
)
from common.training.runtime import Runtime

# Images timed for the throughput (registry ``throughput_images`` sets it per profile): a small test
# split is repeated to this many, a large one is cut to it.
MIN_TIMED_IMAGES = 64
# Batch of the test split's prediction: inference only (batch norm in inference mode), so the
# probabilities do not depend on it; the training batch (8) is small for a test split of hundreds.
PREDICT_BATCH = 64


def head_spec(settings: ModelSettings) -> dict:
    """The paper's head of ``settings.name``, its batch norms at ``settings.bn_momentum``.

    ``bn_momentum`` is meant for every batch norm of the model: the head's two
    are the last layers before the softmax, so with Keras' 0.99 their moving
    statistics still lag after the few dozen steps of a CPU run and the
    validation predictions collapse to one class. None keeps the paper's head
    as it is (Keras' default momentum).

    Args:
        settings: The model's settings.

    Returns:
        ``{"layers": [layer specs]}``, copies of the paper's.
    """
    layers = [dict(entry) for entry in models.NINE_MODEL_SETTINGS[settings.name].head["layers"]]
    if settings.bn_momentum is not None:
        for entry in layers:
            if entry["layer"] == "batchnorm":
                entry["momentum"] = settings.bn_momentum
    return {"layers": layers}


def build_model(settings: ModelSettings, n_classes: int, channels: int = 3) -> keras.Model:
    """Build one model of the comparison: its backbone with the paper's head.

    Args:
        settings: From :func:`common.experiments.nine_models.settings.model_settings`.
        n_classes: Softmax units (2 for cancer vs pneumonia).
        channels: Input channels (3: greyscale repeated, as ImageNet weights need).

    Returns:
        The functional ``keras.Model``, named after the architecture.
    """
    return models.build_backbone_model(
        settings.name,
        (settings.input_size, settings.input_size, channels),
        n_classes,
        head=head_spec(settings),
        weights=settings.weights,
        trainable_last_layers=settings.trainable_last_layers,
        bn_momentum=settings.bn_momentum,
        zero_init_residual=settings.zero_init_residual,
        name=settings.name,
    )


def inference_images_per_second(
    model: keras.Model, inputs: np.ndarray, batch_size: int, min_images: int = MIN_TIMED_IMAGES, as_graph: bool = True
) -> float:
    """Prediction throughput of ``model`` on model-ready images.

    Timed as a compiled graph by default, as deployed inference runs (also for
    a model trained eagerly). One warm-up batch first (tracing the predict
    function is not inference), then ``inputs`` repeated to at least
    ``min_images`` images are predicted in batches of ``batch_size`` and timed
    by the wall clock.

    Args:
        model: A built model.
        inputs: Model-ready images (N, H, W, C), N >= 1.
        batch_size: Batch size of the timed predictions.
        min_images: Images timed.
        as_graph: False times eager prediction instead, which skips tracing a
            predict graph per model (the smoke profile's seconds-long runs).

    Returns:
        Images per second.

    Raises:
        DataError: ``inputs`` is empty.
    """
    if len(inputs) == 0:
        raise DataError("Cannot time inference on an empty test split.")
    was_eager = model.run_eagerly
    model.run_eagerly = not as_graph
    try:
        model.predict(inputs[:batch_size], batch_size=batch_size, verbose=0)
        repeats = int(np.ceil(min_images / len(inputs)))
        timed = (np.concatenate([inputs] * repeats, axis=0) if repeats > 1 else inputs)[:min_images]
        started = time.perf_counter()
        model.predict(timed, batch_size=batch_size, verbose=0)
        seconds = time.perf_counter() - started
    finally:
        model.run_eagerly = was_eager
    return float(len(timed) / seconds)


def _cpu_seconds() -> float:
    """User plus system CPU time of this process and its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_memory() -> None:
    """Drop Keras' global state and collect garbage, so released models' memory returns."""
    keras.backend.clear_session()
    gc.collect()


@dataclasses.dataclass
class ModelRun:
    """One trained and evaluated model of a comparison.

    Attributes:
        settings: What it was built and trained with.
        model: The trained model (best epoch's weights), or None once
            :meth:`release` has written it to ``weights_path``.
        history: One row per epoch (see :func:`common.training.fit.fit`).
        probabilities: Test-split probabilities (N, C), in test-table order.
        metrics: :func:`common.evaluation.classification.classification_metrics` of the test split.
        test_inputs: The model-ready test images, in test-table order.
        params_total: All weights.
        params_trainable: Weights that trained.
        train_seconds: Wall-clock seconds of training (fit, validation included).
        train_cpu_seconds: CPU seconds of the process during training.
        inference_images_per_s: See :func:`inference_images_per_second`.
        inference_mode: ``"graph"`` or ``"eager"``, how the throughput was timed.
        training_precision: ``"float32"`` or ``"bfloat16"``, what it trained in (it is evaluated in float32).
        weights_path: Where :meth:`release` wrote the weights, else None.
        val_probabilities: Validation-split probabilities (N, C), in validation-table order, predicted
            with the test split, so the CAM section need not predict them again on a rebuilt model; None:
            not predicted.
    """

    settings: ModelSettings
    model: Any
    history: pd.DataFrame
    probabilities: np.ndarray
    metrics: dict
    test_inputs: np.ndarray
    params_total: int
    params_trainable: int
    train_seconds: float
    train_cpu_seconds: float
    inference_images_per_s: float
    inference_mode: str = "graph"
    training_precision: str = "float32"
    weights_path: pathlib.Path | None = None
    val_probabilities: np.ndarray | None = None

    def record(self) -> dict:
        """The model's ``metrics.json`` entry: its metrics plus sizes and costs."""
        return {
            **self.metrics,
            "input_size": self.settings.input_size,
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
            "epochs_trained": int(len(self.history)),
            "train_seconds": round(self.train_seconds, 2),
            "train_cpu_seconds": round(self.train_cpu_seconds, 2),
            "inference_images_per_s": round(self.inference_images_per_s, 2),
            "inference_mode": self.inference_mode,
            "training_precision": self.training_precision,
        }

    def release(self, weights_dir: str | pathlib.Path) -> None:
        """Write the weights to ``weights_dir/<name>.weights.npz`` and drop the model from memory.

        A trained model holds its optimiser state and traced graphs as well as
        its weights; nine of them resident at once took 16 GB in the default
        profile. Released, a run keeps only its numbers, and :meth:`loaded`
        rebuilds the model when a CAM needs it. Only the weights are written
        (Keras' ``save_weights`` adds Adam's two moments, three times the size).

        Args:
            weights_dir: Folder of the weight files (created when missing).
        """
        weights_dir = pathlib.Path(weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
        self.weights_path = weights_dir / f"{self.settings.name}.weights.npz"
        np.savez(self.weights_path, *self.model.get_weights())
        self.model = None
        free_memory()

    @contextlib.contextmanager
    def loaded(self) -> Iterator[keras.Model]:
        """The trained model for the ``with`` block; a released one is rebuilt and freed after.

        Yields:
            The model with its trained weights (not compiled when rebuilt).

        Raises:
            DataError: The run has neither a model in memory nor saved weights.
        """
        if self.model is not None:
            yield self.model
            return
        if self.weights_path is None:
            raise DataError(f"{self.settings.name} has neither a model in memory nor saved weights.")
        # Softmax units and input channels as the test split was predicted and fed.
        model = build_model(self.settings, self.probabilities.shape[1], self.test_inputs.shape[-1])
        # The arrays are arr_0, arr_1, ... in get_weights() order.
        with np.load(self.weights_path, allow_pickle=False) as stored:
            model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
        try:
            yield model
        finally:
            del model
            free_memory()


def train_one(
    params: NineModelsParams, samples: pd.DataFrame, test: pd.DataFrame, name: str, runtime: Runtime | None = None
) -> ModelRun:
    """Build, train, evaluate and time one model of the comparison, seeded afresh with ``params.seed``.

    Args:
        params: Resolved run parameters.
        samples: Sample table with a ``split`` column (train/val/test).
        test: Its test rows, re-indexed (the order of the probabilities).
        name: The model.
        runtime: Strategy and speed-ups the model is built and compiled in; None: one device.

    Returns:
        The trained and evaluated model.
    """
    from common.experiments import fitting
    from common.training import fit
    from common.training.runtime import set_seed

    settings, run_params = model_settings(params, name), model_parameters(params, name)
    runtime = (runtime or Runtime.local()).with_precision(run_params.precision)  # a model_overrides row may set it
    set_seed(params.seed)
    with runtime.scope():
        model = build_model(settings, len(params.classes), params.channels)
    data = fitting.datasets(run_params, samples, settings.preprocess, image_size=settings.input_size)
    wall_started, cpu_started = time.perf_counter(), _cpu_seconds()
    history = fitting.compile_and_fit(  # silent: train_and_evaluate logs one line per model
        run_params,
        model,
        data,
        epsilon=settings.epsilon,
        learning_rate=settings.learning_rate,
        runtime=runtime,
        log=None,
    )
    train_seconds = time.perf_counter() - wall_started
    train_cpu_seconds = _cpu_seconds() - cpu_started
    # The test images are read once: the inputs kept for the CAM sections are the ones predicted.
    inputs = fitting.model_inputs(data["test"])
    probabilities = fit.predict_proba(model, inputs, batch_size=PREDICT_BATCH)
    # With the predict graph traced, the validation split costs its forward passes only; the CAM
    # section chooses a layer on it after the model has been rebuilt (and would trace it again).
    val_probabilities = fit.predict_proba(model, fitting.model_inputs(data["val"]), batch_size=PREDICT_BATCH)
    groups = test["group"] if test["group"].notna().any() else None
    scores = fitting.score(run_params, test["label_index"].to_numpy(), probabilities, groups)
    total, trainable = models.count_params(model)
    return ModelRun(
        settings=settings,
        model=model,
        history=history,
        probabilities=probabilities,
        metrics=scores,
        test_inputs=inputs,
        params_total=total,
        params_trainable=trainable,
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        inference_images_per_s=inference_images_per_second(
            model, inputs, params.batch_size, min_images=params.throughput_images, as_graph=not params.run_eagerly
        ),
        inference_mode="eager" if params.run_eagerly else "graph",
        training_precision=runtime.precision,
        val_probabilities=val_probabilities,
    )


def run_line(run: ModelRun, params: NineModelsParams) -> str:
    """The one line a model of the comparison prints: input size, training, CPU time, test accuracy.

    Example: ``"DenseNet121, 64 px: 6 of 6 epochs in 137 s; best epoch 6: val_loss 0.087,
    val_accuracy 0.978; 104 s CPU; test accuracy 0.909"``.

    Args:
        run: The model's run.
        params: Its parameters (:func:`model_parameters`): the epochs allowed and the
            quantity whose best epoch was kept.
    """
    from common.experiments import fitting
    from common.training import fit

    summary = fit.summary_line(run.history, params.epochs, fitting.checkpoint_monitor(params))
    return (
        f"{run.settings.name}, {run.settings.input_size} px: {summary}; "
        f"{run.train_cpu_seconds:.0f} s CPU; test accuracy {run.metrics['accuracy']['value']:.3f}"
    )


def train_and_evaluate(
    params: NineModelsParams,
    samples: pd.DataFrame,
    names: Sequence[str] | None = None,
    log: Callable[[str], None] | None = print,
    runtime: Runtime | None = None,
    weights_dir: str | pathlib.Path | None = None,
) -> dict[str, ModelRun]:
    """Train and evaluate each model on the same split, one after another.

    Each model is seeded afresh with ``params.seed``, so its result does
    not depend on which models ran before it; each gets its own input size and
    input scaling (:func:`common.experiments.nine_models.settings.model_settings`), and keeps
    the weights of its best epoch by ``checkpoint_monitor``, with or without ``early_stopping``.
    Loss: sparse categorical cross-entropy on a 2-unit softmax, which equals the
    paper's binary cross-entropy (with two complementary outputs both losses are
    ``-log p(true class)``).

    Args:
        params: Resolved run parameters (``seed``, ``classes``, ``channels``,
            ``batch_size``, ``epochs``, ``patience``, ... and the switches of
            :func:`common.experiments.nine_models.settings.model_settings`).
        samples: Sample table with a ``split`` column (train/val/test).
        names: Models to run; default ``params.models``.
        log: Called with one line per finished model (:func:`run_line`); None for silence.
        runtime: A :class:`common.training.runtime.Runtime`: each model is built and
            compiled in its strategy, with its speed-ups; None: one device.
        weights_dir: When given, each model is released there
            (:meth:`ModelRun.release`) before the next is built, so memory
            holds one model at a time; None keeps every model in memory.

    Returns:
        Model name -> :class:`ModelRun`, in the order of ``names``.
    """
    names = check_model_names(params.models if names is None else names)
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    runs: dict[str, ModelRun] = {}
    for name in names:
        run = runs[name] = train_one(params, samples, test, name, runtime)
        if log is not None:
            log(run_line(run, model_parameters(params, name)))
        if weights_dir is not None:
            run.release(weights_dir)
    return runs


def model_records(runs: Mapping[str, ModelRun]) -> dict[str, dict]:
    """The ``models`` section of ``metrics.json``: per model its :meth:`ModelRun.record`.

    Args:
        runs: Model name -> its run.

    Returns:
        Model name -> record, in the runs' order.
    """
    return {name: run.record() for name, run in runs.items()}
