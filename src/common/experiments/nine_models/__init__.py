"""Train and evaluate several ImageNet backbones on one split and compare them.

The nine-models experiment (seed 002) fine-tunes nine ``keras.applications``
architectures on the same cancer-vs-pneumonia split. Everything that differs
between them is data (the registry's per-architecture rows), turned into one
model's settings by :func:`~common.experiments.nine_models.settings.model_settings`.

Modules:
    settings: :class:`ModelSettings`, per-model parameters and the settings table.
    runs: building, training, evaluating and timing each model (:class:`ModelRun`).
    tables: the comparison table (best models marked) and the paper's Table 2 beside the run.
    explanations: Grad-CAMs on the same images for every model, at the last,
        listed and chosen layers and over the frozen / trainable layer groups,
        scored through the explanation driver (:class:`ModelExplanations`).
    panels: the heatmap figures (:class:`ShownImages`, :func:`overlay_panels`).

The names the notebook uses are re-exported here, so
``from common.experiments import nine_models`` followed by
``nine_models.train_and_evaluate(...)`` reads as one step of the experiment.
"""

from common.experiments.nine_models.explanations import (
    EXPLANATION_SCORES,
    ModelExplanations,
    correct_by_all,
    explain_models,
    explanation_table,
    layer_groups,
)
from common.experiments.nine_models.panels import ShownImages, overlay_panels
from common.experiments.nine_models.runs import (
    MIN_TIMED_IMAGES,
    ModelRun,
    build_model,
    free_memory,
    head_spec,
    inference_images_per_second,
    model_records,
    train_and_evaluate,
    train_one,
)
from common.experiments.nine_models.settings import (
    AUTHORS_SCALING,
    KERAS_ADAM_EPSILON,
    KERAS_SCALING,
    ModelSettings,
    check_model_names,
    epoch_kept,
    largest_input_size,
    model_parameters,
    model_settings,
    settings_table,
)
from common.experiments.nine_models.tables import (
    BEST_MARK,
    COST_COLUMNS,
    TABLE_METRICS,
    best_models,
    comparison_table,
    paper_comparison_table,
)

__all__ = [
    "AUTHORS_SCALING",
    "BEST_MARK",
    "COST_COLUMNS",
    "EXPLANATION_SCORES",
    "KERAS_ADAM_EPSILON",
    "KERAS_SCALING",
    "MIN_TIMED_IMAGES",
    "ModelExplanations",
    "ModelRun",
    "ModelSettings",
    "ShownImages",
    "TABLE_METRICS",
    "best_models",
    "build_model",
    "check_model_names",
    "comparison_table",
    "correct_by_all",
    "epoch_kept",
    "explain_models",
    "explanation_table",
    "free_memory",
    "head_spec",
    "inference_images_per_second",
    "largest_input_size",
    "layer_groups",
    "model_parameters",
    "model_records",
    "model_settings",
    "overlay_panels",
    "paper_comparison_table",
    "settings_table",
    "train_and_evaluate",
    "train_one",
]
