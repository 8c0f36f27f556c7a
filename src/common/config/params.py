"""Typed, validated run parameters: one frozen dataclass per experiment.

:func:`common.config.registry.resolve` reads an experiment's parameters from ``registry.yaml``
(defaults, then the profile's values, then the caller's overrides) and returns
an instance of the experiment's class below. Values come only from the
registry; types come from the annotations, and every value is checked on
construction, so ``dataclasses.replace(P, epochs=2)`` is validated too.
A parameter accepts ``None`` when its annotation does: wherever a profile
sets it to ``None``, and where ``None`` means something (``augment``: no
augmentation; ``scorecam_max_channels``: every channel; ...).

Example:
    >>> from common.config import registry
    >>> P = registry.resolve("iqoth", "smoke", {"epochs": 2})
    >>> P.epochs
    2
    >>> P.as_dict()["epochs"]
    2
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config import registry
from common.errors import ParameterError

# The words YAML 1.1 reads as booleans, besides true and false (see registry.parse_value).
YAML_BOOLEAN_WORDS = {"on": True, "yes": True, "off": False, "no": False}
# The run-context keys of as_dict(), in their order after the parameters.
CONTEXT_KEYS = (
    "experiment",
    "profile",
    "data_dir",
    "data_source",
    "task",
    "classes",
    "positive",
    "label_map",
    "manifest",
)
PHANTOM_KEYS = ("phantom_kind", "phantom_classes")


def parameter() -> Any:
    """A dataclass field that is one of the experiment's registry parameters (no default)."""
    return dataclasses.field(metadata={"parameter": True})


@functools.cache
def examples(experiment_id: str) -> dict[str, Any]:
    """Each parameter's example value for messages: its default, else the first profile value set.

    A parameter that is ``None`` by default and set in a profile (``weights``)
    takes that profile's value; one that is ``None`` everywhere stays ``None``.
    """
    entry = registry.experiment(experiment_id)
    out = dict(entry["parameters"])
    for values in entry["profiles"].values():
        for name, value in (values or {}).items():
            if out.get(name) is None:
                out[name] = value
    return out


def _allowed(annotation: Any) -> tuple[type, bool]:
    """The container or scalar type an annotation asks for, and whether it allows ``None``."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0]
        origin = typing.get_origin(annotation)
    return (origin or annotation), optional


def check_value(name: str, value: Any, annotation: Any, example: Any) -> Any:
    """Return ``value`` (an int made float, an on/off word made bool) if it fits ``annotation``, else raise.

    Args:
        name: The parameter's name, for the message.
        value: The value to check.
        annotation: The field's type annotation (``int``, ``list[str]``, ``str | None``...).
            Lists and dicts are checked as containers, not item by item.
        example: A registry value of the parameter, shown in the message.

    Raises:
        ParameterError: ``Parameter 'epochs' expects a int like 9, got 'abc'.``
    """
    kind, optional = _allowed(annotation)
    if value is None and optional:
        return value
    if kind is bool:
        if isinstance(value, str) and value.lower() in YAML_BOOLEAN_WORDS:
            value = YAML_BOOLEAN_WORDS[value.lower()]
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is list:
        ok = isinstance(value, (list, tuple))
    elif kind is dict:
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, str)
    if not ok:
        like = f"like {example!r}" if example is not None else "or None"
        raise ParameterError(f"Parameter {name!r} expects a {kind.__name__} {like}, got {value!r}.")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunParams:
    """What every run has: where its data comes from, its classes, and the shared parameters.

    Build one with :func:`resolve`; change one with ``dataclasses.replace`` (validated again).

    Attributes:
        experiment: The experiment id (``iqoth``, ...).
        profile: ``smoke``, ``default`` or ``paper``.
        data_dir: A real data set's root, or None for the embedded phantoms.
        data_source: ``real_data`` or ``phantoms``.
        task: ``binary`` or ``multiclass``.
        classes: Class names, in label-index order.
        positive: The positive class of a binary task, else None.
        label_map: Folder name -> class name of the data actually used (None: folders named as classes).
        manifest: The real data set's manifest name, or ``phantoms``.
        phantom_kind: The phantom generator (phantom runs only).
        phantom_classes: The phantom set's folders (phantom runs only).
    """

    experiment: str
    profile: str
    data_dir: str | None
    data_source: str
    task: str
    classes: list[str]
    positive: str | None
    label_map: dict[str, str] | None
    manifest: str
    phantom_kind: str | None = None
    phantom_classes: list[str] | None = None

    seed: int = parameter()
    n_per_class: int = parameter()
    epochs: int = parameter()
    patience: int = parameter()
    batch_size: int = parameter()
    learning_rate: float = parameter()
    cam_methods: list[str] = parameter()
    cam_fraction: float = parameter()
    n_explain: int = parameter()
    explain_only_correct: bool = parameter()
    n_resamples: int = parameter()
    strategy: str = parameter()
    gpu_speedups: str = parameter()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        example = examples(self.experiment)
        for name in self.parameter_names():
            value = check_value(name, getattr(self, name), hints[name], example.get(name))
            object.__setattr__(self, name, value)

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The names of the registry parameters this class declares (not the run context)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("parameter")]

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict: registry order, then the run context (a deep copy).

        The dict ``metrics.json`` records and the notebooks show; phantom runs
        add ``phantom_kind`` and ``phantom_classes``.
        """
        names = list(registry.experiment(self.experiment)["parameters"])
        names += CONTEXT_KEYS
        if self.data_source == "phantoms":
            names += PHANTOM_KEYS
        return {name: copy.deepcopy(getattr(self, name)) for name in dict.fromkeys(names)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageRunParams(RunParams):
    """A 2D experiment on class folders of images (phantoms or a real data set)."""

    phantom_size: int = parameter()
    image_size: int = parameter()
    channels: int = parameter()
    split_fractions: list[float] = parameter()
    on_bad_file: str = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackboneRunParams(ImageRunParams):
    """One ImageNet backbone with a pooling head, a duplicate audit and CAMs at chosen layers."""

    split: str = parameter()
    near_duplicate_threshold: float = parameter()
    retrain_split_min_share: float = parameter()
    backbone: str = parameter()
    weights: str | None = parameter()
    trainable_fraction: float | None = parameter()
    bn_momentum: float | None = parameter()
    zero_init_residual: bool = parameter()
    dropout: float = parameter()
    run_eagerly: bool = parameter()
    augment: dict[str, Any] | None = parameter()
    baseline_cnn: bool = parameter()
    cam_layer: str | None = parameter()
    cam_layer_candidates: list[str] | None = parameter()
    scorecam_max_channels: int | None = parameter()
    randomisation_layers: int = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResNet50GradCamParams(BackboneRunParams):
    """``resnet50-gradcam``: ResNet50 + Grad-CAM, nodule vs no nodule; it adds nothing to the backbone runs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class IqothParams(BackboneRunParams):
    """``iqoth``: ResNet50 on normal / benign / malignant, with balanced class weights."""

    class_weights: bool = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class NineModelsParams(ImageRunParams):
    """``nine-models``: nine ImageNet backbones compared on one split."""

    models: list[str] = parameter()
    paper_input_sizes: bool = parameter()
    split_counts: dict[str, int] | None = parameter()
    label_map: dict[str, str] | None = parameter()
    weights: str | None = parameter()
    paper_trainable_layers: bool = parameter()
    bn_momentum: float | None = parameter()
    zero_init_residual: bool = parameter()
    recalibrate_bn: int | None = parameter()
    paper_optimiser: bool = parameter()
    augment: dict[str, Any] | None = parameter()
    model_overrides: dict[str, dict[str, Any]] = parameter()
    run_eagerly: bool = parameter()
    cam_layers: dict[str, list[str]] = parameter()
    group_cam_max_layers: int | None = parameter()
    n_cam_images: int = parameter()
    cam_finest_stride: int | None = parameter()
    release_models: bool = parameter()
    throughput_images: int = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiOrganParams(ImageRunParams):
    """``multi-organ``: the paper's 8-class CNN with Grad-CAM contours."""

    cam_layer: str | None = parameter()
    scorecam_max_channels: int | None = parameter()
    randomisation_layers: int = parameter()
    label_map: dict[str, str] | None = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gradcam3dParams(RunParams):
    """``gradcam-3d``: a 3D CNN on DICOM volumes, cross-validated, with 3D Grad-CAM."""

    volume_shape: list[int] = parameter()
    input_shape: list[int] = parameter()
    window: list[float] = parameter()
    sobel: bool = parameter()
    width: float = parameter()
    bn_momentum: float | None = parameter()
    hidden_units: int | None = parameter()
    dropout: float = parameter()
    k_folds: int = parameter()
    val_fraction: float = parameter()
    augment_rotation: float = parameter()
    compare_cam_layer: str | None = parameter()
    randomisation_layers: int = parameter()


PARAMS_CLASSES: dict[str, type[RunParams]] = {
    "resnet50-gradcam": ResNet50GradCamParams,
    "nine-models": NineModelsParams,
    "multi-organ": MultiOrganParams,
    "iqoth": IqothParams,
    "gradcam-3d": Gradcam3dParams,
}


def params_class(experiment_id: str) -> type[RunParams]:
    """The :class:`RunParams` subclass of an experiment.

    Raises:
        ParameterError: for an experiment the registry does not have, listing the known ones.
    """
    registry.experiment(experiment_id)  # raises for an unknown id
    return PARAMS_CLASSES[experiment_id]


def from_registry(
    experiment_id: str, profile: str, overrides: Mapping[str, Any] | None, data_dir: str | Path | None
) -> RunParams:
    """The body of :func:`common.config.registry.resolve` (see there): registry values -> typed parameters."""
    entry = registry.experiment(experiment_id)
    if profile not in registry.PROFILES:
        raise ParameterError(f"Unknown profile {profile!r}; choose one of {', '.join(registry.PROFILES)}.")
    base = entry["parameters"]
    values = dict(base)
    values.update(entry["profiles"].get(profile) or {})
    for name, value in (overrides or {}).items():
        if name not in base:
            raise ParameterError(f"Unknown parameter {name!r} for {experiment_id}; known: {', '.join(sorted(base))}.")
        values[name] = value  # checked against its annotation on construction

    source = "real_data" if data_dir is not None else "phantoms"
    values.update(
        experiment=experiment_id,
        profile=profile,
        data_dir=None if data_dir is None else str(data_dir),
        data_source=source,
        task=entry["task"],
        classes=list(entry["classes"]),
        positive=entry.get("positive"),
        # An experiment may declare a label_map parameter so a user can map other folder names.
        label_map=values.get("label_map") or entry[source].get("label_map"),
        manifest=entry["real_data"].get("manifest") if source == "real_data" else "phantoms",
    )
    if source == "phantoms":
        values["phantom_kind"] = entry["phantoms"]["kind"]
        values["phantom_classes"] = list(entry["phantoms"]["classes"])
    return PARAMS_CLASSES[experiment_id](**values)
