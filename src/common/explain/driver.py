"""The one explanation driver: CAMs at a layer on a subset of images, scored against lesion masks.

Every experiment explains the same way: it picks the images to score (lesion
images, correctly classified ones unless told otherwise) as an
:class:`ImageSubset`, and the driver takes each method's CAMs at one layer and
scores them against the masks (:func:`explain` -> :class:`Explanation`). The
images may be explained by one model, or each by its own model
(:class:`FoldModels`: every volume of a cross-validation by the model of its
test fold). Which layer to score can be chosen on the validation split
(:func:`select_layer` -> :class:`LayerSelection`), and a test split's scores
at the CAM layer and at the chosen layer make one :class:`ExplanationSet`
(:func:`explain_split`). 2D and 3D inputs go through the same code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import keras
import numpy as np
import pandas as pd

from common.config.params import RunParams
from common.errors import DataError, ParameterError
from common.explain.cams import CamExplainer
from common.explain.layers import last_conv_layer, layer_grid
from common.explain.scores import energy_share, score_explanations

LOCALISATION_METRICS = ("pointing_game", "energy_share", "iou")
"""The scores of :func:`common.explain.scores.score_explanations`, in table order."""


@dataclasses.dataclass(frozen=True)
class ExplainSettings:
    """How CAMs are scored, and Score-CAM's channel cap.

    Attributes:
        seed: Bootstrap seed of the confidence intervals.
        n_resamples: Bootstrap resamples.
        fraction: IoU threshold, a fraction of each CAM's maximum.
        scorecam_max_channels: Score-CAM's cap on channels (None: every channel);
            the gradient methods use every channel.
    """

    seed: int
    n_resamples: int
    fraction: float = 0.5
    scorecam_max_channels: int | None = None

    @classmethod
    def from_params(cls, params: RunParams) -> ExplainSettings:
        """The run's ``seed``, ``n_resamples``, ``cam_fraction`` and Score-CAM cap.

        Args:
            params: Run parameters; an experiment without ``scorecam_max_channels`` gets None
                (every channel).
        """
        return cls(
            seed=params.seed,
            n_resamples=params.n_resamples,
            fraction=params.cam_fraction,
            scorecam_max_channels=getattr(params, "scorecam_max_channels", None),
        )

    def max_channels(self, method: str) -> int | None:
        """The channel cap of ``method``: :attr:`scorecam_max_channels` for Score-CAM, else None."""
        return self.scorecam_max_channels if method == "scorecam" else None

    def score(self, maps: np.ndarray, masks: np.ndarray) -> dict:
        """:func:`common.explain.scores.score_explanations` of the maps with these settings."""
        return score_explanations(maps, masks, seed=self.seed, n_resamples=self.n_resamples, fraction=self.fraction)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class ImageSubset:
    """The images an explanation scores.

    Attributes:
        positions: Their positions in the caller's sample table (N,).
        images: Model-ready inputs (N, H, W, C) or (N, H, W, D, C).
        targets: The class explained in each image (N,).
        masks: Lesion masks at the input's spatial size (N, H, W) or (N, H, W, D).
    """

    positions: np.ndarray
    images: np.ndarray
    targets: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        """Check that every field has one entry per image.

        Raises:
            DataError: Fields of different lengths.
        """
        lengths = {len(self.positions), len(self.images), len(self.targets), len(self.masks)}
        if len(lengths) != 1:
            raise DataError(
                f"positions, images, targets and masks differ in length: {len(self.positions)}, "
                f"{len(self.images)}, {len(self.targets)}, {len(self.masks)}"
            )

    @classmethod
    def take(cls, inputs: np.ndarray, labels: np.ndarray, positions: np.ndarray, masks: np.ndarray) -> ImageSubset:
        """The subset at ``positions`` of a split's inputs and labels.

        Args:
            inputs: Every model-ready input of the split, in sample-table order.
            labels: Every sample's class index, in the same order (the class explained).
            positions: The chosen positions.
            masks: The masks of the chosen images, in ``positions`` order.
        """
        positions = np.asarray(positions)
        return cls(positions, inputs[positions], np.asarray(labels)[positions], masks)

    def __len__(self) -> int:
        """The number of images."""
        return len(self.positions)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class FoldModels:
    """Models that each explain their own images: each volume of a cross-validation by its test fold's model.

    Attributes:
        models: Owner key (e.g. fold number) -> model, in the order they run.
        owners: The owner key of every explained image.
    """

    models: Mapping[int, keras.Model]
    owners: np.ndarray

    def first(self) -> keras.Model:
        """The first model (they share one architecture, so one layer name fits all)."""
        return next(iter(self.models.values()))


Explainer: TypeAlias = "keras.Model | FoldModels"
"""One model for every image, or :class:`FoldModels`."""


def as_fold_models(model: Explainer, n_images: int) -> FoldModels:
    """``model`` as :class:`FoldModels` of ``n_images`` images (one model: it owns them all)."""
    if not isinstance(model, FoldModels):
        return FoldModels({0: model}, np.zeros(n_images, dtype=int))
    if len(model.owners) != n_images:
        raise DataError(f"{len(model.owners)} owners for {n_images} images")
    return model


def owned_rows(model: Explainer, n_images: int) -> Iterator[tuple[keras.Model, np.ndarray]]:
    """Each model with the positions of the images it owns (one model: all of them); models owning none are skipped."""
    assigned = as_fold_models(model, n_images)
    for key, owner in assigned.models.items():
        mine = np.flatnonzero(assigned.owners == key)
        if mine.size:
            yield owner, mine


def owned_cams(
    model: Explainer,
    images: np.ndarray,
    targets: np.ndarray,
    method: str,
    layer: str | None,
    max_channels: int | None = None,
) -> np.ndarray:
    """CAMs of every image by its own model (one explainer per model).

    Args:
        model: One model, or :class:`FoldModels` with an owner per image.
        images: Model-ready inputs (N, ...).
        targets: The class explained in each image (N,).
        method: Key of :data:`common.explain.methods.METHODS`.
        layer: CAM layer; None: each model's last convolutional layer.
        max_channels: Score-CAM's channel cap (None: every channel).

    Returns:
        float32 CAMs (N, H, W) or (N, H, W, D) in [0, 1].
    """
    targets = np.asarray(targets)
    maps = np.zeros(images.shape[:-1], dtype=np.float32)
    for owner, mine in owned_rows(model, len(images)):
        maps[mine] = CamExplainer(owner, method).cams(images[mine], targets[mine], layer, max_channels=max_channels)
    return maps


def owned_gradient_cams(
    model: Explainer, images: np.ndarray, targets: np.ndarray, methods: Sequence[str], layer: str | None
) -> dict[str, np.ndarray]:
    """CAMs of several gradient methods, every image by its own model, from one pass per batch and model.

    Args:
        model: One model, or :class:`FoldModels` with an owner per image.
        images: Model-ready inputs (N, ...).
        targets: The class explained in each image (N,).
        methods: Keys of :data:`common.explain.methods.GRADIENT_METHODS`.
        layer: CAM layer; None: each model's last convolutional layer.

    Returns:
        Method -> float32 CAMs (N, H, W) or (N, H, W, D) in [0, 1].
    """
    targets = np.asarray(targets)
    maps = {method: np.zeros(images.shape[:-1], dtype=np.float32) for method in methods}
    for owner, mine in owned_rows(model, len(images)):
        found = CamExplainer(owner, methods[0]).cams_of_gradient_methods(images[mine], targets[mine], layer, methods)
        for method, cams in found.items():
            maps[method][mine] = cams
    return maps


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class Explanation:
    """The CAMs of a subset of images at one layer, by one or more methods, scored against lesion masks.

    Attributes:
        positions: The explained images' positions in the caller's sample table.
        layer: The layer the CAMs were taken at.
        masks: Their lesion masks.
        cams: Method -> CAMs (N, H, W) or (N, H, W, D) in [0, 1]; empty when no image was explained.
        scores: Method -> :func:`common.explain.scores.score_explanations` record.
        seconds: Method -> seconds its CAMs took (not the scoring).
    """

    positions: np.ndarray
    layer: str
    masks: np.ndarray
    cams: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    scores: Mapping[str, dict] = dataclasses.field(default_factory=dict)
    seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def best_and_worst(self, k: int = 3, method: str = "gradcam") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` best then ``k`` worst explained images by energy share, best first.

        With ``2 k`` images or fewer, each is shown once, best first.

        Returns:
            ``(positions, cams, masks)`` of the picked images.
        """
        maps = self.cams[method]
        order = np.argsort(energy_share(maps, self.masks))[::-1]
        picks = order if len(order) <= 2 * k else np.concatenate([order[:k], order[-k:]])
        return self.positions[picks], maps[picks], self.masks[picks]


def explain(
    model: Explainer, subset: ImageSubset, methods: Sequence[str], settings: ExplainSettings, layer: str | None = None
) -> Explanation:
    """CAMs of every method on the subset, scored against its masks.

    Args:
        model: One model, or :class:`FoldModels` with an owner per image of ``subset``.
        subset: The images to explain.
        methods: Keys of :data:`common.explain.methods.METHODS`, in order.
        settings: Scoring settings and Score-CAM's channel cap.
        layer: CAM layer; None (or empty): the (first) model's last convolutional layer.

    Returns:
        The explanation; without CAMs or scores when the subset is empty.
    """
    first = model.first() if isinstance(model, FoldModels) else model
    chosen = layer or last_conv_layer(first)
    if len(subset) == 0:
        return Explanation(subset.positions, chosen, subset.masks)
    cams, scores, seconds = {}, {}, {}
    for method in methods:
        started = time.perf_counter()
        maps = owned_cams(model, subset.images, subset.targets, method, chosen, settings.max_channels(method))
        seconds[method] = round(time.perf_counter() - started, 2)
        cams[method], scores[method] = maps, settings.score(maps, subset.masks)
    return Explanation(subset.positions, chosen, subset.masks, cams, scores, seconds)


def best_layer(scores: Mapping[str, Mapping], layers: Sequence[str]) -> str | None:
    """The layer with the highest pointing game, then energy share, then earliest in ``layers``.

    Args:
        scores: Layer -> scores of :func:`common.explain.scores.score_explanations`.
        layers: The candidate layers in order of preference.

    Returns:
        A layer name, or None when ``scores`` is empty.
    """
    if not scores:
        return None
    order = list(layers)
    return max(
        scores,
        key=lambda layer: (
            scores[layer]["pointing_game"]["value"],
            scores[layer]["energy_share"]["value"],
            -order.index(layer),
        ),
    )


@dataclasses.dataclass(frozen=True)
class LayerSelection:
    """The CAM layer chosen on the validation split, and what it was chosen on.

    Attributes:
        chosen: The layer whose Grad-CAM localised best (:func:`best_layer`),
            None when the validation split had no lesion image to score.
        validation: Layer -> its Grad-CAM scores on the validation split.
        n: Validation images scored.
        seconds: Time of the choice (CAMs and scores, and whatever the caller counted before).
    """

    chosen: str | None
    validation: Mapping[str, dict]
    n: int
    seconds: float

    def record(self) -> dict[str, Any]:
        """The ``metrics.json`` record: ``{"chosen", "validation", "n", "seconds"}``."""
        return {"chosen": self.chosen, "validation": dict(self.validation), "n": self.n, "seconds": self.seconds}


def select_layer(
    model: keras.Model,
    subset: ImageSubset,
    layers: Sequence[str],
    settings: ExplainSettings,
    started: float | None = None,
) -> LayerSelection:
    """Choose the layer whose Grad-CAM finds the lesions of ``subset`` best.

    A CPU-sized ResNet50's last convolutional layer is a 3 x 3 grid at 96 px:
    its heatmap can only peak on one of nine cell centres, too coarse to point
    at a nodule a few pixels wide. Finer layers localise better but carry less
    class-specific evidence, so which one to score is a choice, made like any
    other: on the validation split's lesion images (highest pointing game,
    then energy share; the first listed layer on a tie), never on the test
    split the chosen layer is then scored on.

    Args:
        model: The trained model.
        subset: The validation split's lesion images.
        layers: Candidate layer names, deepest first.
        settings: Scoring settings.
        started: ``time.perf_counter()`` reading the choice's time counts from
            (default: this call), so the caller can count preparing the subset.

    Returns:
        The choice; ``chosen`` None when the subset is empty.
    """
    started = time.perf_counter() if started is None else started
    validation = {}
    if len(subset):
        # Every candidate layer's Grad-CAM from one pass per batch.
        maps = CamExplainer(model, "gradcam").cams_at_layers(subset.images, subset.targets, layers)
        validation = {layer: settings.score(maps[layer], subset.masks) for layer in layers}
    return LayerSelection(
        best_layer(validation, layers), validation, len(subset), round(time.perf_counter() - started, 2)
    )


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class ExplanationSet:
    """A test split's scored CAMs: every method at the CAM layer, Grad-CAM at the validation-chosen layer.

    Attributes:
        model_name: Name of the explained model (the key of its scores).
        last: Every method at the CAM layer.
        selection: The validation choice of a layer, or None (no candidates).
        chosen: Grad-CAM at the chosen layer on the same images, or None.
        layer_shapes: Layer name -> its feature grid, for labels.
    """

    model_name: str
    last: Explanation
    selection: LayerSelection | None = None
    chosen: Explanation | None = None
    layer_shapes: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    @property
    def scores(self) -> dict[str, Mapping[str, dict]]:
        """Metrics-file entry: model name [at layer] -> method -> scores."""
        out = {self.model_name: self.last.scores}
        if self.chosen:
            out[f"{self.model_name} at {self.chosen.layer}"] = self.chosen.scores
        return out

    @property
    def seconds(self) -> dict[str, Any]:
        """Time of every step: CAMs per layer and method, and the layer choice."""
        out: dict[str, Any] = {self.last.layer: self.last.seconds}
        if self.selection:
            out["choosing the layer (validation)"] = self.selection.seconds
        if self.chosen:
            out[f"chosen: {self.chosen.layer}"] = self.chosen.seconds
        return out

    def _label(self, layer: str) -> str:
        return f"{layer} {self.layer_shapes.get(layer, '')}".strip()

    def validation_table(self) -> pd.DataFrame | None:
        """Grad-CAM per candidate layer on the validation split (None without candidates)."""
        from common.evaluation.tables import metrics_table

        if not self.selection:
            return None
        rows = {self._label(layer): scores for layer, scores in self.selection.validation.items()}
        return metrics_table(rows, names=LOCALISATION_METRICS)

    def test_table(self) -> pd.DataFrame:
        """Every method at the CAM layer, then Grad-CAM at the chosen layer, on the test split."""
        from common.evaluation.tables import metrics_table

        last_label = self._label(self.last.layer)
        rows = {f"{last_label}, {method}": scores for method, scores in self.last.scores.items()}
        if self.chosen:  # may be the CAM layer itself, so its rows are named apart
            rows |= {
                f"{self._label(self.chosen.layer)}, {method}, chosen on validation": scores
                for method, scores in self.chosen.scores.items()
            }
        return metrics_table(rows, names=LOCALISATION_METRICS)

    def best_and_worst(self, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """The ``k`` best then ``k`` worst explained images by Grad-CAM energy share, best first.

        Drawn from the chosen layer's heatmaps when there is one (the layer that
        can localise), else from the CAM layer's.

        Returns:
            ``(positions, cams, masks, layer)``: positions, their Grad-CAMs and masks.
        """
        source = self.chosen or self.last
        return (*source.best_and_worst(k, "gradcam"), source.layer)


def explain_split(
    model: keras.Model,
    test: ImageSubset,
    layer: str,
    methods: Sequence[str],
    settings: ExplainSettings,
    candidates: Sequence[str] = (),
    validation: Callable[[], ImageSubset] | None = None,
) -> ExplanationSet | None:
    """Score every method on the test images, and Grad-CAM at the layer chosen on validation.

    Args:
        model: The trained model.
        test: The test split's images to score.
        layer: The CAM layer every method is scored at.
        methods: Keys of :data:`common.explain.methods.METHODS`.
        settings: Scoring settings and Score-CAM's channel cap.
        candidates: Layers to choose from on validation (none: no choice).
        validation: Makes the validation split's images to choose on; called
            only when there are candidates and a test image was scored, and
            counted in the choice's seconds.

    Returns:
        The scored explanations, or None when no test image was scored.

    Raises:
        ParameterError: Candidates without ``validation``.
    """
    if candidates and validation is None:
        raise ParameterError("choosing a CAM layer among candidates needs the validation images")
    last = explain(model, test, methods, settings, layer)
    if not last.scores:
        return None
    selection = chosen = None
    if candidates and validation is not None:  # Grad-CAM only: the comparison is about the layer, not the method
        started = time.perf_counter()
        selection = select_layer(model, validation(), candidates, settings, started)
        if selection.chosen:  # the same test images and masks as at the CAM layer
            chosen = explain(model, test, ("gradcam",), settings, selection.chosen)
    shapes = {name: layer_grid(model, name) for name in [layer, *candidates]}
    return ExplanationSet(model.name, last, selection, chosen, shapes)
