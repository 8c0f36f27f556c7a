"""The comparison's Grad-CAMs: shown on the same images for every model, and scored against lesion masks.

Scoring goes through the one explanation driver (:mod:`common.explain.driver`,
by way of :func:`common.experiments.explaining.explain_test_split`);
:class:`ModelExplanations` holds what the notebook shows and records, per
model: the heatmaps on the shown images at the last layer, the finer layer
chosen on validation and the listed layers and layer groups (the paper's
Fig. 3, Fig. 4 and Fig. S3), and the driver's scores and layer choices.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from common import models
from common.config.params import NineModelsParams
from common.errors import ParameterError
from common.evaluation import tables
from common.evaluation.estimate import Estimate
from common.experiments.nine_models.runs import ModelRun
from common.experiments.nine_models.settings import ModelSettings, model_parameters
from common.explain.benchmark import Benchmark
from common.explain.driver import LOCALISATION_METRICS, ExplanationSet
from common.explain.metric_names import ALL_TIE, column_title

# The scores of every explanation, in table order (the driver's).
EXPLANATION_SCORES = LOCALISATION_METRICS


def _alpha() -> float:
    """The significance level of every paired test (the registry's ``statistics.alpha``)."""
    from common.config import registry

    return float(registry.section("statistics")["alpha"])


def layer_groups(model: keras.Model, settings: ModelSettings, max_layers: int | None = None) -> dict[str, list[str]]:
    """The backbone's convolution layers split as the paper froze them.

    The split point is the paper's trainable-last-layers count, also when this
    run trained every layer (random initial weights): "frozen" are the
    convolutions the paper kept at their ImageNet weights, "trainable" those
    it fine-tuned.

    Args:
        model: A :func:`common.experiments.nine_models.runs.build_model` model.
        settings: Its settings.
        max_layers: Keep at most this many layers per group, evenly spaced
            through the group (first and last kept); None keeps all.

    Returns:
        ``{"frozen": [layer names], "trainable": [layer names]}``, in model order.

    Raises:
        ParameterError: ``max_layers`` below 1.
    """
    from common.explain.layers import CONV_LAYER_TYPES

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


def explanation_table(scores: Mapping[str, Mapping[str, Mapping]]) -> pd.DataFrame:
    """The explanation scores as a table: one row per (model, method), ``"value (lo–hi), n = n"`` cells.

    Args:
        scores: Model (or ``"<model> at <layer>"``) -> method -> score records
            (:attr:`ModelExplanations.scores`).

    Returns:
        Rows (model, method); columns :data:`EXPLANATION_SCORES`; a score
        without any image reads ``"no image (n = 0)"``.
    """

    def cell(entry: Mapping) -> str:
        if not entry["n"]:
            return "no image (n = 0)"
        return tables.format_estimate(entry, with_n=True)

    return pd.DataFrame(
        {
            (name, method): {key: cell(entry) for key, entry in by_score.items() if key in EXPLANATION_SCORES}
            for name, by_method in scores.items()
            for method, by_score in by_method.items()
        }
    ).T


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
            (:meth:`common.explain.driver.LayerSelection.record` plus
            ``candidates`` and their ``grids``); models whose test split had
            no image to score are absent.
        pointed: Model -> per test image, whether its last-layer Grad-CAM pointed at the lesion
            (:func:`common.experiments.detectability.pointed_flags`; NaN where not scored).
        benchmarks: Model -> its CAM benchmark (:mod:`common.explain.benchmark`); models without an image
            to benchmark are absent.
    """

    positions: np.ndarray
    last_layer: dict[str, str] = dataclasses.field(default_factory=dict)
    last_layer_cams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    chosen_layer_cams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    layer_cams: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    layer_records: dict[str, dict] = dataclasses.field(default_factory=dict)
    scores: dict[str, dict] = dataclasses.field(default_factory=dict)
    selections: dict[str, dict] = dataclasses.field(default_factory=dict)
    pointed: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    benchmarks: dict[str, Benchmark] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def pooled_benchmark(self) -> Benchmark | None:
        """The models' benchmarks pooled (:func:`common.explain.benchmark.pooled`), or None without any."""
        from common.explain import benchmark

        if not self.benchmarks:
            return None
        return benchmark.pooled(self.benchmarks, alpha=_alpha())

    def separating_models(self) -> list[str]:
        """The models whose own benchmark separates the methods on at least one metric."""
        return [
            name
            for name, found in self.benchmarks.items()
            if found.comparison is not None and any(found.comparison.worse(metric) for metric in found.metrics)
        ]

    def benchmark_note(self) -> str:
        """A Markdown sentence on the models' own benchmarks: which separate methods, or why none can.

        An exact paired test on n images (both tests here: the sign-flip permutation test and McNemar's)
        cannot give a two-sided p-value below 2 / 2^n, so with few images per model no model alone can
        reach the registry's ``statistics.alpha``.
        """
        alpha = _alpha()
        if not self.benchmarks:
            return "No model had an image to benchmark."
        most = max(len(found.positions) for found in self.benchmarks.values())
        separating = self.separating_models()
        if separating:
            return f"On its own images, {tables.join_words(separating)} separates the methods on at least one metric."
        floor = 2 / 2**most
        if floor >= alpha:
            return (
                f"No model's own benchmark can separate two methods: with at most {most} images per model, an exact "
                f"paired test cannot give a p-value below 2/2^{most} = {floor:.3f}, above the level of {alpha}. Each "
                "model's scores are recorded in `metrics.json` (`cam_benchmark.models`); the pooled table ranks them."
            )
        return f"No model's own benchmark separates the methods on any metric (at most {most} images per model)."

    def benchmark_table(self) -> pd.DataFrame:
        """Per model (rows) and metric: the best method and those tied with it, or "all tie"; n per model."""
        rows = {}
        for name, found in self.benchmarks.items():
            separating = found.comparison.worse if found.comparison else (lambda metric: [])
            rows[f"{name} (n = {len(found.positions)})"] = {
                column_title(metric): tables.join_words(found.best(metric)) if separating(metric) else ALL_TIE
                for metric in found.metrics
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def benchmark_panels(
        self, test: pd.DataFrame, size: int, with_masks: bool
    ) -> tuple[list[np.ndarray], list[str], list[np.ndarray | None]]:
        """One row per model: its first benchmarked test image, then that image's map under every method.

        Args:
            test: The test sample table (the benchmarks' positions index it).
            size: Display side in pixels.
            with_masks: Outline the lesion on every panel (the data set has masks).

        Returns:
            ``(panels, titles, outlines)`` for :func:`common.report.figures.image_grid`.
        """
        from common.experiments.nine_models.panels import ShownImages
        from common.explain import overlays

        panels, titles, outlines = [], [], []
        for name, found in self.benchmarks.items():
            shown = ShownImages.load(test, found.positions[:1], size, with_masks)
            image, outline = shown.images[0], None if shown.masks is None else shown.masks[0]
            panels.append(image)
            titles.append(f"{name} ({found.layer})")
            for method in found.methods:
                panels.append(overlays.overlay(image, found.cams[method][0]))
                titles.append(method)
            outlines += [outline] * (1 + len(found.methods))
        return panels, titles, outlines

    def benchmark_record(self) -> dict | None:
        """The pooled benchmark's record with every model's own under ``"models"``; None without a benchmark."""
        pooled = self.pooled_benchmark
        if pooled is None:
            return None
        return {**pooled.record(), "models": {name: found.record() for name, found in self.benchmarks.items()}}

    def chosen_labels(self) -> dict[str, str]:
        """Row label ``"<model> at <chosen layer>"`` -> model, for the models with chosen-layer heatmaps."""
        return {f"{name} at {self.selections[name]['chosen']}": name for name in self.chosen_layer_cams}

    def chosen_rows(self) -> dict[str, np.ndarray]:
        """Row label ``"<model> at <chosen layer>"`` -> the Grad-CAMs at that layer on the shown images."""
        return {label: self.chosen_layer_cams[name] for label, name in self.chosen_labels().items()}

    def selection_table(self) -> pd.DataFrame:
        """Per model: its last layer, the finer layer chosen on validation, and Grad-CAM's test scores at both."""
        rows = {}
        for name, selection in self.selections.items():
            chosen = selection["chosen"]
            grids = {layer: " x ".join(map(str, grid)) for layer, grid in selection["grids"].items()}
            row = {
                "last layer": f"{self.last_layer[name]} ({grids[self.last_layer[name]]})",
                "chosen on validation": f"{chosen} ({grids[chosen]})" if chosen else "none (no lesion image)",
                "validation images": selection["n"],
            }
            for label, key in (("last", name), ("chosen", f"{name} at {chosen}")):
                scores = self.scores.get(key, {}).get("gradcam")
                for metric in ("pointing_game", "energy_share"):
                    row[f"{metric}, {label}"] = (
                        f"{scores[metric]['value']:.2f} (n = {scores[metric]['n']})"
                        if scores and scores[metric]["n"]
                        else ""
                    )
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def add_scores(
        self,
        name: str,
        scored: ExplanationSet | None,
        methods: Sequence[str],
        candidates: Sequence[str],
        n_test: int,
    ) -> str | None:
        """Record one model's driver results: its scores (undefined without an image) and its layer choice.

        Args:
            name: The model.
            scored: The driver's explanations of its test split, None when no image was scored.
            methods: The run's CAM methods (each gets an entry).
            candidates: The finer layers the choice was made among.
            n_test: Images in the test split (the length of the model's ``pointed`` flags).

        Returns:
            The layer chosen on validation, or None.
        """
        found = scored.last.scores if scored else {}
        if scored:
            from common.experiments import detectability

            self.pointed[name] = detectability.pointing_of(scored.last, n_test)
        self.scores[name] = {
            method: found.get(method) or {key: Estimate.undefined(n=0).to_record() for key in EXPLANATION_SCORES}
            for method in methods
        }
        if not (scored and scored.selection):
            return None
        chosen = scored.selection.chosen
        if scored.chosen:
            self.scores[f"{name} at {chosen}"] = scored.chosen.scores
        self.selections[name] = {
            **scored.selection.record(),
            "candidates": list(candidates),
            "grids": {layer: list(grid) for layer, grid in scored.layer_shapes.items()},
        }
        return chosen


def _score_model(
    params: NineModelsParams,
    name: str,
    run: ModelRun,
    model: keras.Model,
    samples: pd.DataFrame,
    last: str,
    target_class: str,
) -> tuple[ExplanationSet | None, list[str]]:
    """The driver's scores of one model's test split at ``last``, and at the finer layer chosen on validation.

    Returns:
        ``(explanations or None, candidate layers)``.
    """
    from common.experiments import explaining, fitting
    from common.explain.layers import finer_layers

    candidates = finer_layers(model, params.cam_finest_stride) if params.cam_finest_stride else []
    # The validation split, made as this model saw it, to choose the finer layer on.
    data = (
        fitting.datasets(
            model_parameters(params, name), samples, run.settings.preprocess, image_size=run.settings.input_size
        )
        if candidates
        else {}
    )
    scored = explaining.explain_test_split(
        params,
        model,
        data,
        samples,
        run.test_inputs,
        run.probabilities,
        last,
        [target_class],
        candidates,
        run.val_probabilities,
    )
    return scored, candidates


def _gradcams(model: keras.Model, images: np.ndarray, target: int, layers: Iterable[str]) -> dict[str, np.ndarray]:
    """Grad-CAMs of class ``target`` at every layer (a layer listed twice is computed once), one pass per batch."""
    from common.explain.cams import CamExplainer

    # The explainer's logit view holds the model's layers: it goes when this returns.
    return CamExplainer(model, "gradcam").cams_at_layers(images, target, list(layers))


def _add_shown_cams(
    out: ModelExplanations,
    params: NineModelsParams,
    name: str,
    run: ModelRun,
    model: keras.Model,
    target: int,
    last: str,
    chosen: str | None,
) -> None:
    """Every heatmap of one model on the shown images: last layer, chosen layer, listed layers and group means."""
    from common.explain.cams import mean_cam

    by_layers = name in params.cam_layers
    listed = params.cam_layers[name] if by_layers else []
    groups = layer_groups(model, run.settings, params.group_cam_max_layers) if by_layers else {}
    # Every layer shown or averaged on the shown images, from one pass per batch
    # (the last layer is often among the listed ones).
    grouped = [layer for layers in groups.values() for layer in layers]
    by_layer = _gradcams(
        model, run.test_inputs[out.positions], target, [last, *([chosen] if chosen else []), *listed, *grouped]
    )
    out.last_layer[name], out.last_layer_cams[name] = last, by_layer[last]
    if chosen:
        out.chosen_layer_cams[name] = by_layer[chosen]
    if by_layers:
        rows = {layer: by_layer[layer] for layer in listed}
        for group, layers in groups.items():
            rows[f"mean of {len(layers)} {group} conv layers"] = mean_cam(by_layer[layer] for layer in layers)
        out.layer_cams[name] = rows
        out.layer_records[name] = {"layers": listed, "groups": groups}


def _benchmark(
    params: NineModelsParams,
    run: ModelRun,
    model: keras.Model,
    samples: pd.DataFrame,
    scored: ExplanationSet | None,
    has_masks: bool,
    last: str,
) -> Benchmark | None:
    """One model's CAM benchmark (:func:`common.experiments.explaining.benchmark_subset`'s images and layer).

    Without masks the layer is the first of the model's finer layers (the
    methods agree at the last one), or the last when the run scores no finer layer.
    """
    from common.experiments import explaining
    from common.explain.layers import finer_layers

    if not params.benchmark_methods:
        return None
    finer = finer_layers(model, params.cam_finest_stride) if params.cam_finest_stride and not has_masks else []
    labels = samples.loc[samples["split"] == "test", "label_index"].to_numpy()
    found = explaining.benchmark_subset(
        params, run.test_inputs, labels, run.probabilities, has_masks, scored, finer[0] if finer else last
    )
    return None if found is None else explaining.run_benchmark(params, model, *found)


def explain_models(
    params: NineModelsParams,
    runs: Mapping[str, ModelRun],
    samples: pd.DataFrame,
    positions: np.ndarray,
    target_class: str,
    score: bool = True,
) -> ModelExplanations:
    """Every CAM the comparison shows or scores, with each model loaded once.

    Per model (read back from its weights when released, then freed again):
    Grad-CAM of ``target_class`` at the last convolutional layer on the shown
    images; for the models of ``params.cam_layers``, Grad-CAM at each listed
    layer and averaged over the frozen and the trainable convolutions
    (:func:`layer_groups`, at most ``params.group_cam_max_layers`` each);
    and, with ``score``, every method of ``params.cam_methods`` scored by the
    explanation driver against the lesion masks on the model's own correctly
    classified test images of ``target_class`` (up to ``params.n_explain``).
    With ``params.cam_finest_stride``, Grad-CAM is also scored, on the same
    test images, at one finer layer: the one of
    :func:`common.explain.layers.finer_layers` that localised best on the
    validation split (:func:`common.explain.driver.select_layer`), and its
    heatmaps are made on the shown images too. A model with no test image to
    score gets undefined scores (value and CI NaN, ``n`` 0), so every model has an entry.

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
    from common.explain.layers import last_conv_layer

    target = list(params.classes).index(target_class)
    out = ModelExplanations(positions=np.asarray(positions))
    for name, run in runs.items():
        with run.loaded() as model:
            last = last_conv_layer(model)
            chosen = None
            scored = None
            if score:
                scored, candidates = _score_model(params, name, run, model, samples, last, target_class)
                chosen = out.add_scores(name, scored, params.cam_methods, candidates, len(run.probabilities))
            _add_shown_cams(out, params, name, run, model, target, last, chosen)
            found = _benchmark(params, run, model, samples, scored, score, last)
            if found is not None:
                out.benchmarks[name] = found
    return out
