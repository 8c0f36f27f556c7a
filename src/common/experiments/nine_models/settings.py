"""What each model of the comparison is built and trained with.

Everything that differs between the nine architectures is data: the
architecture's row of :data:`common.models.backbones.BACKBONES` (input size,
``preprocess_input``) and of :data:`common.models.heads.NINE_MODEL_SETTINGS`
(head, trainable last layers, Adam learning rate and epsilon, the authors'
input scaling). :func:`model_settings` turns one model's rows and the run's
parameters into the settings of that run; the profile switches
(``paper_input_sizes``, ``paper_trainable_layers``, ``paper_optimiser``,
``input_scaling``) decide whether the paper's values or the run's CPU-sized
ones apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from common import models
from common.config.params import NineModelsParams
from common.data import augment
from common.errors import ParameterError

# Keras' default Adam epsilon, used when the paper's per-model values are switched off.
KERAS_ADAM_EPSILON = 1e-7
# input_scaling: each backbone's keras.applications preprocess_input, or the authors' rule per model.
KERAS_SCALING, AUTHORS_SCALING = "keras", "authors"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """Everything one model of a comparison run is built and trained with.

    Attributes:
        name: A :data:`common.models.backbones.BACKBONES` key.
        input_size: Square input side in pixels.
        preprocess: How the 0..255 inputs are scaled: a ``keras.applications`` module
            whose ``preprocess_input`` is used (``input_scaling: keras``) or a rule of
            :mod:`common.data.scaling` (``input_scaling: authors``); either is a
            ``preprocess`` name of :mod:`common.data.pipeline`.
        trainable_last_layers: Backbone layers that train, counted from its end;
            None trains the whole backbone.
        paper_trainable_last_layers: The paper's count, which also splits the
            layers into the "frozen" and "trainable" groups of the CAM comparison.
        learning_rate: Adam learning rate.
        epsilon: Adam epsilon.
        weights: None, ``"imagenet"`` or a weights file.
        bn_momentum: Backbone batch-norm momentum, None for Keras' default.
        zero_init_residual: Start residual branches at zero (random weights only;
            see :func:`common.models.backbones.zero_init_residual_branches`).
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


def model_parameters(params: NineModelsParams, name: str) -> NineModelsParams:
    """The run's parameters with ``name``'s row of ``params.model_overrides`` applied.

    From scratch on a few hundred CPU-sized images some architectures need
    other training settings than the rest (the registry gives each row with
    the validation figures it was chosen on). The paper profile has no rows:
    its per-model values are :data:`common.models.heads.NINE_MODEL_SETTINGS`.

    Args:
        params: Resolved run parameters, with ``model_overrides``
            (model name -> {parameter: value}).
        name: A :data:`common.models.backbones.BACKBONES` key.

    Returns:
        ``params`` with the model's row applied (``dataclasses.replace``, so validated).

    Raises:
        ParameterError: a row names an unknown model or parameter, or a value of the wrong type.
    """
    overrides = params.model_overrides or {}
    unknown_models = sorted(set(overrides) - set(models.NINE_MODEL_SETTINGS))
    if unknown_models:
        raise ParameterError(
            f"model_overrides names unknown model(s) {unknown_models}; "
            f"choose from {', '.join(models.NINE_MODEL_SETTINGS)}."
        )
    row = overrides.get(name) or {}
    # Which models run, and the rows themselves, are settings of the whole run.
    unknown = sorted(key for key in row if key not in params.parameter_names() or key in ("models", "model_overrides"))
    if unknown:
        raise ParameterError(f"model_overrides[{name!r}] sets {unknown}, which are not per-model run parameters.")
    return dataclasses.replace(params, **row)


def model_settings(params: NineModelsParams, name: str) -> ModelSettings:
    """Resolve one model's settings from the run's parameters and the paper's tables.

    Args:
        params: Resolved parameters of the run (:func:`common.config.registry.resolve`):
            ``image_size``, ``paper_input_sizes``, ``paper_trainable_layers``,
            ``paper_optimiser``, ``input_scaling``, ``learning_rate``, ``weights``, ``bn_momentum``.
        name: A :data:`common.models.backbones.BACKBONES` key; its ``model_overrides``
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
        preprocess=paper.authors_scaling if params.input_scaling == AUTHORS_SCALING else backbone.preprocess,
        trainable_last_layers=paper.trainable_last_layers if params.paper_trainable_layers else None,
        paper_trainable_last_layers=paper.trainable_last_layers,
        learning_rate=paper.learning_rate if use_paper_optimiser else float(params.learning_rate),
        epsilon=paper.epsilon if use_paper_optimiser else KERAS_ADAM_EPSILON,
        weights=params.weights,
        bn_momentum=params.bn_momentum,
        zero_init_residual=params.zero_init_residual,
    )


def largest_input_size(params: NineModelsParams, names: Sequence[str] | None = None) -> int:
    """The largest input side of the run's models: the size every model's images are shown at.

    Args:
        params: Resolved run parameters.
        names: Model names; default ``params.models``.
    """
    return max(model_settings(params, name).input_size for name in (params.models if names is None else names))


def check_model_names(names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list after checking each is a known architecture, once.

    Args:
        names: Model names (:data:`common.models.heads.NINE_MODEL_SETTINGS` keys: the nine architectures).

    Returns:
        The names, in their order.

    Raises:
        ParameterError: an empty list, an unknown name or a repeated one.
    """
    names = list(names)
    if not names:
        raise ParameterError("models is empty; list at least one of " + ", ".join(models.NINE_MODEL_SETTINGS) + ".")
    unknown = [name for name in names if name not in models.NINE_MODEL_SETTINGS]
    if unknown:
        raise ParameterError(
            f"Unknown model(s) {unknown} in models; choose from {', '.join(models.NINE_MODEL_SETTINGS)}."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParameterError(f"models lists {repeated} more than once.")
    return names


def settings_table(params: NineModelsParams, names: Sequence[str]) -> pd.DataFrame:
    """One row per model: the settings this run uses and the paper's head.

    Args:
        params: Resolved run parameters.
        names: Model names.

    Returns:
        One row per model (index ``model``): input size, input scaling, head,
        trainable layers, optimiser, epochs, the epoch kept, batch, augmentation and weights.
    """
    rows = {}
    for name in check_model_names(names):
        settings, run_params = model_settings(params, name), model_parameters(params, name)
        paper = models.NINE_MODEL_SETTINGS[name]
        rows[name] = {
            "input_size": settings.input_size,
            "input scaling": settings.preprocess,
            "head dense units": "-".join(str(units) for units in paper.dense_units),
            "head dropout": paper.dropout if paper.dropout else "none",
            "trainable last layers": settings.trainable_last_layers or "all",
            "learning_rate": settings.learning_rate,
            "adam_epsilon": settings.epsilon,
            "epochs": run_params.epochs,
            "epoch kept": epoch_kept(run_params),
            "batch_size": run_params.batch_size,
            "augment": augment.describe(run_params.augment),
            "weights": settings.weights or "none (random)",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def epoch_kept(params: NineModelsParams) -> str:
    """Which epoch's weights a model keeps, in words: its checkpoint rule and whether it stops early.

    Example: ``"best val_loss, early stopping (patience 4)"`` or ``"best val_accuracy of all epochs"``.
    """
    if params.early_stopping:
        return f"best {params.checkpoint_monitor}, early stopping (patience {params.patience})"
    return f"best {params.checkpoint_monitor} of all epochs"
