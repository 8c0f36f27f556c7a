"""Difficulty, not only averages: the contrast-detail analysis of a 2D experiment's test split.

An accuracy near 1.000 hides what a model can and cannot see. The phantoms know
every lesion, so, as contrast-detail phantoms do for radiologists, each test
lesion is measured (its size and its contrast against the tissue around it,
:func:`common.evaluation.contrast_detail.lesion_properties`) and the model's
sensitivity and Grad-CAM pointing game are given per size × contrast bin
(:func:`common.evaluation.contrast_detail.contrast_detail`).

When a run is at the ceiling in every bin, its test split does not reach the
model's detection limit. A harder, test-only stratum is then added: new
phantoms of the lesion classes from the same generator, their lesions smaller
and fainter (the registry's ``contrast_detail.hard_stratum``), numbered after
the phantom set and its test extension so none copies a training image. The
training data is unchanged.

Settings: the registry's ``contrast_detail`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.config import registry
from common.config.params import ImageRunParams
from common.evaluation import contrast_detail as cd

# The ``stratum`` of the harder stratum's rows.
HARD = "hard stratum"


@dataclass(frozen=True)
class Settings:
    """The registry's ``contrast_detail`` section.

    Attributes:
        size_bins: Bins on the size axis.
        contrast_bins: Bins on the contrast axis.
        ring_px: Width in pixels of the background ring a lesion's contrast is measured against.
        ceiling: The sensitivity every bin reaching means the test split misses the detection limit.
        hard_scale: (size factor, contrast factor) of the harder stratum's lesions.
        hard_per_class: Images per lesion class in the harder stratum.
    """

    size_bins: int
    contrast_bins: int
    ring_px: int
    ceiling: float
    hard_scale: tuple[float, float]
    hard_per_class: int

    @classmethod
    def from_registry(cls) -> Settings:
        """The settings as the registry states them."""
        section = registry.section("contrast_detail")
        hard = section["hard_stratum"]
        return cls(
            int(section["size_bins"]),
            int(section["contrast_bins"]),
            int(section["ring_px"]),
            float(section["ceiling"]),
            (float(hard["lesion_scale"][0]), float(hard["lesion_scale"][1])),
            int(hard["n_per_class"]),
        )


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class LesionSet:
    """The lesion images of a split (or stratum) as the analysis reads them.

    Attributes:
        samples: Their sample table (``label_index``, ``stratum``).
        properties: :func:`~common.evaluation.contrast_detail.lesion_properties`, one row per sample.
    """

    samples: pd.DataFrame
    properties: pd.DataFrame

    def __len__(self) -> int:
        return len(self.samples)


def lesion_classes(params: ImageRunParams) -> list[str] | None:
    """The classes whose lesions are analysed: the positive class of a binary task, else every lesion class."""
    return [params.positive] if params.positive else None


def lesion_set(
    params: ImageRunParams, samples: pd.DataFrame, display: np.ndarray | None = None, settings: Settings | None = None
) -> LesionSet:
    """The lesion images of ``samples`` (non-empty masks, of :func:`lesion_classes`) with their properties.

    Args:
        params: Run parameters (``image_size``, ``positive``).
        samples: A sample table with ``mask_path`` (e.g. the test split).
        display: The same images in [0, 1] at ``image_size`` (N, S, S), when already read; None reads them.
        settings: The registry's settings; None reads them.
    """
    from common.data import pipeline
    from common.experiments.loading import read_masks

    settings = settings or Settings.from_registry()
    chosen = samples["mask_path"].notna().to_numpy()
    classes = lesion_classes(params)
    if classes is not None:
        chosen = chosen & samples["label"].isin(classes).to_numpy()
    positions = np.flatnonzero(chosen)
    masks = read_masks(samples.iloc[positions], params.image_size)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    positions, masks = positions[keep], masks[keep]
    if display is None:
        images = pipeline.load_arrays(samples.iloc[positions], params.image_size, 1)[..., 0]
    else:
        images = display[positions]
    properties = cd.lesion_properties(images, masks, ring_px=settings.ring_px, index=positions)
    return LesionSet(samples.iloc[positions].assign(position=positions), properties)


def hard_folder(params, settings: Settings | None = None, root=None):
    """Generate (once) and return the phantoms of the run's harder stratum.

    Its images are the phantom set's indices after the set and its test extension, drawn with the
    registry's ``lesion_scale``; a chest set holds its lesion classes only.

    Args:
        params: Run parameters of a phantom experiment.
        settings: The registry's settings; None reads them.
        root: Folder of the phantom sets; None: :func:`common.experiments.loading.phantom_root`.
    """
    from common.experiments import loading, sized_test

    settings = settings or Settings.from_registry()
    arguments: dict[str, Any] = {
        "start_index": params.n_per_class + sized_test.extension_per_class(params),
        "n_per_class": settings.hard_per_class,
        "lesion_scale": settings.hard_scale,
    }
    if "classes" in registry.section("phantom_sets")["arguments"][params.phantom_kind]:
        chosen = lesion_classes(params)
        phantom_classes = list(params.phantom_classes or params.classes)
        label_map = loading.label_map_for(params)
        wanted = [name for name in phantom_classes if chosen is None or label_map.get(name, name) in chosen]
        arguments["classes"] = [name for name in wanted if not _is_lesion_free(params, name)]
    return loading.phantom_folder(params, root, **arguments)


def _is_lesion_free(params, phantom_class: str) -> bool:
    """Whether a phantom class draws no lesion (its images have nothing to detect)."""
    from common.data.phantoms.sets import phantom_kind

    return phantom_kind(params.phantom_kind).scenes[phantom_class].lesion is None


def hard_stratum(params: ImageRunParams, settings: Settings | None = None) -> pd.DataFrame:
    """The harder, test-only stratum's sample table: smaller, fainter lesions of the lesion classes.

    Its images are the phantom set's indices after the set and its test extension, drawn with the
    registry's ``lesion_scale`` (:func:`common.data.phantoms.ensure_phantoms`).
    """
    from common.data import folders
    from common.experiments import loading

    folder = hard_folder(params, settings)
    present = {path.name for path in (folder / "images").iterdir() if path.is_dir()}
    label_map = {name: label for name, label in loading.label_map_for(params).items() if name in present}
    samples, _ = folders.load_class_folders(folder / "images", label_map, mask_root=folder / "masks", min_classes=1)
    samples = loading.with_label_index(params, samples.assign(stratum=HARD))
    classes = lesion_classes(params)
    if classes is not None:
        samples = samples[samples["label"].isin(classes)]
    return samples.assign(split="test").reset_index(drop=True)


@dataclass(frozen=True)
class Detectability:
    """Each model's contrast-detail analysis, and whether a harder stratum was added.

    Attributes:
        by_model: Model name -> its analysis.
        settings: The registry's settings it was made with.
        hard_stratum: Lesion images of the harder stratum included (0: none was needed or possible).
        note: Why no harder stratum was added when the run is at the ceiling, or None.
    """

    by_model: Mapping[str, cd.ContrastDetail]
    settings: Settings
    hard_stratum: int = 0
    note: str | None = None

    def at_ceiling(self) -> bool:
        """Whether every model reaches the ceiling in every bin."""
        return all(analysis.at_ceiling(self.settings.ceiling) for analysis in self.by_model.values())

    def sentences(self) -> str:
        """Markdown: per model where detection falls below the ceiling (or that it never does)."""
        lines = [
            f"- **{name}**: {analysis.limit_sentence(self.settings.ceiling)}"
            for name, analysis in self.by_model.items()
        ]
        if self.hard_stratum:
            size, contrast = self.settings.hard_scale
            lines.append(
                f"- The bins include a harder, test-only stratum of {self.hard_stratum} lesion images (lesions "
                f"scaled to {size:g} × their size and {contrast:g} × their contrast; the training data is unchanged), "
                "added because the test split alone was at the ceiling in every bin."
            )
        if self.note:
            lines.append(f"- {self.note}")
        return "\n".join(lines)

    def table(self, model: str | None = None, measure: str = "sensitivity") -> pd.DataFrame:
        """One model's bins (the first model by default) as a display table."""
        name = model or next(iter(self.by_model))
        return self.by_model[name].table(measure)

    def record(self) -> dict[str, Any]:
        """The ``contrast_detail`` entry of ``metrics.json``: per model its bins, and the stratum's size."""
        size, contrast = self.settings.hard_scale
        return {
            "models": {name: analysis.record() for name, analysis in self.by_model.items()},
            "ceiling": self.settings.ceiling,
            "hard_stratum": {"n_images": self.hard_stratum, "size_factor": size, "contrast_factor": contrast},
            "at_ceiling": self.at_ceiling(),
            "note": self.note,
        }


def predictor(params: ImageRunParams, models: Mapping[str, tuple[Any, str | None]]):
    """A function from a sample table to each model's probabilities (for :func:`contrast_detail_of`).

    Args:
        params: Run parameters (``image_size``, ``channels``, ``batch_size``).
        models: Model name -> (trained model, its input preprocessing name).
    """
    from common.data import pipeline
    from common.training import fit

    def predict(samples: pd.DataFrame) -> dict[str, np.ndarray]:
        found = {}
        for name, (model, preprocess) in models.items():
            dataset = pipeline.make_dataset(
                samples, params.image_size, params.batch_size, preprocess=preprocess, channels=params.channels
            )
            found[name] = fit.predict_proba(model, dataset)
        return found

    return predict


def pointing_of(explanation, n_rows: int, method: str = "gradcam") -> np.ndarray:
    """:func:`pointed_flags` of an explanation step's scored images (its ``method`` CAMs against its masks).

    Args:
        explanation: A :class:`common.explain.driver.Explanation` (positions, CAMs, masks).
        n_rows: Images in the split its positions count in.
        method: The CAM method whose pointing game is read.
    """
    from common.explain.scores import pointing_game

    maps = explanation.cams.get(method)
    if maps is None or len(explanation.positions) == 0:
        return np.full(n_rows, np.nan)
    return pointed_flags(n_rows, explanation.positions, pointing_game(maps, explanation.masks))


def pointed_flags(n_rows: int, positions: Sequence[int], hits: Sequence[bool]) -> np.ndarray:
    """One entry per row of a split: 1.0 where the CAM pointed at the lesion, 0.0 where not, NaN if not scored."""
    flags = np.full(n_rows, np.nan)
    flags[np.asarray(positions, dtype=int)] = np.asarray(hits, dtype=float)
    return flags


def analyse(
    lesions: LesionSet,
    probabilities: Mapping[str, np.ndarray],
    pointed: Mapping[str, np.ndarray] | None = None,
    settings: Settings | None = None,
) -> dict[str, cd.ContrastDetail]:
    """Each model's contrast-detail analysis of the same lesion images.

    Args:
        lesions: The lesion images (:func:`lesion_set`), ``position`` their rows in the split.
        probabilities: Model name -> its probabilities over the whole split (rows as ``position`` counts).
        pointed: Model name -> :func:`pointed_flags` over the whole split; models without one get no
            pointing game.
        settings: The registry's settings; None reads them.
    """
    settings = settings or Settings.from_registry()
    positions = lesions.samples["position"].to_numpy()
    truth = lesions.samples["label_index"].to_numpy()
    found = {}
    for name, probs in probabilities.items():
        detected = np.asarray(probs)[positions].argmax(axis=1) == truth
        flags = None if pointed is None or name not in pointed else np.asarray(pointed[name])[positions]
        found[name] = cd.contrast_detail(
            lesions.properties, detected, flags, n_size_bins=settings.size_bins, n_contrast_bins=settings.contrast_bins
        )
    return found


def combined(first: LesionSet, second: LesionSet, offset: int) -> LesionSet:
    """Two lesion sets as one; ``second``'s positions shifted by ``offset`` (the first split's length)."""
    shifted = second.samples.assign(position=second.samples["position"] + offset)
    properties = pd.concat([first.properties, second.properties.set_axis(shifted["position"].to_numpy())])
    return LesionSet(pd.concat([first.samples, shifted]), properties)


def contrast_detail_of(
    params: ImageRunParams,
    test: pd.DataFrame,
    probabilities: Mapping[str, np.ndarray],
    pointed: Mapping[str, np.ndarray] | None = None,
    predict_hard=None,
    display: np.ndarray | None = None,
) -> Detectability:
    """The run's contrast-detail analysis, with a harder stratum when the test split is at the ceiling.

    Args:
        params: Run parameters.
        test: The test split's sample table (rows in ``probabilities`` order).
        probabilities: Model name -> test probabilities.
        pointed: Model name -> :func:`pointed_flags` of the test split (the explanation step's scored images).
        predict_hard: A function from a sample table to one model's probabilities (a dict by model name),
            used for the harder stratum; None: no stratum can be added (the page says so).
        display: The test images in [0, 1] at ``image_size``, when already read.
    """
    settings = Settings.from_registry()
    lesions = lesion_set(params, test, display, settings)
    by_model = analyse(lesions, probabilities, pointed, settings)
    result = Detectability(by_model, settings)
    if not result.at_ceiling() or params.data_dir:
        return result
    if predict_hard is None:
        return Detectability(by_model, settings, note="At the ceiling, but no harder stratum is scored in this run.")
    # Only the stratum's lesion images are predicted (its lesion-free images have nothing to detect).
    hard_lesions = lesion_set(params, hard_stratum(params, settings), None, settings)
    hard_lesions = LesionSet(
        hard_lesions.samples.assign(position=np.arange(len(hard_lesions))),
        hard_lesions.properties.set_axis(np.arange(len(hard_lesions))),
    )
    hard_probabilities = predict_hard(hard_lesions.samples.reset_index(drop=True))
    both = combined(lesions, hard_lesions, len(test))
    joined = {
        name: np.concatenate([np.asarray(probabilities[name]), np.asarray(hard_probabilities[name])])
        for name in probabilities
    }
    joined_pointed = None
    if pointed:
        joined_pointed = {
            name: np.concatenate([flags, np.full(len(hard_lesions), np.nan)]) for name, flags in pointed.items()
        }
    return Detectability(analyse(both, joined, joined_pointed, settings), settings, hard_stratum=len(hard_lesions))


def volume_detail(
    params,
    samples: pd.DataFrame,
    inputs: np.ndarray,
    masks: np.ndarray,
    probabilities: np.ndarray,
    pointed: np.ndarray | None = None,
    predict_hard=None,
    model_name: str = "CNN3D",
) -> Detectability:
    """The contrast-detail analysis of a volume experiment's out-of-fold predictions (gradcam-3d).

    Sizes are in voxels (the equivalent diameter of a ball), contrasts against a shell of
    ``ring_px`` voxels, both at the model's input shape (``inputs``' first channel).

    Args:
        params: Run parameters (``positive``, ``input_shape``, ``window``, ``sobel``).
        samples: The volume table, in ``inputs`` order.
        inputs: The model inputs (N, H, W, D, C).
        masks: The lesion masks at the input shape (N, H, W, D).
        probabilities: Out-of-fold probabilities (N, C).
        pointed: :func:`pointed_flags` over the volumes, or None.
        predict_hard: A function from a volume table and its inputs to probabilities, for the harder
            stratum when the volumes are at the ceiling; None: no stratum (the page says so).
        model_name: The model's name in the record.
    """
    settings = Settings.from_registry()

    def lesions_of(table: pd.DataFrame, volumes: np.ndarray, lesion_masks: np.ndarray) -> LesionSet:
        chosen = table["label"].isin(lesion_classes(params) or table["label"].unique()).to_numpy()
        chosen = chosen & lesion_masks.reshape(len(lesion_masks), -1).any(axis=1)
        positions = np.flatnonzero(chosen)
        properties = cd.lesion_properties(
            volumes[positions, ..., 0], lesion_masks[positions], ring_px=settings.ring_px, index=positions
        )
        return LesionSet(table.iloc[positions].assign(position=positions), properties)

    lesions = lesions_of(samples, inputs, masks)
    flags = None if pointed is None else {model_name: pointed}
    by_model = analyse(lesions, {model_name: probabilities}, flags, settings)
    result = Detectability(by_model, settings)
    if not result.at_ceiling() or params.data_dir:
        return result
    if predict_hard is None:
        return Detectability(by_model, settings, note="At the ceiling, but no harder stratum is scored in this run.")
    hard, hard_inputs, hard_masks = hard_volumes(params, settings)
    hard_lesions = lesions_of(hard, hard_inputs, hard_masks)
    hard_probabilities = predict_hard(hard_inputs)
    both = combined(lesions, hard_lesions, len(samples))
    joined = {model_name: np.concatenate([probabilities, hard_probabilities])}
    joined_flags = None if pointed is None else {model_name: np.concatenate([pointed, np.full(len(hard), np.nan)])}
    return Detectability(analyse(both, joined, joined_flags, settings), settings, hard_stratum=len(hard_lesions))


def hard_volumes(params, settings: Settings) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The harder stratum of a volume experiment: its lesion class's new volumes, their inputs and masks."""
    from common.data import volume_sets
    from common.experiments import loading

    folder = hard_folder(params, settings)
    label_map = {
        name: label for name, label in loading.label_map_for(params).items() if (folder / "series" / name).is_dir()
    }
    table = volume_sets.load_volume_samples(folder / "series", label_map, mask_root=folder / "masks", min_classes=1)
    table = loading.with_label_index(params, table.assign(stratum=HARD)).reset_index(drop=True)
    inputs = volume_sets.load_volumes(table, params.input_shape, params.window, params.sobel)
    return table, inputs, volume_sets.load_masks(table, params.input_shape)
