"""Classifier heads as layer specs: the plain GAP head and the nine-models paper's heads.

The nine-models paper's per-model settings (:class:`NineModelSetting`: head,
dropout, trainable layers, Adam learning rate and epsilon, the authors' input
scaling) are facts read from the registry's ``nine_models`` section, which
cites their sources.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from common.config import registry
from common.data import scaling
from common.errors import ParameterError


def gap_head(dropout: float = 0.3) -> dict:
    """Spec of the plain head: global average pooling, then dropout.

    Args:
        dropout: Dropout rate before the softmax layer (0 leaves it out).

    Returns:
        A head spec ``{"layers": [...]}`` for :func:`~common.models.build_backbone_model`.
    """
    layers = [{"layer": "gap2d"}]
    if dropout:
        layers.append({"layer": "dropout", "rate": dropout})
    return {"layers": layers}


def nine_models_head(
    dense_units: Sequence[int], dropout: float | None, dropout_before_first_dense: bool = True
) -> dict:
    """Spec of the nine-models paper's classifier (seed 002, Methods and Fig. 1).

    UpSampling2D(4x4) -> GAP -> BatchNorm -> [Dropout] -> then per dense size:
    Dense(relu) -> BatchNorm -> [Dropout]. The softmax layer is appended by
    the model builder.

    Args:
        dense_units: Sizes of the hidden Dense layers, in order.
        dropout: Dropout rate, or None for no dropout (the paper's VGGs).
        dropout_before_first_dense: Whether a dropout follows the first
            BatchNorm (all of the authors' models but Xception).

    Returns:
        A head spec ``{"layers": [...]}``.
    """
    layers: list[dict] = [
        {"layer": "upsampling2d", "size": (4, 4)},
        {"layer": "gap2d"},
        {"layer": "batchnorm"},
    ]
    if dropout and dropout_before_first_dense:
        layers.append({"layer": "dropout", "rate": dropout})
    for units in dense_units:
        layers += [{"layer": "dense", "units": units, "activation": "relu"}, {"layer": "batchnorm"}]
        if dropout:
            layers.append({"layer": "dropout", "rate": dropout})
    return {"layers": layers}


@dataclasses.dataclass(frozen=True)
class NineModelSetting:
    """Per-model fine-tuning settings of the nine-models paper.

    Attributes:
        trainable_last_layers: How many of the backbone's last layers train
            (the rest, about 70 %, stay frozen).
        learning_rate: Adam learning rate.
        epsilon: Adam epsilon.
        dropout: Head dropout rate, None for none.
        dense_units: Hidden Dense sizes of the head.
        authors_scaling: How the authors' code scales this model's 0..255 inputs,
            a rule of :data:`common.data.scaling.RULES`.
        dropout_before_first_dense: See :func:`nine_models_head`.
    """

    trainable_last_layers: int
    learning_rate: float
    epsilon: float
    dropout: float | None
    dense_units: tuple[int, ...]
    authors_scaling: str
    dropout_before_first_dense: bool = True

    @property
    def head(self) -> dict:
        """The head spec these settings describe."""
        return nine_models_head(self.dense_units, self.dropout, self.dropout_before_first_dense)


def load_nine_model_settings() -> dict[str, NineModelSetting]:
    """Read the registry's ``nine_models`` section into :class:`NineModelSetting` rows.

    Returns:
        ``{backbone name: settings}``, in the registry's order.

    Raises:
        ParameterError: An entry has fields :class:`NineModelSetting` does not know
            or lacks one it needs, or names an input scaling :mod:`common.data.scaling` does not have.
    """
    settings: dict[str, NineModelSetting] = {}
    for name, entry in registry.section("nine_models").items():
        try:
            settings[name] = NineModelSetting(**{**entry, "dense_units": tuple(entry.get("dense_units", ()))})
        except TypeError as error:
            raise ParameterError(f"Registry nine_models.{name}: {error}") from error
        if settings[name].authors_scaling not in scaling.RULES:
            raise ParameterError(
                f"Registry nine_models.{name}: authors_scaling={settings[name].authors_scaling!r} is none of "
                f"{', '.join(scaling.RULES)}."
            )
    return settings


NINE_MODEL_SETTINGS: dict[str, NineModelSetting] = load_nine_model_settings()

HEADS: dict[str, dict] = {"gap": gap_head()}
# "nine_models" is accepted by build_backbone_model too: it stands for the head of
# NINE_MODEL_SETTINGS[backbone], which depends on the backbone.
NINE_MODELS_HEAD = "nine_models"


def resolve_head(head: str | dict, backbone: str) -> list[dict]:
    """Return the layer list of a head given by name or as a spec dict.

    Args:
        head: A :data:`HEADS` key, :data:`NINE_MODELS_HEAD` or a spec dict
            ``{"layers": [...]}``.
        backbone: The backbone the head goes on (picks the nine-models head).

    Returns:
        The head's layer spec.

    Raises:
        ParameterError: An unknown head name or a spec dict without a ``layers`` list.
    """
    if isinstance(head, dict):
        if not isinstance(head.get("layers"), list):
            raise ParameterError(f"Head spec {head!r} needs a 'layers' list.")
        return head["layers"]
    if head == NINE_MODELS_HEAD:
        return NINE_MODEL_SETTINGS[backbone].head["layers"]
    if head in HEADS:
        return HEADS[head]["layers"]
    raise ParameterError(
        f"Unknown head {head!r}; use one of {', '.join([*HEADS, NINE_MODELS_HEAD])} or a spec dict {{'layers': [...]}}."
    )
