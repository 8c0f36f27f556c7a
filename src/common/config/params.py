"""Typed, validated run parameters: one frozen dataclass per experiment.

:func:`common.config.registry.resolve` reads an experiment's parameters from ``registry.yaml``
(defaults, then the profile's values, then the caller's overrides) and returns
an instance of the experiment's class below. Values come only from the
registry; types come from the annotations and constraints (ranges, allowed
values, list lengths) from the registry's ``parameter_schemas`` section, and
every value is checked against both on construction with JSON Schema
(:mod:`common.config.schemas`), so ``dataclasses.replace(P, epochs=2)`` is
validated too, and a bad ``-p`` value is refused before any kernel starts.
A parameter accepts ``None`` when its annotation does: wherever a profile
sets it to ``None``, and where ``None`` means something (``augment``: no
augmentation; ``scorecam_max_channels``: every channel; ...).

Example:
    >>> from common.config import registry, schemas
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

from common.config import registry, schemas
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


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` in the form its annotation asks for, where a user's spelling differs harmlessly.

    An on/off/yes/no word becomes a bool for a ``bool`` field, an int becomes a float for a
    ``float`` field and a tuple a list for a ``list`` field; anything else is returned as it
    is and checked by :func:`common.config.schemas.validate`.
    """
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    kinds = {typing.get_origin(member) or member for member in members or (annotation,)}
    if bool in kinds and isinstance(value, str) and value.lower() in YAML_BOOLEAN_WORDS:
        return YAML_BOOLEAN_WORDS[value.lower()]
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if list in kinds and isinstance(value, tuple):
        return list(value)
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
        annotations: Folder of Pascal VOC bounding boxes of the real data set's lesions
            (:mod:`common.data.annotations`), or None.
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
    benchmark_methods: list[str] | None = parameter()
    benchmark_images: int = parameter()
    deletion_steps: int = parameter()
    explain_only_correct: bool = parameter()
    n_resamples: int = parameter()
    sized_test: bool = parameter()
    strategy: str = parameter()
    gpu_speedups: str = parameter()
    precision: str = parameter()
    annotations: str | None = parameter()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        names = self.parameter_names()
        for name in names:
            object.__setattr__(self, name, coerce(getattr(self, name), hints[name]))
        schemas.validate(type(self), {name: getattr(self, name) for name in names}, names, examples(self.experiment))
        if self.annotations is not None and self.data_dir is None:
            raise ParameterError(
                f"annotations={self.annotations!r}: bounding boxes annotate a real data set's slices; "
                "pass --data-dir too (the phantoms have their own lesion outlines)."
            )

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
    """A 2D experiment on class folders of images (phantoms or a real data set), audited for duplicates."""

    phantom_size: int = parameter()
    image_size: int = parameter()
    channels: int = parameter()
    split_fractions: list[float] = parameter()
    on_bad_file: str = parameter()
    split: str = parameter()
    near_duplicate_threshold: float = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackboneRunParams(ImageRunParams):
    """One ImageNet backbone with a pooling head, retraining on the other split, and CAMs at chosen layers."""

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
    """``resnet50-gradcam``: ResNet50 + Grad-CAM, nodule vs no nodule, and a model for every row of its Table I."""

    table_models: list[str] = parameter()
    model_overrides: dict[str, dict[str, Any]] = parameter()


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
    input_scaling: str = parameter()
    checkpoint_monitor: str = parameter()
    early_stopping: bool = parameter()
    augment: dict[str, Any] | None = parameter()
    model_overrides: dict[str, dict[str, Any]] = parameter()
    run_eagerly: bool = parameter()
    cam_layers: dict[str, list[str]] = parameter()
    group_cam_max_layers: int | None = parameter()
    n_cam_images: int = parameter()
    cam_finest_stride: int | None = parameter()
    release_models: bool = parameter()
    throughput_images: int = parameter()
    scorecam_max_channels: int | None = parameter()
    randomisation_layers: int = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiOrganParams(ImageRunParams):
    """``multi-organ``: the paper's 8-class CNN with Grad-CAM contours."""

    cam_layer: str | None = parameter()
    scorecam_max_channels: int | None = parameter()
    randomisation_layers: int = parameter()
    label_map: dict[str, str] | None = parameter()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gradcam3dParams(RunParams):
    """``gradcam-3d``: a 3D CNN on DICOM volumes, cross-validated, with 3D Grad-CAM; the ``slice_*`` settings
    are its 2D baselines' (:mod:`common.experiments.slice_baselines`)."""

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
    scorecam_max_channels: int | None = parameter()
    randomisation_layers: int = parameter()
    slice_models: list[str] = parameter()
    slice_weights: str | None = parameter()
    slice_image_size: int | None = parameter()
    slices_per_volume: int | None = parameter()
    slice_labels: str = parameter()
    slice_poolings: list[str] = parameter()
    slice_epochs: int = parameter()
    slice_learning_rate: float = parameter()
    slice_batch_size: int = parameter()
    slice_recalibrate_bn: int | None = parameter()
    slice_run_eagerly: bool = parameter()


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
