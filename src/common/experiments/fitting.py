"""The model steps of the 2D experiments: input pipelines, the transfer model, training and evaluation.

After the data steps (:mod:`common.experiments.loading`) a 2D notebook builds
one ``tf.data`` pipeline per split, builds its model (a backbone with a pooling
head, or a paper's own CNN), trains it with early stopping and scores it on the
test split with 95% confidence intervals (:func:`fit_and_evaluate` does all of
it and returns a :class:`FitResult`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.config.params import BackboneRunParams, ImageRunParams, RunParams
from common.training.runtime import Runtime


def preprocess_name(params: ImageRunParams, backbone: str | None = None) -> str | None:
    """The input preprocessing of a run: the backbone's own ``preprocess_input``.

    Custom CNNs (no backbone) read images scaled to [0, 1], as in seed 003.
    """
    from common import models

    name = backbone or getattr(params, "backbone", None)
    return models.backbone_spec(name).preprocess if name else None


def datasets(
    params: ImageRunParams,
    samples: pd.DataFrame,
    preprocess: str | None,
    image_size: int | None = None,
    channels: int | None = None,
) -> dict:
    """One ``tf.data`` pipeline per split; augmentation on the training split only."""
    from common.data import pipeline

    size = image_size or params.image_size
    channels = channels or params.channels
    return {
        split_name: pipeline.make_dataset(
            part,
            size,
            params.batch_size,
            preprocess=preprocess,
            augment=getattr(params, "augment", None) if split_name == "train" else None,
            training=split_name == "train",
            channels=channels,
            seed=params.seed,
        )
        for split_name, part in samples.groupby("split", sort=False)
    }


def model_inputs(dataset) -> np.ndarray:
    """Concatenate an unshuffled dataset's images: exactly what the model saw."""
    return np.concatenate([images.numpy() for images, _ in dataset], axis=0)


def compile_and_fit(
    params: RunParams,
    model,
    data: dict,
    out_dir: str | Path | None = None,
    class_weight=None,
    epsilon: float = 1e-7,
    learning_rate: float | None = None,
    runtime: Runtime | None = None,
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Compile with Adam and sparse categorical cross-entropy, then fit, keeping the best epoch's weights.

    With a runtime, compiling happens in its strategy's scope and XLA follows its speed-up switch
    (without one: :meth:`Runtime.local`). ``params.run_eagerly``, ``params.recalibrate_bn``,
    ``params.checkpoint_monitor`` and ``params.early_stopping`` (see :func:`common.training.fit.fit`)
    apply when the experiment has them; without the last two, early stopping on the validation loss. Training prints one
    line when it ends (``log``, see :func:`common.training.fit.fit`), none per epoch.

    Returns:
        The training history, one row per epoch (:func:`common.training.fit.fit`).
    """
    from common.training import fit

    (runtime or Runtime.local()).compile(model, learning_rate or params.learning_rate, epsilon=epsilon)
    # Eager steps skip tracing the train, test and predict graphs: cheaper for a one-epoch smoke run.
    model.run_eagerly = bool(getattr(params, "run_eagerly", False))
    return fit.fit(
        model,
        data["train"],
        data["val"],
        params.epochs,
        patience=params.patience,
        class_weight=class_weight,
        out_dir=out_dir,
        recalibrate_bn=getattr(params, "recalibrate_bn", None),
        log=log,
        monitor=checkpoint_monitor(params),
        early_stopping=bool(getattr(params, "early_stopping", True)),
    )


def checkpoint_monitor(params: RunParams) -> str:
    """The validation quantity whose best epoch a run keeps: ``params.checkpoint_monitor``, else ``val_loss``."""
    return str(getattr(params, "checkpoint_monitor", "val_loss"))


def evaluate(params: RunParams, model, dataset, samples: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Predict a split and compute every metric with its 95% CI.

    Whole groups are resampled for the CIs when the split has groups.

    Returns:
        ``(probabilities (N, C), metrics dict)``.
    """
    from common.training import fit

    probabilities = fit.predict_proba(model, dataset)
    groups = samples["group"] if samples["group"].notna().any() else None
    return probabilities, score(params, samples["label_index"].to_numpy(), probabilities, groups)


def score(params: RunParams, labels: np.ndarray, probabilities: np.ndarray, groups=None) -> dict:
    """Every metric of a run's predictions with its 95% CI (the run's classes, positive class, seed, resamples).

    Args:
        params: Run parameters.
        labels: True class indices.
        probabilities: Predicted probabilities (N, C).
        groups: Group per image, resampled whole; None: every image a unit.
    """
    from common.evaluation import classification

    return classification.classification_metrics(
        labels,
        probabilities,
        params.classes,
        positive=params.positive,
        groups=groups,
        seed=params.seed,
        n_resamples=params.n_resamples,
    )


def build_backbone_classifier(
    params: BackboneRunParams,
    runtime: Runtime | None = None,
    backbone: str | None = None,
    image_size: int | None = None,
    name: str | None = None,
):
    """The run's transfer model: backbone, global-average-pooling head with dropout, softmax.

    Built inside the runtime's distribution strategy, so its variables are mirrored. The model is
    named ``name``, else after its backbone.
    """
    from common import models

    architecture = backbone or params.backbone
    size = image_size or params.image_size
    with (runtime or Runtime.local()).scope():
        return models.build_backbone_model(
            architecture,
            (size, size, params.channels),
            len(params.classes),
            head=models.gap_head(params.dropout),
            weights=params.weights,
            trainable_fraction=params.trainable_fraction,
            bn_momentum=params.bn_momentum,
            zero_init_residual=params.zero_init_residual,
            name=name or architecture,
        )


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_and_evaluate` trained and measured.

    Attributes:
        history: One row per epoch (loss, accuracy, their validation values, ...).
        probabilities: Test-split probabilities (N, C), in ``test`` order.
        scores: Test-split metrics with 95% CIs (:func:`evaluate`).
        datasets: The ``tf.data`` pipeline of each split (``"train"``, ``"val"``, ``"test"``).
        test: The test split's sample table, re-indexed from 0.
        class_weight: Class index -> weight used in training, or None (unweighted).
    """

    history: pd.DataFrame
    probabilities: np.ndarray
    scores: dict
    datasets: dict
    test: pd.DataFrame
    class_weight: dict | None


def fit_and_evaluate(
    params: ImageRunParams,
    model,
    samples: pd.DataFrame,
    preprocess: str | None,
    out_dir: str | Path | None = None,
    learning_rate: float | None = None,
    runtime: Runtime | None = None,
) -> FitResult:
    """Train ``model`` on a split sample table and evaluate it on its test split.

    Class weights (balanced) are used when the experiment has ``class_weights`` and it is set.

    Returns:
        The history, test probabilities and scores, datasets, test table and class weights.
    """
    from common.training import fit

    data = datasets(params, samples, preprocess)
    class_weight = (
        fit.class_weights(samples.loc[samples["split"] == "train", "label_index"], len(params.classes))
        if getattr(params, "class_weights", False)
        else None
    )
    history = compile_and_fit(
        params, model, data, out_dir=out_dir, class_weight=class_weight, learning_rate=learning_rate, runtime=runtime
    )
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    probabilities, scores = evaluate(params, model, data["test"], test)
    return FitResult(
        history=history, probabilities=probabilities, scores=scores, datasets=data, test=test, class_weight=class_weight
    )
