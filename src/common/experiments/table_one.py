"""Seed 000's Table I, one model of this study per row.

The paper's Table I has seven rows: CNN, 3D CNN, ResNet-18, ResNet-32, ResNet-50,
3D ResNet and ResNet-50-Grad. The registry's ``run_model_for`` names this run's
model of each; the notebook trains ResNet50 (ResNet-50-Grad) and the plain CNN
itself, and this module the others:

* **2D rows**, on the same split as ResNet50 (:func:`fit_image_rows`): ResNet-18
  and ResNet-32 (:mod:`common.models.resnets`, He et al. 2016's designs, from
  random weights as every CPU profile's model) and ResNet50 trained without
  augmentation (``ResNet50_no_augment``), this study's reading of the "ResNet-50"
  row: the paper names no difference between ResNet-50 and ResNet-50-Grad but
  Grad-CAM, which does not change a classifier's predictions, so the one
  plausible difference left is the augmentation it lists for its own method.
  A model may take other settings from ``model_overrides`` (e.g. a smaller input
  for ResNet-32, whose CIFAR design keeps the full resolution through its first
  stage), each chosen on the validation split; a 3D row's overrides change
  gradcam-3d's training parameters (:func:`volume_model_params`).
* **3D rows**, on chest phantom *volumes* (:func:`fit_volume_rows`), a different data
  set from the 2D slices: the 3D CNN of seed 001 (:func:`common.models.build_cnn3d`)
  and a 3D ResNet-18 (:data:`common.models.resnets.RESNET3D_18`), read, sized and
  trained as gradcam-3d reads, sizes and trains its volumes (its parameters for the
  same profile), on one stratified train / validation / test split of the
  experiment's ``split_fractions`` instead of gradcam-3d's folds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.config import registry
from common.config.params import Gradcam3dParams, ResNet50GradCamParams
from common.errors import ParameterError
from common.experiments.fitting import FitResult
from common.training.runtime import Runtime

RESNET18 = "resnet18"
RESNET32 = "resnet32"
RESNET50_NO_AUGMENT = "ResNet50_no_augment"
CNN3D = "cnn3d"
RESNET3D_18 = "resnet3d_18"
IMAGE_MODELS = (RESNET18, RESNET32, RESNET50_NO_AUGMENT)
VOLUME_MODELS = (CNN3D, RESNET3D_18)
VOLUME_DATA = "chest phantom volumes (3D)"
"""What the 3D rows were tested on, as the paper-vs-run table says it."""
IMAGE_DATA = "the run's test images (2D)"
"""What the 2D rows were tested on: the run's own test split, the one ResNet50 was tested on."""
VOLUME_EXPERIMENT = "gradcam-3d"
"""The experiment whose data path and training settings the 3D rows take."""


def model_params(params: ResNet50GradCamParams, name: str) -> ResNet50GradCamParams:
    """The parameters of one Table I model: its ``model_overrides``; ``ResNet50_no_augment`` without augmentation.

    Raises:
        ParameterError: An override names a parameter the experiment does not have, or a bad value.
    """
    changes: dict[str, Any] = dict(params.model_overrides.get(name) or {})
    unknown = sorted(set(changes) - set(params.parameter_names()))
    if unknown:
        raise ParameterError(f"model_overrides.{name} names {unknown}, which are no parameters of {params.experiment}.")
    if name == RESNET50_NO_AUGMENT:
        changes["augment"] = None
    return dataclasses.replace(params, **changes) if changes else params


def build_image_model(params: ResNet50GradCamParams, name: str, runtime: Runtime):
    """Build one 2D Table I model in the runtime's scope.

    Args:
        params: Its parameters (:func:`model_params`).
        name: One of :data:`IMAGE_MODELS`.
        runtime: Where and in which precision it trains.

    Returns:
        ``(model, preprocess)``: the model and its input preprocessing (the backbone's for
        ResNet50; None, images in [0, 1], for the networks trained from their definitions).
    """
    from common.experiments import fitting
    from common.models import resnets

    if name == RESNET50_NO_AUGMENT:
        return fitting.build_backbone_classifier(params, runtime, name=name), fitting.preprocess_name(params)
    designs = {RESNET18: resnets.RESNET18, RESNET32: resnets.RESNET32}
    if name not in designs:
        raise ParameterError(f"Unknown Table I model {name!r}; the 2D ones are {', '.join(IMAGE_MODELS)}.")
    shape = (params.image_size, params.image_size, params.channels)
    with runtime.scope():
        model = resnets.build_resnet(designs[name], shape, len(params.classes), bn_momentum=params.bn_momentum)
    return model, None


@dataclass(frozen=True)
class ImageRow:
    """One 2D Table I model, trained and tested on the run's split.

    Attributes:
        name: Its name in ``metrics.json``.
        fit: What :func:`common.experiments.fitting.fit_and_evaluate` trained and measured.
        model: The trained model.
        preprocess: Its input preprocessing (None: images in [0, 1]).
        image_size: The input side it read the images at.
        parameters: Its weight count.
        seconds: Wall time of building, training and testing it.
    """

    name: str
    fit: FitResult
    model: Any
    preprocess: str | None
    image_size: int
    parameters: int
    seconds: float


def fit_image_rows(
    params: ResNet50GradCamParams, samples: pd.DataFrame, runtime: Runtime, names: Sequence[str] | None = None
) -> dict[str, ImageRow]:
    """Train and test the 2D Table I models of ``params.table_models`` on the run's split.

    Each model is seeded with the run's seed, trained with early stopping on the validation
    split and scored on the test split (:func:`common.experiments.fitting.fit_and_evaluate`).

    Args:
        params: Run parameters.
        samples: The split sample table ResNet50 was trained on.
        runtime: Strategy and precision.
        names: The models to train; None: those of ``params.table_models`` in :data:`IMAGE_MODELS`.

    Returns:
        Model name -> :class:`ImageRow`, in :data:`IMAGE_MODELS` order.
    """
    from common import models
    from common.experiments import fitting
    from common.training.runtime import set_seed

    chosen = [name for name in IMAGE_MODELS if name in (params.table_models if names is None else names)]
    rows = {}
    for name in chosen:
        started = time.perf_counter()
        set_seed(params.seed)
        own = model_params(params, name)
        model, preprocess = build_image_model(own, name, runtime)
        fit = fitting.fit_and_evaluate(own, model, samples, preprocess, runtime=runtime)
        rows[name] = ImageRow(
            name, fit, model, preprocess, own.image_size, models.count_params(model)[0], time.perf_counter() - started
        )
    return rows


# ---------------------------------------------------------------- the 3D rows


def volume_params(params: ResNet50GradCamParams) -> Gradcam3dParams:
    """gradcam-3d's parameters in this run's profile, with this run's seed: the 3D rows' data and training."""
    return registry.resolve(VOLUME_EXPERIMENT, params.profile, {"seed": params.seed})


# gradcam-3d's parameters that decide the volumes themselves: shared by every 3D row, so no model may change them.
VOLUME_DATA_PARAMETERS = ("seed", "n_per_class", "volume_shape", "input_shape", "window", "sobel")


def volume_model_params(params: ResNet50GradCamParams, settings: Gradcam3dParams, name: str) -> Gradcam3dParams:
    """The training settings of one 3D Table I model: gradcam-3d's, with its ``model_overrides`` (e.g. ``epochs``).

    Raises:
        ParameterError: An override names no gradcam-3d parameter, or one that decides the volumes
            (:data:`VOLUME_DATA_PARAMETERS`), which all 3D rows share.
    """
    changes: dict[str, Any] = dict(params.model_overrides.get(name) or {})
    unknown = sorted(set(changes) - set(settings.parameter_names()))
    shared = sorted(set(changes) & set(VOLUME_DATA_PARAMETERS))
    if unknown or shared:
        raise ParameterError(
            f"model_overrides.{name} names {unknown + shared}: a 3D row may change gradcam-3d's training "
            f"parameters, not {', '.join(VOLUME_DATA_PARAMETERS)} (the volumes every 3D row shares)."
        )
    return dataclasses.replace(settings, **changes) if changes else settings


def build_volume_model(settings: Gradcam3dParams, name: str):
    """One 3D Table I model at gradcam-3d's input shape and width (call it in the runtime's scope).

    Raises:
        ParameterError: ``name`` is not one of :data:`VOLUME_MODELS`.
    """
    from common.experiments.cross_validation import build_model
    from common.models import resnets

    if name == CNN3D:
        return build_model(settings)
    if name == RESNET3D_18:
        shape = (*settings.input_shape, 1)
        return resnets.build_resnet(
            resnets.RESNET3D_18,
            shape,
            len(settings.classes),
            width=settings.width,
            bn_momentum=settings.bn_momentum,
        )
    raise ParameterError(f"Unknown Table I model {name!r}; the 3D ones are {', '.join(VOLUME_MODELS)}.")


@dataclass(frozen=True)
class VolumeRow:
    """One 3D Table I model, trained and tested on the volumes' split.

    Attributes:
        name: Its name in ``metrics.json``.
        history: One row per epoch.
        probabilities: Test-volume probabilities (N, C), in the test table's order.
        scores: Test metrics with 95% intervals.
        parameters: Its weight count.
        seconds: Wall time of building, training and testing it.
    """

    name: str
    history: pd.DataFrame
    probabilities: np.ndarray
    scores: dict
    parameters: int
    seconds: float


@dataclass(frozen=True)
class VolumeRows:
    """The 3D rows of Table I and the volumes they were trained and tested on.

    Attributes:
        samples: The volume table with its ``split`` column.
        source: Where the volumes come from.
        settings: gradcam-3d's parameters the volumes were read and the models trained with.
        rows: Model name -> :class:`VolumeRow`.
        load_seconds: Wall time of generating (first use only) and reading the volumes.
    """

    samples: pd.DataFrame
    source: str
    settings: Gradcam3dParams
    rows: dict[str, VolumeRow]
    load_seconds: float

    def scores(self) -> dict[str, dict]:
        """Model name -> its test metrics."""
        return {name: row.scores for name, row in self.rows.items()}

    def split_counts(self) -> pd.DataFrame:
        """Volumes per split and class."""
        return self.samples.groupby(["split", "label"], sort=False).size().unstack(fill_value=0)

    def record(self) -> dict[str, Any]:
        """JSON-ready description for ``metrics.json``: the volumes, the settings, each model's size and time."""
        counts = self.split_counts()
        return {
            "source": self.source,
            "data": VOLUME_DATA,
            "settings_from": VOLUME_EXPERIMENT,
            "n_volumes": int(len(self.samples)),
            "input_shape": [int(v) for v in self.settings.input_shape],
            "split_counts": {str(s): {str(k): int(v) for k, v in counts.loc[s].items()} for s in counts.index},
            "width": self.settings.width,
            "load_seconds": round(self.load_seconds, 1),
            "models": {
                name: {"parameters": row.parameters, "epochs": len(row.history), "seconds": round(row.seconds, 1)}
                for name, row in self.rows.items()
            },
        }


def volume_samples(settings: Gradcam3dParams) -> tuple[pd.DataFrame, str]:
    """gradcam-3d's phantom volume table (generated on first use), not yet split.

    Returns:
        ``(samples, source)``: one row per volume, and where the volumes come from; :func:`fit_volume_rows`
        splits them by class with the run's ``split_fractions`` and seed.
    """
    from common.experiments import volumes

    loaded = volumes.load_samples(settings)
    return loaded.samples, loaded.source


def fit_volume_rows(
    params: ResNet50GradCamParams, runtime: Runtime, names: Sequence[str] | None = None
) -> VolumeRows | None:
    """Train and test the 3D Table I models of ``params.table_models`` on chest phantom volumes.

    The volumes are gradcam-3d's phantoms of this profile, read as it reads them (window,
    Sobel enhancement, input shape); they are split by class into train, validation and
    test with the run's ``split_fractions`` and seed. Every model is trained as gradcam-3d
    trains its folds (epochs, patience, batch, learning rate, in-plane rotation, precision)
    with early stopping on the validation volumes, and scored on the test volumes.

    Args:
        params: Run parameters.
        runtime: Strategy; the 3D rows train in gradcam-3d's precision.
        names: The models to train; None: those of ``params.table_models`` in :data:`VOLUME_MODELS`.

    Returns:
        :class:`VolumeRows`, or None when no 3D model is asked for.
    """
    from common import models
    from common.data import splits, volume_sets
    from common.experiments import fitting
    from common.training import fit
    from common.training.runtime import set_seed

    chosen = [name for name in VOLUME_MODELS if name in (params.table_models if names is None else names)]
    if not chosen:
        return None
    started = time.perf_counter()
    settings = volume_params(params)
    table, source = volume_samples(settings)
    samples = splits.split_samples(table, fractions=params.split_fractions, seed=params.seed).reset_index(drop=True)
    inputs = volume_sets.load_volumes(samples, settings.input_shape, settings.window, settings.sobel)
    load_seconds = time.perf_counter() - started
    labels = samples["label_index"].to_numpy()
    part = {name: (samples["split"] == name).to_numpy() for name in ("train", "val", "test")}
    rows = {}
    for name in chosen:
        started = time.perf_counter()
        set_seed(params.seed)
        own = volume_model_params(params, settings, name)
        trains_in = runtime.with_precision(own.precision)
        data = {
            "train": volume_sets.volume_dataset(
                inputs[part["train"]],
                labels[part["train"]],
                own.batch_size,
                own.augment_rotation,
                training=True,
                seed=params.seed,
            ),
            "val": volume_sets.volume_dataset(inputs[part["val"]], labels[part["val"]], own.batch_size),
        }
        with trains_in.scope():
            model = build_volume_model(own, name)
        trains_in.compile(model, own.learning_rate)
        # The run's own choice of eager steps (smoke): a few steps cost less than tracing a 3D ResNet's graphs.
        model.run_eagerly = params.run_eagerly
        history = fit.fit(model, data["train"], data["val"], own.epochs, patience=own.patience)
        probabilities = fit.predict_proba(model, inputs[part["test"]], batch_size=own.batch_size)
        scores = fitting.score(own, labels[part["test"]], probabilities)
        rows[name] = VolumeRow(
            name, history, probabilities, scores, models.count_params(model)[0], time.perf_counter() - started
        )
    return VolumeRows(samples, source, settings, rows, load_seconds)


def training_table(
    params: ResNet50GradCamParams, image_rows: dict[str, ImageRow], volume_rows: VolumeRows | None
) -> pd.DataFrame:
    """What each Table I model of this module is and cost: its paper row, data, input, weights, epochs and seconds.

    Args:
        params: Run parameters (the experiment whose ``run_model_for`` names the rows).
        image_rows: :func:`fit_image_rows`'s models.
        volume_rows: :func:`fit_volume_rows`'s models, or None.
    """
    paper_row = {run: paper for paper, run in registry.paper_claims(params.experiment)["run_model_for"].items()}
    rows = []
    for name, image in image_rows.items():
        rows.append(
            {
                "model": name,
                "paper's model": paper_row.get(name, "–"),
                "tested on": IMAGE_DATA,
                "input": f"{image.image_size} x {image.image_size} x {params.channels}",
                "weights": f"{image.parameters:,}",
                "epochs": len(image.fit.history),
                "seconds": round(image.seconds, 1),
            }
        )
    for name, volume in (volume_rows.rows if volume_rows else {}).items():
        shape = " x ".join(str(v) for v in volume_rows.settings.input_shape) if volume_rows else ""
        rows.append(
            {
                "model": name,
                "paper's model": paper_row.get(name, "–"),
                "tested on": VOLUME_DATA,
                "input": f"{shape} x 1",
                "weights": f"{volume.parameters:,}",
                "epochs": len(volume.history),
                "seconds": round(volume.seconds, 1),
            }
        )
    columns = ["model", "paper's model", "tested on", "input", "weights", "epochs", "seconds"]
    return pd.DataFrame(rows, columns=columns).set_index("model")


def tested_on(models_metrics: Mapping[str, Any], volume_rows: VolumeRows | None) -> dict[str, str]:
    """What each of the run's models was tested on: :data:`VOLUME_DATA` for the 3D rows, else :data:`IMAGE_DATA`.

    Args:
        models_metrics: The run's model name -> its test metrics (every model of the paper comparison).
        volume_rows: :func:`fit_volume_rows`'s models, or None.
    """
    volume_models = set(volume_rows.rows) if volume_rows else set()
    return {name: VOLUME_DATA if name in volume_models else IMAGE_DATA for name in models_metrics}


def on_phantoms(volume_rows: VolumeRows | None) -> set[str]:
    """The models tested on phantom volumes whatever data the run reads: the 3D rows (never comparable)."""
    return set(volume_rows.rows) if volume_rows else set()
