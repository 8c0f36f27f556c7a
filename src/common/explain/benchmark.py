"""Which CAM should I trust? Every method on the same model and images, by localisation and faithfulness.

:func:`benchmark` takes each method's CAMs (:mod:`common.explain.methods`,
the random baseline among them) of the same images at the same layer, and
scores every map image by image:

* localisation, where lesion masks exist (:mod:`common.explain.scores`):
  pointing game, energy share, IoU;
* faithfulness, everywhere (:mod:`common.explain.faithfulness`): deletion and
  insertion AUC, average drop and increase in confidence.

Each metric is summarised with its 95% interval, and every method is tested
against the best method of the metric on the same images
(:func:`common.evaluation.paired.paired_score_comparison`, the test the model
comparisons use), Holm-corrected; a method is "best" together with every
method the test cannot tell from it. :meth:`Benchmark.disagreements` says in
a sentence where the metrics crown different methods.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.errors import DataError
from common.evaluation import tables
from common.evaluation.paired import PairedComparison, paired_score_comparison
from common.explain import faithfulness, scores
from common.explain.driver import Explainer, ExplainSettings, FoldModels, ImageSubset, as_fold_models, owned_cams
from common.explain.faithfulness import Perturbation
from common.explain.layers import last_conv_layer
from common.explain.methods import METHODS

LOCALISATION = ("pointing_game", "energy_share", "iou")
"""The localisation metrics (they need lesion masks), in table order."""
NO_MASKS = "no masks"
"""What a localisation cell says when the images have no lesion masks."""


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
        seconds: Method -> seconds its maps took (not the scoring).
        cams: Method -> the maps (N, H, W[, D]) in [0, 1], for figures.
        seed: Bootstrap seed of the intervals.
        n_resamples: Bootstrap resamples.
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

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics scored, in table order."""
        return (LOCALISATION if self.has_masks else ()) + faithfulness.METRICS

    def estimates(self) -> dict[str, dict[str, Any]]:
        """Method -> metric -> its estimate (mean with 95% interval, and n)."""
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
        found = self.estimates()
        rows = {}
        for method in self.methods:
            row = {metric: NO_MASKS for metric in LOCALISATION if not self.has_masks}
            for metric in self.metrics:
                marker = " ◆" if self.comparison is not None and method in self.best(metric) else ""
                row[metric] = tables.format_estimate(found[method][metric]) + marker
            rows[method] = row
        table = pd.DataFrame.from_dict(rows, orient="index")[list(LOCALISATION) + list(faithfulness.METRICS)]
        table.columns = [_column(metric) for metric in table.columns]
        table.index.name = f"method (n = {len(self.positions)})"
        return table

    def disagreements(self) -> str:
        """A Markdown sentence: where the metrics crown different methods, and where the random baseline stands."""
        if self.comparison is None:
            return "One method: nothing to compare."
        crowned = {metric: self.comparison.references[metric] for metric in self.metrics}
        leaders = sorted(set(crowned.values()), key=list(self.methods).index)
        if len(leaders) == 1:
            sentence = f"Every metric ranks {leaders[0]} first."
        else:
            parts = [
                f"{leader} on {tables.join_words([_column(m) for m, won in crowned.items() if won == leader])}"
                for leader in leaders
            ]
            sentence = f"The metrics disagree: the best is {tables.join_words(parts)}."
        random_ties = [m for m in self.metrics if "random" in self.best(m)]
        if "random" in self.methods:
            if random_ties:
                where = tables.join_words([_column(metric) for metric in random_ties])
                sentence += (
                    f" The random baseline cannot be told from the best on {where}"
                    f" (n = {len(self.positions)}): there, no method shows more than chance."
                )
            else:
                sentence += " The best method beats the random baseline on every metric."
        return sentence

    def record(self) -> dict[str, Any]:
        """The JSON record: layer, n, per method and metric its estimate, the paired tests and the seconds."""
        found = self.estimates()
        return {
            "layer": self.layer,
            "n": len(self.positions),
            "localisation": "scored" if self.has_masks else NO_MASKS,
            "lower_is_better": list(faithfulness.LOWER_IS_BETTER),
            "methods": {
                method: {metric: estimate.to_record() for metric, estimate in found[method].items()}
                for method in self.methods
            },
            "paired_tests": None if self.comparison is None else self.comparison.record(),
            "seconds": dict(self.seconds),
        }


def _column(metric: str) -> str:
    """A metric's column title: ``pointing_game`` -> ``pointing game``."""
    return metric.replace("_", " ")


def benchmark(
    model: Explainer,
    subset: ImageSubset,
    methods: Sequence[str],
    settings: ExplainSettings,
    perturbation: Perturbation = faithfulness.DEFAULT_PERTURBATION,
    alpha: float = 0.05,
    layer: str | None = None,
) -> Benchmark:
    """Every method's maps of the subset at one layer, scored by localisation (with masks) and faithfulness.

    Args:
        model: One model, or :class:`~common.explain.driver.FoldModels` with an owner per image.
        subset: The images; its masks may all be empty (real scans without lesion boxes): then
            only faithfulness is scored.
        methods: Keys of :data:`common.explain.methods.METHODS`, in order (include ``"random"`` for the floor).
        settings: Seed, resamples, IoU fraction and Score-CAM's channel cap.
        perturbation: Steps, batching and blur of the deletion and insertion curves.
        alpha: Significance level of the Holm-adjusted paired tests.
        layer: CAM layer; None: the (first) model's last convolutional layer.

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
    first = model.first() if isinstance(model, FoldModels) else model
    chosen = layer or last_conv_layer(first)
    per_image, seconds, maps_of = {}, {}, {}
    for method in methods:
        started = time.perf_counter()
        maps = owned_cams(model, subset.images, subset.targets, method, chosen, settings.max_channels(method))
        seconds[method] = round(time.perf_counter() - started, 2)
        found: dict[str, np.ndarray] = {}
        if has_masks:
            found["pointing_game"] = scores.pointing_game(maps, subset.masks)
            found["energy_share"] = scores.energy_share(maps, subset.masks)
            found["iou"] = scores.iou(maps, subset.masks, settings.fraction)
        found |= _owned_faithfulness(model, subset, maps, perturbation)
        per_image[method], maps_of[method] = found, maps
    comparison = None
    if len(methods) > 1:
        comparison = paired_score_comparison(
            per_image,
            lower_is_better=faithfulness.LOWER_IS_BETTER,
            seed=settings.seed,
            n_resamples=settings.n_resamples,
            alpha=alpha,
        )
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
    )


def _owned_faithfulness(
    model: Explainer, subset: ImageSubset, maps: np.ndarray, perturbation: Perturbation
) -> dict[str, np.ndarray]:
    """Faithfulness of every image's map on its own model (one model, or each fold's)."""
    assigned = as_fold_models(model, len(subset))
    found = {metric: np.zeros(len(subset), dtype=float) for metric in faithfulness.METRICS}
    found["increase_in_confidence"] = np.zeros(len(subset), dtype=bool)
    for key, owner in assigned.models.items():
        mine = np.flatnonzero(assigned.owners == key)
        if mine.size:
            scored = faithfulness.per_image_faithfulness(
                owner, subset.images[mine], maps[mine], subset.targets[mine], perturbation
            )
            for metric, values in scored.items():
                found[metric][mine] = values
    return found
