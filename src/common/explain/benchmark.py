"""Which CAM should I trust? Every method on the same model and images, by localisation and faithfulness.

:func:`benchmark` takes each method's CAMs (:mod:`common.explain.methods`,
the random baseline among them) of the same images at the same layer, and
scores every map image by image:

* localisation, where lesion masks exist (:mod:`common.explain.scores`):
  pointing game, energy share, IoU;
* faithfulness, everywhere (:mod:`common.explain.faithfulness`): deletion and
  insertion AUC, average drop and increase in confidence.

The six gradient methods take their maps from one shared forward and
backward pass per batch (:func:`common.explain.driver.owned_gradient_cams`);
Score-CAM and the random map are computed on their own. With a sanity check
the same maps are taken once more from a copy of the model whose top layers
are re-initialised (:func:`common.explain.scores.randomised_copy`).

Each metric is summarised with its 95% interval, and every method is tested
against the best method of the metric on the same images
(:func:`common.evaluation.paired.paired_score_comparison`, the test the model
comparisons use), Holm-corrected; a method is "best" together with every
method the test cannot tell from it. :meth:`Benchmark.disagreements` says in
a sentence where the metrics crown different methods. :func:`pooled` tests
several models' benchmarks together, each image with its own model's maps
(the nine-models comparison: a few images per model, some thirty in all).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation import tables
from common.evaluation.paired import PairedComparison, paired_score_comparison
from common.explain import faithfulness, scores
from common.explain.driver import (
    Explainer,
    ExplainSettings,
    FoldModels,
    ImageSubset,
    as_fold_models,
    owned_cams,
    owned_gradient_cams,
    owned_rows,
)
from common.explain.faithfulness import Perturbation
from common.explain.layers import last_conv_layer
from common.explain.methods import GRADIENT_METHODS, METHODS
from common.explain.metric_names import (
    FAITHFULNESS,
    LOCALISATION,
    LOWER_IS_BETTER,
    NO_MASKS,
    RANDOMISATION,
    column_title,
    metric_name,
)

GRADIENT_PASS = "gradient methods, one pass"
"""The key of the shared pass of the gradient methods in :attr:`Benchmark.seconds`."""
WHOLE = "whole benchmark"
"""The key of the benchmark's own wall time in :attr:`Benchmark.seconds`: maps, sanity check, curves and tests."""


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class Benchmark:
    """Every method's maps of the same images at one layer, scored and compared.

    Attributes:
        methods: The methods, in the order given (the random baseline among them).
        layer: The layer every map was taken at.
        positions: The scored images' positions in the caller's sample table.
        has_masks: Whether localisation was scored (the images have lesion masks).
        per_image: Method -> metric -> (N,) scores.
        comparison: Every method against the best per metric (None for a single method).
        seconds: Method -> seconds its maps took (not the scoring); the gradient methods' shared pass under
            :data:`GRADIENT_PASS`, and everything the benchmark did under :data:`WHOLE`.
        cams: Method -> the maps (N, H, W[, D]) in [0, 1], for figures.
        seed: Bootstrap seed of the intervals.
        n_resamples: Bootstrap resamples.
        masks: The images' lesion masks (all empty without masks), or None.
    """

    methods: tuple[str, ...]
    layer: str
    positions: np.ndarray
    has_masks: bool
    per_image: Mapping[str, Mapping[str, np.ndarray]]
    comparison: PairedComparison | None
    seconds: Mapping[str, float]
    cams: Mapping[str, np.ndarray]
    seed: int = 0
    n_resamples: int = 1000
    masks: np.ndarray | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics scored, in table order."""
        scored = next(iter(self.per_image.values()), {})
        return tuple(metric for metric in (*LOCALISATION, *FAITHFULNESS, *RANDOMISATION) if metric in scored)

    @functools.cached_property
    def estimates(self) -> dict[str, dict[str, Any]]:
        """Method -> metric -> its estimate (mean with 95% interval, and n), bootstrapped once."""
        return {
            method: {
                metric: faithfulness.summarise(values, self.seed, self.n_resamples)
                for metric, values in self.per_image[method].items()
            }
            for method in self.methods
        }

    def best(self, metric: str) -> list[str]:
        """The best method of ``metric`` and every method tied with it."""
        return list(self.methods) if self.comparison is None else self.comparison.best(metric)

    def table(self) -> pd.DataFrame:
        """Methods x metrics: each mean with its interval, ``◆`` on the best and its ties; n in the header.

        Localisation columns say :data:`NO_MASKS` when the images have none.
        """
        found = self.estimates
        rows = {}
        for method in self.methods:
            row = {metric: NO_MASKS for metric in LOCALISATION if not self.has_masks}
            for metric in self.metrics:
                marker = " ◆" if self.comparison is not None and method in self.best(metric) else ""
                row[metric] = tables.format_estimate(found[method][metric]) + marker
            rows[method] = row
        columns = [*LOCALISATION, *(metric for metric in self.metrics if metric not in LOCALISATION)]
        table = pd.DataFrame.from_dict(rows, orient="index")[columns]
        table.columns = [column_title(metric) for metric in table.columns]
        table.index.name = f"method (n = {len(self.positions)})"
        return table

    def disagreements(self) -> str:
        """A Markdown sentence: which metrics separate the methods, whether they agree, where the random map stands.

        A metric separates the methods when the paired test finds at least one
        method worse than its best; the others crown nobody.
        """
        if self.comparison is None:
            return "One method: nothing to compare."
        n = len(self.positions)
        separating = [metric for metric in self.metrics if self.comparison.worse(metric)]
        if not separating:
            return (
                f"On these {n} images no metric tells the methods apart: every method, the random map included, "
                "ties with the best of every metric. More images (`benchmark_images`) would be needed to rank them."
            )
        best_sets = {metric: set(self.best(metric)) for metric in separating}
        common = [method for method in self.methods if all(method in best for best in best_sets.values())]
        named = tables.join_words([metric_name(metric) for metric in separating])
        if common:
            verb = "is" if len(common) == 1 else "are"
            sentence = f"{_methods(common)} {verb} among the best on every metric that separates the methods"
            sentence += f" ({named})."
        else:
            parts = [f"{metric_name(metric)}: {_methods(self.best(metric))}" for metric in separating]
            sentence = f"The metrics disagree on the best method ({'; '.join(parts)})."
        if "random" in self.methods:
            chance = [metric for metric in separating if "random" in best_sets[metric]]
            if chance:
                where = tables.join_words([metric_name(metric) for metric in chance])
                sentence += (
                    f" On {where} the random map is the best or ties with it: there, no method shows more than chance."
                )
            else:
                sentence += " On each of these the best methods beat the random map."
        unseparated = [metric for metric in self.metrics if metric not in separating]
        if unseparated:
            tied = tables.join_words([metric_name(metric) for metric in unseparated])
            sentence += f" {tied[:1].upper()}{tied[1:]}: every method ties (n = {n})."
        return sentence

    def record(self) -> dict[str, Any]:
        """The JSON record: layer, n, the sentence, per metric the best methods, per method and metric its
        estimate, the paired tests and the seconds."""
        found = self.estimates
        return {
            "layer": self.layer,
            "n": len(self.positions),
            "localisation": "scored" if self.has_masks else NO_MASKS,
            "lower_is_better": list(LOWER_IS_BETTER),
            "summary": self.disagreements(),
            "best": {metric: self.best(metric) for metric in self.metrics},
            "separating": [metric for metric in self.metrics if self.comparison and self.comparison.worse(metric)],
            "methods": {
                method: {metric: estimate.to_record() for metric, estimate in found[method].items()}
                for method in self.methods
            },
            "paired_tests": None if self.comparison is None else self.comparison.record(),
            "seconds": dict(self.seconds),
        }


def _methods(names: Sequence[str]) -> str:
    """Method names in a sentence, each in backticks (code in Markdown)."""
    return tables.join_words([f"`{name}`" for name in names])


def benchmark(
    model: Explainer,
    subset: ImageSubset,
    methods: Sequence[str],
    settings: ExplainSettings,
    perturbation: Perturbation = faithfulness.DEFAULT_PERTURBATION,
    alpha: float = 0.05,
    layer: str | None = None,
    randomisation_layers: int | None = 0,
) -> Benchmark:
    """Every method's maps of the subset at one layer, scored by localisation (with masks) and faithfulness.

    With ``randomisation_layers`` (a number, or None for every layer), each
    method is also scored by the sanity check of Adebayo et al. (2018) in one
    step: each image's map is rank-correlated (absolute Spearman) with its map by a copy of
    the model whose top ``randomisation_layers`` weighted layers are
    re-initialised (:func:`common.explain.scores.randomised_copy`); lower is
    better, and the random map, which ignores the model, scores 1.

    Args:
        model: One model, or :class:`~common.explain.driver.FoldModels` with an owner per image.
        subset: The images; its masks may all be empty (real scans without lesion boxes): then
            only faithfulness is scored.
        methods: Keys of :data:`common.explain.methods.METHODS`, in order (include ``"random"`` for the floor).
        settings: Seed, resamples, IoU fraction and Score-CAM's channel cap.
        perturbation: Steps, batching and blur of the deletion and insertion curves.
        alpha: Significance level of the Holm-adjusted paired tests.
        layer: CAM layer; None: the (first) model's last convolutional layer.
        randomisation_layers: Layers re-initialised for the sanity check; 0: no check.

    Returns:
        The :class:`Benchmark`.

    Raises:
        DataError: No images, or some but not all of them with a lesion mask.
    """
    if len(subset) == 0:
        raise DataError("no images to benchmark the CAM methods on")
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise DataError(f"unknown CAM method(s) {unknown}; choose from {list(METHODS)}")
    with_lesion = subset.masks.reshape(len(subset), -1).any(axis=1)
    if with_lesion.any() and not with_lesion.all():
        raise DataError(
            f"{int((~with_lesion).sum())} of {len(subset)} images have an empty mask: benchmark lesion images only, "
            "or none with masks"
        )
    has_masks = bool(with_lesion.all())
    started = time.perf_counter()
    first = model.first() if isinstance(model, FoldModels) else model
    chosen = layer or last_conv_layer(first)
    randomised = None
    if randomisation_layers != 0:
        owned = as_fold_models(model, len(subset))
        reinitialised = {
            key: scores.randomised_copy(owner, randomisation_layers, settings.seed)
            for key, owner in owned.models.items()
        }
        randomised = FoldModels(reinitialised, owned.owners)
    per_image: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    maps_of = _maps_of_every_method(model, subset, methods, chosen, settings, seconds)
    changed_maps = (
        {} if randomised is None else _maps_of_every_method(randomised, subset, methods, chosen, settings, {})
    )
    faithful = _owned_faithfulness(model, subset, maps_of, perturbation)
    for method in methods:
        maps = maps_of[method]
        found: dict[str, np.ndarray] = {}
        if has_masks:
            found["pointing_game"] = scores.pointing_game(maps, subset.masks)
            found["energy_share"] = scores.energy_share(maps, subset.masks)
            found["iou"] = scores.iou(maps, subset.masks, settings.fraction)
        found |= faithful[method]
        if randomised is not None:
            # Anti-correlated maps have changed with the model too: the size of the correlation counts.
            found["randomisation_spearman"] = np.abs(scores.spearman_per_image(maps, changed_maps[method]))
        per_image[method] = found
    comparison = None
    if len(methods) > 1:
        comparison = paired_score_comparison(
            per_image,
            lower_is_better=LOWER_IS_BETTER,
            seed=settings.seed,
            n_resamples=settings.n_resamples,
            alpha=alpha,
        )
    seconds[WHOLE] = round(time.perf_counter() - started, 2)
    return Benchmark(
        tuple(methods),
        chosen,
        subset.positions,
        has_masks,
        per_image,
        comparison,
        seconds,
        maps_of,
        settings.seed,
        settings.n_resamples,
        subset.masks,
    )


POOLED_LAYER = "each model's own"
"""The :attr:`Benchmark.layer` of a :func:`pooled` benchmark."""


def pooled(benchmarks: Mapping[str, Benchmark], alpha: float = 0.05) -> Benchmark:
    """Several models' benchmarks as one: every image scored with its own model's maps, tested together.

    A method is then ranked over all the models' images at once (each image
    paired with itself across methods, as within one benchmark), so models
    with a few images each add up to a test that can separate methods; it
    answers "which method is best on these models", not on any one of them.

    Args:
        benchmarks: Model -> its benchmark; the same methods, and masks in all or in none.
        alpha: Significance level of the Holm-adjusted paired tests.

    Returns:
        A :class:`Benchmark` at layer :data:`POOLED_LAYER`, its positions ``0..n-1`` in model order, without
        maps (images of different sizes), its seconds the sum of the models'.

    Raises:
        DataError: No benchmarks, or benchmarks of different methods or with and without masks.
    """
    if not benchmarks:
        raise DataError("no benchmarks to pool")
    first = next(iter(benchmarks.values()))
    if any(b.methods != first.methods or b.has_masks != first.has_masks for b in benchmarks.values()):
        raise DataError("pooled benchmarks need the same methods, and lesion masks in all of them or in none")
    per_image = {
        method: {
            metric: np.concatenate([b.per_image[method][metric] for b in benchmarks.values()])
            for metric in first.per_image[method]
        }
        for method in first.methods
    }
    seconds: dict[str, float] = {}
    for b in benchmarks.values():
        for key, value in b.seconds.items():
            seconds[key] = round(seconds.get(key, 0.0) + value, 2)
    n = sum(len(b.positions) for b in benchmarks.values())
    comparison = None
    if len(first.methods) > 1:
        comparison = paired_score_comparison(
            per_image, lower_is_better=LOWER_IS_BETTER, seed=first.seed, n_resamples=first.n_resamples, alpha=alpha
        )
    return Benchmark(
        first.methods,
        POOLED_LAYER,
        np.arange(n),
        first.has_masks,
        per_image,
        comparison,
        seconds,
        {},
        first.seed,
        first.n_resamples,
    )


def _maps_of_every_method(
    model: Explainer,
    subset: ImageSubset,
    methods: Sequence[str],
    layer: str,
    settings: ExplainSettings,
    seconds: dict[str, float],
) -> dict[str, np.ndarray]:
    """Every method's maps of the subset: the gradient methods from one shared pass, the others one by one.

    Records the seconds in ``seconds``, the shared pass under :data:`GRADIENT_PASS`.
    """
    shared = [method for method in methods if method in GRADIENT_METHODS]
    maps: dict[str, np.ndarray] = {}
    if shared:
        started = time.perf_counter()
        maps |= owned_gradient_cams(model, subset.images, subset.targets, shared, layer)
        seconds[GRADIENT_PASS] = round(time.perf_counter() - started, 2)
    for method in methods:
        if method not in maps:
            started = time.perf_counter()
            maps[method] = owned_cams(
                model, subset.images, subset.targets, method, layer, settings.max_channels(method)
            )
            seconds[method] = round(time.perf_counter() - started, 2)
    return maps


def _owned_faithfulness(
    model: Explainer, subset: ImageSubset, maps_of: Mapping[str, np.ndarray], perturbation: Perturbation
) -> dict[str, dict[str, np.ndarray]]:
    """Faithfulness of every method's maps, each image on its own model (one model, or each fold's)."""
    found = {method: {metric: np.zeros(len(subset), dtype=float) for metric in FAITHFULNESS} for method in maps_of}
    for method in maps_of:
        found[method]["increase_in_confidence"] = np.zeros(len(subset), dtype=bool)
    for owner, mine in owned_rows(model, len(subset)):
        mine_maps = {method: maps[mine] for method, maps in maps_of.items()}
        scored = faithfulness.faithfulness_of_maps(
            owner, subset.images[mine], mine_maps, subset.targets[mine], perturbation
        )
        for method, by_metric in scored.items():
            for metric, values in by_metric.items():
                found[method][metric][mine] = values
    return found
