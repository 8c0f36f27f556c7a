"""The explanation metrics' names, order and direction, without TensorFlow (the book's pages read them).

Localisation metrics (:mod:`common.explain.scores`) need lesion masks;
faithfulness metrics (:mod:`common.explain.faithfulness`) need only the model.
"""

from __future__ import annotations

LOCALISATION = ("pointing_game", "energy_share", "iou")
"""The localisation metrics (they need lesion masks), in table order."""
FAITHFULNESS = ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence")
"""The faithfulness metrics, in table order."""
RANDOMISATION = ("randomisation_spearman",)
"""The sanity check (Adebayo et al. 2018): each map's absolute rank correlation with the map of the model with its top
layers re-initialised; a map that explains the model changes with it."""
LOWER_IS_BETTER = ("deletion_auc", "average_drop", "randomisation_spearman")
"""The metrics whose best value is the lowest."""
NO_MASKS = "no masks"
"""What a localisation cell says when the images have no lesion masks."""
ALL_TIE = "all tie"
"""A ranking cell where the paired tests separate no method."""
METRIC_NAMES = {
    "pointing_game": "pointing game",
    "energy_share": "energy share",
    "iou": "IoU",
    "deletion_auc": "deletion AUC",
    "insertion_auc": "insertion AUC",
    "average_drop": "average drop",
    "increase_in_confidence": "increase in confidence",
    "randomisation_spearman": "randomisation |Spearman|",
}
"""Each metric as a sentence names it."""


def metric_name(metric: str) -> str:
    """A metric as a sentence names it (:data:`METRIC_NAMES`)."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def column_title(metric: str) -> str:
    """A metric's column title: its name, and which way is better where lower is."""
    return metric_name(metric) + (" (lower is better)" if metric in LOWER_IS_BETTER else "")
