"""Train and evaluate several ImageNet backbones on one split and compare them.

The nine-models experiment (seed 002) fine-tunes nine ``keras.applications``
architectures on the same cancer-vs-pneumonia split. Everything that differs
between them is data: the architecture's row of :data:`common.models.BACKBONES`
(input size, ``preprocess_input``) and of
:data:`common.models.NINE_MODEL_SETTINGS` (head, trainable last layers, Adam
learning rate and epsilon). :func:`model_settings` turns one model's rows and
the run's parameters into the settings of that run; the profile switches
(``paper_input_sizes``, ``paper_trainable_layers``, ``paper_optimiser``) decide
whether the paper's values or the run's CPU-sized ones apply.

:func:`train_and_evaluate` trains every listed model with the shared workflow
steps and records, besides the metrics, what the paper's Table S3 and a
reader deciding between models care about: parameter counts, training time
and inference throughput. :func:`comparison_table` and
:func:`paper_comparison_table` turn the records into the tables the notebook
shows, and :func:`layer_groups` names the frozen and trainable convolution
layers whose averaged Grad-CAMs the paper compares (its Fig. S3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import pathlib
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.evaluation import metrics
from common import models
from common.config.params import NineModelsParams
from common.errors import DataError, ParameterError

# Metric columns of the comparison, in the paper's Table 2 order.
TABLE_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "specificity")
# Columns of the comparison table besides the metrics, in display order.
COST_COLUMNS = ("input_size", "params_total", "params_trainable", "epochs_trained",
                "train_seconds", "train_cpu_seconds", "inference_images_per_s")
# Appended to the table cell of the best model of a metric (ties all marked).
BEST_MARK = " ◆"
# Fewest images timed for the throughput (registry ``throughput_images`` sets it per profile),
# so small test splits still give a stable rate.
MIN_TIMED_IMAGES = 64


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """Everything one model of a comparison run is built and trained with.

    Attributes:
        name: A :data:`common.models.BACKBONES` key.
        input_size: Square input side in pixels.
        preprocess: ``keras.applications`` module whose ``preprocess_input`` is used.
        trainable_last_layers: Backbone layers that train, counted from its end;
            None trains the whole backbone.
        paper_trainable_last_layers: The paper's count, which also splits the
            layers into the "frozen" and "trainable" groups of the CAM comparison.
        learning_rate: Adam learning rate.
        epsilon: Adam epsilon.
        weights: None, ``"imagenet"`` or a weights file.
        bn_momentum: Backbone batch-norm momentum, None for Keras' default.
        zero_init_residual: Start residual branches at zero (random weights only;
            see :func:`common.models.zero_init_residual_branches`).
    """

    name: str
    input_size: int
    preprocess: str
    trainable_last_layers: int | None
    paper_trainable_last_layers: int
    learning_rate: float
    epsilon: float
    weights: str | None
    bn_momentum: float | None
    zero_init_residual: bool = False


# Keras' default Adam epsilon, used when the paper's per-model values are switched off.
KERAS_ADAM_EPSILON = 1e-7


def model_parameters(params: NineModelsParams, name: str) -> NineModelsParams:
    """The run's parameters with ``name``'s row of ``params.model_overrides`` applied.

    From scratch on a few hundred CPU-sized images some architectures need
    other training settings than the rest (the registry gives each row with
    the validation figures it was chosen on). The paper profile has no rows:
    its per-model values are :data:`common.models.NINE_MODEL_SETTINGS`.

    Args:
        params: Resolved run parameters, with ``model_overrides``
            (model name -> {parameter: value}).
        name: A :data:`common.models.BACKBONES` key.

    Returns:
        ``params`` with the model's row applied (``dataclasses.replace``, so validated).

    Raises:
        ParameterError: a row names an unknown model or parameter, or a value of the wrong type.
    """
    overrides = params.model_overrides or {}
    unknown_models = sorted(set(overrides) - set(models.BACKBONES))
    if unknown_models:
        raise ParameterError(f"model_overrides names unknown model(s) {unknown_models}; "
                             f"choose from {', '.join(models.BACKBONES)}.")
    row = overrides.get(name) or {}
    # Which models run, and the rows themselves, are settings of the whole run.
    unknown = sorted(key for key in row
                     if key not in params.parameter_names() or key in ("models", "model_overrides"))
    if unknown:
        raise ParameterError(f"model_overrides[{name!r}] sets {unknown}, which are not per-model run parameters.")
    return dataclasses.replace(params, **row)


def model_settings(params: NineModelsParams, name: str) -> ModelSettings:
    """Resolve one model's settings from the run's parameters and the paper's tables.

    Args:
        params: Resolved parameters of the run (:func:`common.config.registry.resolve`):
            ``image_size``, ``paper_input_sizes``, ``paper_trainable_layers``,
            ``paper_optimiser``, ``learning_rate``, ``weights``, ``bn_momentum``.
        name: A :data:`common.models.BACKBONES` key; its ``model_overrides``
            row applies (:func:`model_parameters`).

    Returns:
        The settings. Without ``paper_input_sizes`` the input side is
        ``max(image_size, min_input_size(name))``, the smallest that both the
        run asks for and the architecture accepts.

    Raises:
        ParameterError: ``name`` is not one of the nine architectures.
    """
    backbone = models.backbone_spec(name)
    paper = models.NINE_MODEL_SETTINGS[name]
    params = model_parameters(params, name)
    if params.paper_input_sizes:
        input_size = backbone.paper_size
    else:
        input_size = max(int(params.image_size), models.min_input_size(name))
    use_paper_optimiser = bool(params.paper_optimiser)
    return ModelSettings(
        name=name,
        input_size=input_size,
        preprocess=backbone.preprocess,
        trainable_last_layers=paper.trainable_last_layers if params.paper_trainable_layers else None,
        paper_trainable_last_layers=paper.trainable_last_layers,
        learning_rate=paper.learning_rate if use_paper_optimiser else float(params.learning_rate),
        epsilon=paper.epsilon if use_paper_optimiser else KERAS_ADAM_EPSILON,
        weights=params.weights,
        bn_momentum=params.bn_momentum,
        zero_init_residual=params.zero_init_residual,
    )


def check_model_names(names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list after checking each is a known architecture, once.

    Raises:
        ParameterError: an empty list, an unknown name or a repeated one.
    """
    names = list(names)
    if not names:
        raise ParameterError("models is empty; list at least one of " + ", ".join(models.BACKBONES) + ".")
    unknown = [name for name in names if name not in models.BACKBONES]
    if unknown:
        raise ParameterError(f"Unknown model(s) {unknown} in models; choose from {', '.join(models.BACKBONES)}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParameterError(f"models lists {repeated} more than once.")
    return names


def settings_table(params: NineModelsParams, names: Sequence[str]) -> pd.DataFrame:
    """One row per model: the settings this run uses and the paper's head.

    Args:
        params: Resolved run parameters.
        names: Model names.
    """
    rows = {}
    for name in check_model_names(names):
        settings, run_params = model_settings(params, name), model_parameters(params, name)
        paper = models.NINE_MODEL_SETTINGS[name]
        rows[name] = {
            "input_size": settings.input_size,
            "preprocess_input": settings.preprocess,
            "head dense units": "-".join(str(units) for units in paper.dense_units),
            "head dropout": paper.dropout if paper.dropout else "none",
            "trainable last layers": settings.trainable_last_layers or "all",
            "learning_rate": settings.learning_rate,
            "adam_epsilon": settings.epsilon,
            "epochs": run_params.epochs,
            "batch_size": run_params.batch_size,
            "augment": run_params.augment or "none",
            "weights": settings.weights or "none (random)",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def head_spec(settings: ModelSettings) -> dict:
    """The paper's head of ``settings.name``, its batch norms at ``settings.bn_momentum``.

    ``bn_momentum`` is meant for every batch norm of the model: the head's two
    are the last layers before the softmax, so with Keras' 0.99 their moving
    statistics still lag after the few dozen steps of a CPU run and the
    validation predictions collapse to one class. None keeps the paper's head
    as it is (Keras' default momentum).
    """
    layers = [dict(entry) for entry in models.NINE_MODEL_SETTINGS[settings.name].head["layers"]]
    if settings.bn_momentum is not None:
        for entry in layers:
            if entry["layer"] == "batchnorm":
                entry["momentum"] = settings.bn_momentum
    return {"layers": layers}


def build_model(settings: ModelSettings, n_classes: int, channels: int = 3):
    """Build one model of the comparison: its backbone with the paper's head.

    Args:
        settings: From :func:`model_settings`.
        n_classes: Softmax units (2 for cancer vs pneumonia).
        channels: Input channels (3: greyscale repeated, as ImageNet weights need).

    Returns:
        The functional ``keras.Model``, named after the architecture.
    """
    return models.build_backbone_model(
        settings.name, (settings.input_size, settings.input_size, channels), n_classes,
        head=head_spec(settings), weights=settings.weights,
        trainable_last_layers=settings.trainable_last_layers, bn_momentum=settings.bn_momentum,
        zero_init_residual=settings.zero_init_residual, name=settings.name,
    )


def inference_images_per_second(model, inputs: np.ndarray, batch_size: int,
                                min_images: int = MIN_TIMED_IMAGES, as_graph: bool = True) -> float:
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
        min_images: Fewest images timed.
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
        timed = np.concatenate([inputs] * repeats, axis=0) if repeats > 1 else inputs
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


@dataclasses.dataclass
class ModelRun:
    """One trained and evaluated model of a comparison.

    Attributes:
        settings: What it was built and trained with.
        model: The trained model (best epoch's weights), or None once
            :meth:`release` has written it to ``weights_path``.
        history: One row per epoch (see :func:`common.training.fit.fit`).
        probabilities: Test-split probabilities (N, C), in test-table order.
        metrics: :func:`common.evaluation.metrics.classification_metrics` of the test split.
        test_inputs: The model-ready test images, in test-table order.
        params_total: All weights.
        params_trainable: Weights that trained.
        train_seconds: Wall-clock seconds of training (fit, validation included).
        train_cpu_seconds: CPU seconds of the process during training.
        inference_images_per_s: See :func:`inference_images_per_second`.
        inference_mode: ``"graph"`` or ``"eager"``, how the throughput was timed.
        weights_path: Where :meth:`release` wrote the weights, else None.
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
    weights_path: pathlib.Path | None = None

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
        }

    def release(self, weights_dir: str | pathlib.Path) -> None:
        """Write the weights to ``weights_dir/<name>.weights.npz`` and drop the model from memory.

        A trained model holds its optimiser state and traced graphs as well as
        its weights; nine of them resident at once took 16 GB in the default
        profile. Released, a run keeps only its numbers, and :meth:`loaded`
        rebuilds the model when a CAM needs it. Only the weights are written
        (Keras' ``save_weights`` adds Adam's two moments, three times the size).
        """
        weights_dir = pathlib.Path(weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
        self.weights_path = weights_dir / f"{self.settings.name}.weights.npz"
        np.savez(self.weights_path, *self.model.get_weights())
        self.model = None
        free_memory()

    @contextlib.contextmanager
    def loaded(self):
        """The trained model for the ``with`` block; a released one is rebuilt and freed after.

        Yields:
            The model with its trained weights (not compiled when rebuilt).
        """
        if self.model is not None:
            yield self.model
            return
        if self.weights_path is None:
            raise DataError(f"{self.settings.name} has neither a model in memory nor saved weights.")
        # Softmax units and input channels as the test split was predicted and fed.
        model = build_model(self.settings, self.probabilities.shape[1], self.test_inputs.shape[-1])
        with np.load(self.weights_path, allow_pickle=False) as stored:  # arrays arr_0, arr_1, ... in get_weights() order
            model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
        try:
            yield model
        finally:
            del model
            free_memory()


def free_memory() -> None:
    """Drop Keras' global state and collect garbage, so released models' memory returns."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def train_and_evaluate(
    params: NineModelsParams,
    samples: pd.DataFrame,
    names: Sequence[str] | None = None,
    log: Callable[[str], None] | None = print,
    runtime=None,
    weights_dir: str | pathlib.Path | None = None,
) -> dict[str, ModelRun]:
    """Train and evaluate each model on the same split, one after another.

    Each model is seeded afresh with ``params.seed``, so its result does
    not depend on which models ran before it; each gets its own input size and
    ``preprocess_input`` (:func:`model_settings`). Loss: sparse categorical
    cross-entropy on a 2-unit softmax, which equals the paper's binary
    cross-entropy (with two complementary outputs both losses are
    ``-log p(true class)``).

    Args:
        params: Resolved run parameters (``seed``, ``classes``, ``channels``,
            ``batch_size``, ``epochs``, ``patience``, ... and the switches of
            :func:`model_settings`).
        samples: Sample table with a ``split`` column (train/val/test).
        names: Models to run; default ``params.models``.
        log: Called with one line per finished model; None for silence.
        runtime: A :class:`common.experiments.workflow.Runtime`: each model is built and
            compiled in its strategy, with its speed-ups; None: one device.
        weights_dir: When given, each model is released there
            (:meth:`ModelRun.release`) before the next is built, so memory
            holds one model at a time; None keeps every model in memory.

    Returns:
        Model name -> :class:`ModelRun`, in the order of ``names``.
    """
    from common.training import runtime
    from common.experiments import workflow

    names = check_model_names(params.models if names is None else names)
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    runs: dict[str, ModelRun] = {}
    for name in names:
        settings, run_params = model_settings(params, name), model_parameters(params, name)
        runtime.set_seed(params.seed)
        with (runtime or workflow.Runtime.local()).scope():
            model = build_model(settings, len(params.classes), params.channels)
        data = workflow.datasets(run_params, samples, settings.preprocess, image_size=settings.input_size)
        wall_started, cpu_started = time.perf_counter(), _cpu_seconds()
        history = workflow.compile_and_fit(run_params, model, data, epsilon=settings.epsilon,
                                           learning_rate=settings.learning_rate, runtime=runtime)
        train_seconds = time.perf_counter() - wall_started
        train_cpu_seconds = _cpu_seconds() - cpu_started
        probabilities, scores = workflow.evaluate(run_params, model, data["test"], test)
        inputs = workflow.model_inputs(data["test"])
        total, trainable = models.count_params(model)
        runs[name] = ModelRun(
            settings=settings, model=model, history=history, probabilities=probabilities, metrics=scores,
            test_inputs=inputs, params_total=total, params_trainable=trainable,
            train_seconds=train_seconds, train_cpu_seconds=train_cpu_seconds,
            inference_images_per_s=inference_images_per_second(
                model, inputs, params.batch_size, min_images=params.throughput_images,
                as_graph=not params.run_eagerly),
            inference_mode="eager" if params.run_eagerly else "graph",
        )
        if log is not None:
            log(f"{name}: {settings.input_size} px, {len(history)} epochs in {train_seconds:.0f} s "
                f"({train_cpu_seconds:.0f} s CPU), test accuracy {scores['accuracy']['value']:.3f}")
        if weights_dir is not None:
            del model
            runs[name].release(weights_dir)
    return runs


def model_records(runs: Mapping[str, ModelRun]) -> dict[str, dict]:
    """The ``models`` section of ``metrics.json``: per model its :meth:`ModelRun.record`."""
    return {name: run.record() for name, run in runs.items()}


def _best_models(records: Mapping[str, Mapping], names: Sequence[str]) -> dict[str, set[str]]:
    """Per metric, every model that reaches the best value (ties included)."""
    best = metrics.best_per_metric(records, names)
    winners = {}
    for name, first in best.items():
        top = records[first][name]["value"]
        winners[name] = {model for model, entry in records.items()
                         if name in entry and entry[name]["value"] == top}
    return winners


def _undefined_as_nan(record: Mapping, names: Sequence[str]) -> dict:
    """A record read back from JSON, its undefined (None) metric numbers as NaN again."""
    def number(value):
        return float("nan") if value is None else value

    fixed = dict(record)
    for name in names:
        if isinstance(record.get(name), Mapping):
            entry = record[name]
            fixed[name] = {**entry, "value": number(entry["value"]), "ci95": [number(v) for v in entry["ci95"]]}
    return fixed


def comparison_table(records: Mapping[str, Mapping], names: Sequence[str] = TABLE_METRICS,
                     digits: int = 3) -> pd.DataFrame:
    """The comparison: per model each metric with its 95% CI, sizes and costs.

    The best model of each metric (ties all) carries :data:`BEST_MARK`.

    Args:
        records: Model name -> record (:func:`model_records`, or ``metrics.json``'s ``models``).
        names: Metric columns, in order.
        digits: Decimals of the metric cells.

    Returns:
        One row per model: metric cells ``"value [lo, hi]"``, then
        :data:`COST_COLUMNS` (those the records have).
    """
    records = {model: _undefined_as_nan(record, names) for model, record in records.items()}
    table = metrics.metrics_table(records, names, digits)
    for metric, winners in _best_models(records, names).items():
        for model in winners:
            table.loc[model, metric] += BEST_MARK
    for column in COST_COLUMNS:
        if all(column in record for record in records.values()):
            table[column] = [records[model][column] for model in table.index]
    return table


def paper_comparison_table(paper_vs_run: Sequence[Mapping], digits: int = 3) -> pd.DataFrame:
    """The paper's Table 2 beside this run: per model and metric paper, run, difference.

    Args:
        paper_vs_run: Rows as from :func:`common.experiments.workflow.paper_rows` (``model``,
            ``metric``, ``paper``, ``this_run``, ``difference``).
        digits: Decimals shown.

    Returns:
        Rows per model; columns a (metric, ``paper`` / ``this run`` / ``difference``)
        MultiIndex in :data:`TABLE_METRICS` order.
    """
    if not paper_vs_run:
        return pd.DataFrame()
    long = pd.DataFrame(list(paper_vs_run)).rename(columns={"this_run": "this run"})
    wide = long.pivot(index="model", columns="metric", values=["paper", "this run", "difference"])
    wide = wide.swaplevel(0, 1, axis=1)
    order = [metric for metric in TABLE_METRICS if metric in wide.columns.get_level_values(0)]
    columns = [(metric, part) for metric in order for part in ("paper", "this run", "difference")]
    model_order = list(dict.fromkeys(row["model"] for row in paper_vs_run))
    return wide.loc[model_order, columns].astype(float).round(digits)


def layer_groups(model, settings: ModelSettings, max_layers: int | None = None) -> dict[str, list[str]]:
    """The backbone's convolution layers split as the paper froze them.

    The split point is the paper's trainable-last-layers count, also when this
    run trained every layer (random initial weights): "frozen" are the
    convolutions the paper kept at their ImageNet weights, "trainable" those
    it fine-tuned.

    Args:
        model: A :func:`build_model` model.
        settings: Its settings.
        max_layers: Keep at most this many layers per group, evenly spaced
            through the group (first and last kept); None keeps all.

    Returns:
        ``{"frozen": [layer names], "trainable": [layer names]}``, in model order.
    """
    from common.explain.cams import CONV_LAYER_TYPES

    backbone = [layer for layer in model.layers if not models.is_head_layer(layer)]
    first_trainable = len(backbone) - settings.paper_trainable_last_layers
    groups: dict[str, list[str]] = {"frozen": [], "trainable": []}
    for index, layer in enumerate(backbone):
        if isinstance(layer, CONV_LAYER_TYPES):
            groups["trainable" if index >= first_trainable else "frozen"].append(layer.name)
    if max_layers is not None:
        if max_layers < 1:
            raise ParameterError(f"max_layers={max_layers} must be at least 1 (or None for all layers).")
        for group, names in groups.items():
            if len(names) > max_layers:
                keep = np.unique(np.linspace(0, len(names) - 1, max_layers).round().astype(int))
                groups[group] = [names[i] for i in keep]
    return groups


def correct_by_all(runs: Mapping[str, ModelRun], test: pd.DataFrame, label: str, n: int) -> np.ndarray:
    """Positions of up to ``n`` test images of class ``label`` every model got right.

    As in the paper's Fig. 3 (images correctly classified by all nine models).
    When fewer exist, images of ``label`` right by the most models fill up.

    Args:
        runs: The comparison's runs.
        test: Test sample table (the order of every run's probabilities).
        label: Class name (e.g. ``"cancer"``).
        n: How many positions.

    Returns:
        Positions into ``test``, most models correct first.
    """
    truth = test["label_index"].to_numpy()
    of_label = np.flatnonzero(test["label"].to_numpy() == label)
    n_correct = sum((run.probabilities.argmax(axis=1) == truth).astype(int) for run in runs.values())
    order = of_label[np.argsort(-n_correct[of_label], kind="stable")]
    return order[:n]


def overlay_panels(images: np.ndarray, cams_by_row: Mapping[str, np.ndarray], masks: np.ndarray | None = None,
                   scores_by_row: Mapping[str, np.ndarray] | None = None, image_titles: Sequence[str] | None = None,
                   one_row_per_image: bool = False) -> dict[str, list]:
    """Panels for :func:`common.report.figures.image_grid`: the images, then their CAM overlays.

    By default the first row shows the images (lesion masks outlined) and
    each further row one entry of ``cams_by_row`` (a model, a layer, a layer
    group) over the same images, so a column follows one image through every
    row (draw with ``ncols=len(images)``). With ``one_row_per_image`` the grid
    is transposed: one row per image, the image first, then one overlay per
    entry (draw with ``ncols=1 + len(cams_by_row)``).

    Args:
        images: Display images (N, H, W) in [0, 1].
        cams_by_row: Label -> CAMs (N, h, w) in [0, 1] (resized to the images).
        masks: Optional lesion masks (N, H, W), outlined in every panel.
        scores_by_row: Optional label -> (N,) numbers shown in the titles
            (e.g. the probability of the explained class).
        image_titles: Titles of the plain images (default "image i").
        one_row_per_image: Transpose the grid, see above.

    Returns:
        ``{"images": [...], "titles": [...], "masks": [...] or None, "ncols": int}``.
    """
    from common.explain import cams as cam_module

    n_images = len(images)
    image_titles = list(image_titles) if image_titles is not None else [f"image {i + 1}" for i in range(n_images)]
    # grid[label][i]: (panel, title) of image i in the column or row of label; None labels the plain images.
    grid: dict[str | None, list[tuple[np.ndarray, str]]] = {None: list(zip(images, image_titles))}
    for label, maps in cams_by_row.items():
        if len(maps) != n_images:
            raise DataError(f"Row {label!r} has {len(maps)} CAMs for {n_images} images.")
        scores = scores_by_row.get(label) if scores_by_row is not None else None
        titles = [label if scores is None else f"{label} (p = {score:.2f})" for score in
                  (scores if scores is not None else [None] * n_images)]
        grid[label] = [(cam_module.overlay(image, cam), title) for image, cam, title in zip(images, maps, titles)]
    if one_row_per_image:
        order = [(label, i) for i in range(n_images) for label in grid]
        ncols = len(grid)
    else:
        order = [(label, i) for label in grid for i in range(n_images)]
        ncols = n_images
    return {
        "images": [grid[label][i][0] for label, i in order],
        "titles": [grid[label][i][1] for label, i in order],
        "masks": None if masks is None else [masks[i] for _, i in order],
        "ncols": ncols,
    }


EXPLANATION_SCORES = ("pointing_game", "energy_share", "iou")


@dataclasses.dataclass
class ModelExplanations:
    """The heatmaps and scores of a comparison's CAM sections, per model.

    Attributes:
        positions: Positions in the test table of the images every model's
            heatmap is shown on (:func:`correct_by_all`).
        last_layer: Model -> its last convolutional layer (found automatically).
        last_layer_cams: Model -> Grad-CAMs (N, h, w) of the target class at
            ``last_layer`` on the images at ``positions``.
        chosen_layer_cams: Model -> Grad-CAMs on the same images at the finer
            layer chosen on validation (models with a choice only).
        layer_cams: Model -> row label (a layer, or a frozen / trainable group
            mean) -> Grad-CAMs on the same images, for the models of
            ``params.cam_layers``.
        layer_records: Model -> ``{"layers", "groups"}`` behind ``layer_cams``.
        scores: Model -> method -> ``{pointing_game, energy_share, iou}``
            at the last layer, and ``"<model> at <layer>"`` -> ``{"gradcam": ...}``
            at the finer layer chosen on validation (empty when not scored).
        selections: Model -> the validation choice of its finer layer
            (:func:`common.experiments.workflow.select_cam_layer`'s record plus
            ``candidates`` and their ``grids``); models whose test split had
            no image to score are absent.
    """

    positions: np.ndarray
    last_layer: dict[str, str] = dataclasses.field(default_factory=dict)
    last_layer_cams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    chosen_layer_cams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    layer_cams: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    layer_records: dict[str, dict] = dataclasses.field(default_factory=dict)
    scores: dict[str, dict] = dataclasses.field(default_factory=dict)
    selections: dict[str, dict] = dataclasses.field(default_factory=dict)

    def selection_table(self) -> pd.DataFrame:
        """Per model: its last layer, the finer layer chosen on validation, and Grad-CAM's test scores at both."""
        rows = {}
        for name, selection in self.selections.items():
            chosen = selection["chosen"]
            grids = {layer: " x ".join(map(str, grid)) for layer, grid in selection["grids"].items()}
            row = {"last layer": f"{self.last_layer[name]} ({grids[self.last_layer[name]]})",
                   "chosen on validation": f"{chosen} ({grids[chosen]})" if chosen else "none (no lesion image)",
                   "validation images": selection["n"]}
            for label, key in (("last", name), ("chosen", f"{name} at {chosen}")):
                scores = self.scores.get(key, {}).get("gradcam")
                for metric in ("pointing_game", "energy_share"):
                    row[f"{metric}, {label}"] = (f'{scores[metric]["value"]:.2f} (n = {scores[metric]["n"]})'
                                                 if scores and scores[metric]["n"] else "")
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")


def explain_models(params: NineModelsParams, runs: Mapping[str, ModelRun], samples: pd.DataFrame,
                   positions: np.ndarray, target_class: str, score: bool = True) -> ModelExplanations:
    """Every CAM the comparison shows or scores, with each model loaded once.

    Per model (read back from its weights when released, then freed again):
    Grad-CAM of ``target_class`` at the last convolutional layer on the shown
    images; for the models of ``params.cam_layers``, Grad-CAM at each listed
    layer and averaged over the frozen and the trainable convolutions
    (:func:`layer_groups`, at most ``params.group_cam_max_layers`` each);
    and, with ``score``, every method of ``params.cam_methods`` scored
    against the lesion masks on the model's own correctly classified test
    images of ``target_class`` (up to ``params.n_explain``). With
    ``params.cam_finest_stride``, Grad-CAM is also scored, on the same test
    images, at one finer layer: the one of :func:`common.explain.cams.finer_layers`
    that localised best on the validation split
    (:func:`common.experiments.workflow.explain_test_split`), and its heatmaps are made
    on the shown images too. A model with no test image to score gets
    undefined scores (value and CI NaN, ``n`` 0), so every model has an entry.

    Args:
        params: Resolved run parameters.
        runs: The comparison's runs.
        samples: The sample table with its ``split`` column (``mask_path``
            needed when scoring).
        positions: Test positions of the shown images.
        target_class: Class explained and scored (the lesion class, e.g. ``"cancer"``).
        score: False skips the scores (a data set without lesion masks).

    Returns:
        :class:`ModelExplanations`.
    """
    from common.explain import cams
    from common.experiments import workflow

    target = list(params.classes).index(target_class)
    undefined = {"value": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    out = ModelExplanations(positions=np.asarray(positions))
    for name, run in runs.items():
        with run.loaded() as model:
            last = cams.last_conv_layer(model)
            chosen = None
            if score:
                candidates = cams.finer_layers(model, params.cam_finest_stride) \
                    if params.cam_finest_stride else []
                # The validation split, made as this model saw it, to choose the finer layer on.
                data = workflow.datasets(model_parameters(params, name), samples, run.settings.preprocess,
                                         image_size=run.settings.input_size) if candidates else {}
                scored = workflow.explain_test_split(params, model, data, samples, run.test_inputs,
                                                     run.probabilities, last, [target_class], candidates)
                found = scored.last["scores"] if scored else {}
                out.scores[name] = {method: found.get(method) or {key: dict(undefined) for key in EXPLANATION_SCORES}
                                    for method in params.cam_methods}
                if scored and scored.selection:
                    chosen = scored.selection["chosen"]
                    if scored.chosen:
                        out.scores[f"{name} at {chosen}"] = scored.chosen["scores"]
                    out.selections[name] = {**scored.selection, "candidates": candidates,
                                            "grids": {layer: list(grid) for layer, grid in scored.layer_shapes.items()}}
            by_layers = name in params.cam_layers
            listed = params.cam_layers[name] if by_layers else []
            groups = layer_groups(model, run.settings, params.group_cam_max_layers) if by_layers else {}
            # Every layer shown or averaged on the shown images, from one pass per batch
            # (the last layer is often among the listed ones).
            grouped = [layer for layers in groups.values() for layer in layers]
            explainer = cams.CamExplainer(model, "gradcam")
            by_layer = explainer.cams_at_layers(run.test_inputs[positions], target,
                                                [last, *([chosen] if chosen else []), *listed, *grouped])
            del explainer  # its logit view holds the model's layers
            out.last_layer[name], out.last_layer_cams[name] = last, by_layer[last]
            if chosen:
                out.chosen_layer_cams[name] = by_layer[chosen]
            if by_layers:
                rows = {layer: by_layer[layer] for layer in listed}
                for group, layers in groups.items():
                    rows[f"mean of {len(layers)} {group} conv layers"] = cams.mean_cam(by_layer[l] for l in layers)
                out.layer_cams[name] = rows
                out.layer_records[name] = {"layers": listed, "groups": groups}
    return out
