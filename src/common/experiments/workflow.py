"""The steps every 2D experiment notebook shares, each a call with the run's parameters.

A notebook reads as: load the samples (phantoms or a real folder), split them,
build datasets, build and train a model, evaluate it, explain it. Each step
here takes the run's typed parameters (:func:`common.config.registry.resolve`) so the
notebooks hold no logic of their own and no experiment repeats another's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.data import folders, phantoms, splits
from common.config import registry
from common.config.params import BackboneRunParams, ImageRunParams, RunParams
from common.errors import DataError, ParameterError
from common.report.results import project_root
from common.training.runtime import Runtime

# Which of a phantom generator's keyword arguments come from which parameter.
PHANTOM_KWARGS = {
    "chest": {"n_per_class": "n_per_class", "size": "phantom_size", "classes": "phantom_classes"},
    "multi_organ": {"n_per_class": "n_per_class", "size": "phantom_size"},
    "chest_volumes": {"n_per_class": "n_per_class", "shape": "volume_shape", "classes": "phantom_classes"},
}
# Phantoms are data, not training: their seed is fixed so every run sees the same images.
PHANTOM_SEED = 0


def phantom_root() -> Path:
    """Folder that holds every generated phantom set (git-ignored ``data/phantoms``)."""
    return project_root() / "data" / "phantoms"


def phantom_folder(params: RunParams, root: str | Path | None = None) -> Path:
    """Generate (once) and return the phantom set an experiment's parameters ask for."""
    kind = params.phantom_kind
    kwargs = {arg: getattr(params, name) for arg, name in PHANTOM_KWARGS[kind].items()}
    for arg, value in kwargs.items():
        if isinstance(value, list):
            kwargs[arg] = tuple(value)
    return phantoms.ensure_phantoms(kind, root or phantom_root(), seed=PHANTOM_SEED, **kwargs)


def prepare_phantoms(profile: str, kind: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Generate the phantom sets every experiment needs in ``profile`` (or one kind)."""
    folders: list[Path] = []
    for experiment_id in registry.experiment_ids():
        params = registry.resolve(experiment_id, profile)
        if kind is None or params.phantom_kind == kind:
            folder = phantom_folder(params, root)
            if folder not in folders:
                folders.append(folder)
    return folders


@dataclass
class LoadedData:
    """A sample table with where it came from and what was left out."""

    samples: pd.DataFrame
    skipped: list[dict] = field(default_factory=list)
    source: str = ""
    root: Path | None = None

    @property
    def has_masks(self) -> bool:
        """True when every sample has a lesion-mask file (phantoms)."""
        return bool(self.samples["mask_path"].notna().all())


def label_map_for(params: RunParams) -> dict[str, str]:
    """The folder-to-label map, defaulting to the registry's class names in their order."""
    return params.label_map or {name: name for name in params.classes}


def load_samples(params: ImageRunParams) -> LoadedData:
    """Load the sample table of a 2D experiment: the phantoms, or ``params.data_dir``.

    ``label_index`` follows the registry's class order, so class 0..K-1 mean the
    same thing in every run of an experiment.

    Raises:
        DataError: a bad folder or file (see :func:`common.data.folders.load_class_folders`),
            or labels that are not the experiment's classes.
    """
    label_map = label_map_for(params)
    if params.data_dir:
        root = Path(params.data_dir)
        samples, skipped = folders.load_class_folders(root, label_map, on_bad_file=params.on_bad_file)
        source = f"{params.manifest} ({root})"
    else:
        folder = phantom_folder(params)
        root = folder / "images"
        samples, skipped = folders.load_class_folders(root, label_map, mask_root=folder / "masks")
        source = f"phantoms/{params.phantom_kind} ({folder.name})"
    unknown = sorted(set(samples["label"]) - set(params.classes))
    if unknown:
        raise DataError(
            f"Labels {unknown} are not classes of {params.experiment} ({params.classes}); "
            "pass a label map that maps every folder to one of them."
        )
    samples["label_index"] = samples["label"].map(params.classes.index).astype(int)
    return LoadedData(samples=samples, skipped=skipped, source=source, root=root)


def split(params: ImageRunParams, samples: pd.DataFrame) -> pd.DataFrame:
    """Stratified train/val/test split from the parameters (fractions or per-class counts)."""
    return splits.split_samples(
        samples,
        fractions=tuple(params.split_fractions),
        counts=getattr(params, "split_counts", None),  # nine-models only
        seed=params.seed,
    )


def data_record(loaded: LoadedData, samples: pd.DataFrame) -> dict[str, Any]:
    """The ``data`` section of ``metrics.json``: source, counts per split, skipped files."""
    from common.data import manifest

    counts = folders.class_counts(samples)
    return {
        "source": loaded.source,
        "n_images": int(len(samples)),
        # Two runs on the same files and labels share this fingerprint, wherever the data sits.
        "fingerprint": manifest.data_fingerprint(samples),
        "class_counts": {str(col): {str(k): int(v) for k, v in counts[col].items()} for col in counts.columns},
        "skipped_files": loaded.skipped,
    }


def read_masks(samples: pd.DataFrame, image_size: int) -> np.ndarray:
    """Lesion masks of ``samples`` resized (nearest) to ``image_size``, as bool (N, S, S)."""
    from PIL import Image

    masks = []
    for path in samples["mask_path"]:
        with Image.open(path) as mask:
            masks.append(np.asarray(mask.convert("L").resize((image_size, image_size), Image.NEAREST)) > 127)
    return np.stack(masks) if masks else np.zeros((0, image_size, image_size), bool)


# ---------------------------------------------------------------- train and evaluate


def preprocess_name(params: ImageRunParams, backbone: str | None = None) -> str | None:
    """The input preprocessing of a run: the backbone's own ``preprocess_input``.

    Custom CNNs (no backbone) read images scaled to [0, 1], as in seed 003.
    """
    from common import models

    name = backbone or getattr(params, "backbone", None)
    return models.backbone_spec(name).preprocess if name else None


def datasets(params: ImageRunParams, samples: pd.DataFrame, preprocess: str | None, image_size: int | None = None,
             channels: int | None = None) -> dict:
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


def compile_and_fit(params: RunParams, model, data: dict, out_dir: str | Path | None = None, class_weight=None,
                    epsilon: float = 1e-7, learning_rate: float | None = None,
                    runtime: Runtime | None = None) -> pd.DataFrame:
    """Compile with Adam and sparse categorical cross-entropy, then fit with early stopping.

    With a runtime, compiling happens in its strategy's scope and XLA follows its speed-up switch
    (without one: :meth:`Runtime.local`). ``params.run_eagerly`` and ``params.recalibrate_bn``
    (see :func:`common.training.fit.fit`) apply when the experiment has them.

    Returns:
        The training history, one row per epoch (:func:`common.training.fit.fit`).
    """
    from common.training import fit

    (runtime or Runtime.local()).compile(model, learning_rate or params.learning_rate, epsilon=epsilon)
    # Eager steps skip tracing the train, test and predict graphs: cheaper for a one-epoch smoke run.
    model.run_eagerly = bool(getattr(params, "run_eagerly", False))
    return fit.fit(
        model, data["train"], data["val"], params.epochs, patience=params.patience,
        class_weight=class_weight, out_dir=out_dir, recalibrate_bn=getattr(params, "recalibrate_bn", None),
    )


def evaluate(params: RunParams, model, dataset, samples: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Predict a split and compute every metric with its 95% CI.

    Whole groups are resampled for the CIs when the split has groups.

    Returns:
        ``(probabilities (N, C), metrics dict)``.
    """
    from common.evaluation import metrics
    from common.training import fit

    probabilities = fit.predict_proba(model, dataset)
    groups = samples["group"] if samples["group"].notna().any() else None
    scores = metrics.classification_metrics(
        samples["label_index"].to_numpy(), probabilities, params.classes,
        positive=params.positive, groups=groups, seed=params.seed,
        n_resamples=params.n_resamples,
    )
    return probabilities, scores


def paper_rows(params: RunParams, models_metrics: dict) -> tuple[dict, list[dict]]:
    """The paper's claims (under this run's model names) and the paper-vs-run rows.

    Returns:
        ``(paper, rows)``: ``paper`` maps each paper model name to its claimed
        metrics; ``rows`` are :func:`common.evaluation.metrics.paper_vs_run` rows for the
        paper models this run has a counterpart of (``run_model_for`` in the registry).
    """
    from common.evaluation import metrics

    claims = registry.paper_claims(params.experiment)
    paper = claims.get("models", {})
    mapping = claims.get("run_model_for") or {name: name for name in paper}
    pairs = {paper_name: run_name for paper_name, run_name in mapping.items() if run_name in models_metrics}
    if not pairs:
        return paper, []
    table = metrics.paper_vs_run(
        {run_name: paper[paper_name] for paper_name, run_name in pairs.items()},
        {run_name: models_metrics[run_name] for run_name in pairs.values()},
    )
    rows = []
    for row in table.to_dict("records"):
        rows.append({
            "model": row["model"], "metric": row["metric"], "paper": row["paper"],
            "this_run": row["this_run"], "ci95": [row["ci95_low"], row["ci95_high"]],
            "difference": row["difference"], "paper_inside_ci": bool(row["paper_inside_ci"]),
        })
    return paper, rows


def build_backbone_classifier(params: BackboneRunParams, runtime: Runtime | None = None, backbone: str | None = None,
                              image_size: int | None = None):
    """The run's transfer model: backbone, global-average-pooling head with dropout, softmax.

    Built inside the runtime's distribution strategy, so its variables are mirrored.
    """
    from common import models

    name = backbone or params.backbone
    size = image_size or params.image_size
    with (runtime or Runtime.local()).scope():
        return models.build_backbone_model(
            name, (size, size, params.channels), len(params.classes),
            head=models.gap_head(params.dropout), weights=params.weights,
            trainable_fraction=params.trainable_fraction, bn_momentum=params.bn_momentum,
            zero_init_residual=params.zero_init_residual, name=name,
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


def fit_and_evaluate(params: ImageRunParams, model, samples: pd.DataFrame, preprocess: str | None,
                     out_dir: str | Path | None = None, learning_rate: float | None = None,
                     runtime: Runtime | None = None) -> FitResult:
    """Train ``model`` on a split sample table and evaluate it on its test split.

    Class weights (balanced) are used when the experiment has ``class_weights`` and it is set.

    Returns:
        The history, test probabilities and scores, datasets, test table and class weights.
    """
    from common.training import fit

    data = datasets(params, samples, preprocess)
    class_weight = (
        fit.class_weights(samples.loc[samples["split"] == "train", "label_index"], len(params.classes))
        if getattr(params, "class_weights", False) else None
    )
    history = compile_and_fit(params, model, data, out_dir=out_dir, class_weight=class_weight,
                              learning_rate=learning_rate, runtime=runtime)
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    probabilities, scores = evaluate(params, model, data["test"], test)
    return FitResult(history=history, probabilities=probabilities, scores=scores, datasets=data, test=test,
                     class_weight=class_weight)


# ---------------------------------------------------------------- splits and leakage


def split_variants(params: BackboneRunParams, samples: pd.DataFrame, audit_result: dict) -> dict[str, pd.DataFrame]:
    """The split(s) ``params.split`` asks for: ``image``, ``grouped`` or ``both``.

    The grouped split keeps every exact- or near-duplicate group of the audit on
    one side. When the audit found no duplicates, every group is a single
    image, so the image-level split already is a valid grouped split and both
    names refer to it (nothing is trained twice for the same answer).

    Returns:
        ``{"grouped": table, "image": table}`` (those asked for), grouped first.
    """
    from common.data import audit

    choice = params.split
    if choice not in ("image", "grouped", "both"):
        raise ParameterError(f"Parameter 'split' must be image, grouped or both, got {choice!r}.")
    wanted = ["grouped", "image"] if choice == "both" else [choice]
    has_duplicates = bool(audit_result["exact_groups"] or audit_result["near_groups"])
    image_split = split(params, samples)
    variants = {}
    for name in wanted:
        if name == "grouped" and has_duplicates:
            variants[name] = split(params, audit.groups_from_audit(samples, audit_result))
        else:
            variants[name] = image_split
    return variants


def duplicate_shares(variants: dict[str, pd.DataFrame], audit_result: dict) -> dict[str, dict]:
    """Share of training images with an exact or near duplicate in the test split, per split."""
    from common.data import audit

    return {name: audit.train_test_duplicate_share(table, audit_result) for name, table in variants.items()}


# ---------------------------------------------------------------- explanations


def explained_subset(samples: pd.DataFrame, probabilities: np.ndarray, n: int, lesion_classes=None,
                     only_correct: bool = True) -> np.ndarray:
    """Positions (in ``samples``) of up to ``n`` correctly classified lesion images.

    These are the images the explanation scores are computed on: a heatmap can
    only sit on a lesion the image has, and only a right answer has a reason
    worth locating. Candidates are images with a mask file (and of
    ``lesion_classes`` when given); :func:`explain` drops those whose mask is empty.
    ``only_correct=False`` keeps misclassified ones too: the smoke profile's
    one-epoch model may get no lesion right, and smoke runs check the scoring
    pipeline, not the explanations.
    """
    predicted = probabilities.argmax(axis=1)
    correct = predicted == samples["label_index"].to_numpy()
    if not only_correct:
        correct = np.ones_like(correct)
    has_mask = samples["mask_path"].notna().to_numpy().copy()
    if lesion_classes is not None:
        has_mask &= samples["label"].isin(lesion_classes).to_numpy()
    positions = np.flatnonzero(correct & has_mask)
    return positions[:n]


def lesion_subset(params: RunParams, samples: pd.DataFrame, probabilities: np.ndarray, size: int,
                  lesion_classes=None) -> tuple[np.ndarray, np.ndarray]:
    """The images whose CAMs are scored, and their lesion masks.

    Up to ``params.n_explain`` lesion images (correctly classified ones only,
    unless ``explain_only_correct`` is false) whose mask is not empty.

    Returns:
        ``(positions, masks)``: row positions in ``samples`` and masks (N, size, size).
    """
    candidates = explained_subset(samples, probabilities, len(samples), lesion_classes,
                                  only_correct=params.explain_only_correct)
    masks = read_masks(samples.iloc[candidates], size)
    # A mask file may be empty (a normal phantom): no lesion, nothing to point at.
    keep = masks.any(axis=tuple(range(1, masks.ndim)))
    return candidates[keep][: params.n_explain], masks[keep][: params.n_explain]


def score_cams(params: RunParams, explainer, images: np.ndarray, targets: np.ndarray, masks: np.ndarray,
               layer: str) -> tuple[np.ndarray, dict, float]:
    """CAMs of one explainer at one layer, scored against the masks.

    Returns:
        ``(cams, scores, seconds)``; seconds counts the CAMs, not the scoring.
    """
    import time

    started = time.perf_counter()
    maps = explainer.cams(images, targets, layer,
                          max_channels=getattr(params, "scorecam_max_channels", None) if explainer.method == "scorecam" else None)
    seconds = round(time.perf_counter() - started, 2)
    return maps, score_maps(params, maps, masks), seconds


def score_maps(params: RunParams, maps: np.ndarray, masks: np.ndarray) -> dict:
    """Localisation scores of CAMs against lesion masks, with the run's seed, resamples and CAM fraction."""
    from common.explain import explain_metrics

    return explain_metrics.score_explanations(maps, masks, seed=params.seed, n_resamples=params.n_resamples,
                                              fraction=params.cam_fraction)


def explain(params: RunParams, model, inputs: np.ndarray, samples: pd.DataFrame, probabilities: np.ndarray,
            layer: str | None = None, lesion_classes=None) -> dict:
    """CAMs of every method on the explained subset, scored against the lesion masks.

    Args:
        params: Run parameters (``cam_methods``, ``n_explain``, ``scorecam_max_channels``...).
        model: Trained model.
        inputs: Model-ready test images, in ``samples`` order.
        samples: Test sample table.
        probabilities: Test probabilities, in ``samples`` order.
        layer: CAM layer; None -> the last convolutional layer.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).

    Returns:
        ``{"positions", "cams": {method: array}, "scores": {method: {...}}, "masks",
        "seconds": {method: s}, "layer"}``.
    """
    from common.explain import cams as cam_module

    positions, masks = lesion_subset(params, samples, probabilities, inputs.shape[1], lesion_classes)
    chosen_layer = layer or cam_module.last_conv_layer(model)
    out = {"positions": positions, "cams": {}, "scores": {}, "masks": masks, "seconds": {}, "layer": chosen_layer}
    if len(positions) == 0:
        return out
    targets = samples["label_index"].to_numpy()[positions]
    for method in params.cam_methods:
        explainer = cam_module.CamExplainer(model, method)
        out["cams"][method], out["scores"][method], out["seconds"][method] = score_cams(
            params, explainer, inputs[positions], targets, masks, chosen_layer)
    return out


def select_cam_layer(params: RunParams, model, dataset, samples: pd.DataFrame, layers, lesion_classes=None) -> dict:
    """Choose, on the validation split, the layer whose Grad-CAM finds the lesions best.

    A CPU-sized ResNet50's last convolutional layer is a 3 x 3 grid at 96 px:
    its heatmap can only peak on one of nine cell centres, too coarse to point
    at a nodule a few pixels wide. Finer layers localise better but carry less
    class-specific evidence, so which one to score is a choice, made like any
    other: on the validation split's correctly classified lesion images
    (highest pointing game, then energy share; the first listed layer on a
    tie), never on the test split the chosen layer is then scored on.

    Args:
        params: Run parameters (``n_explain``, ``explain_only_correct``, ``seed``...).
        model: Trained model.
        dataset: The validation split's unshuffled dataset.
        samples: The validation sample table, in ``dataset`` order.
        layers: Candidate layer names, deepest first.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).

    Returns:
        ``{"chosen": layer or None, "validation": {layer: Grad-CAM scores}, "n": images,
        "seconds": s}``; ``chosen`` is None when the validation split has no
        lesion image to score.
    """
    import time

    from common.explain import cams as cam_module
    from common.training import fit

    started = time.perf_counter()
    inputs = model_inputs(dataset)
    probabilities = fit.predict_proba(model, dataset)
    positions, masks = lesion_subset(params, samples, probabilities, inputs.shape[1], lesion_classes)
    validation = {}
    if len(positions):
        targets = samples["label_index"].to_numpy()[positions]
        # Every candidate layer's Grad-CAM from one pass per batch.
        maps = cam_module.CamExplainer(model, "gradcam").cams_at_layers(inputs[positions], targets, layers)
        validation = {layer: score_maps(params, maps[layer], masks) for layer in layers}
    return {"chosen": best_layer(validation, layers), "validation": validation, "n": len(positions),
            "seconds": round(time.perf_counter() - started, 2)}


def best_layer(scores: dict, layers) -> str | None:
    """The layer with the highest pointing game, then energy share, then earliest in ``layers``.

    Args:
        scores: Layer -> scores of :func:`common.explain.explain_metrics.score_explanations`.
        layers: The candidate layers in order of preference.

    Returns:
        A layer name, or None when ``scores`` is empty.
    """
    if not scores:
        return None
    order = list(layers)
    return max(scores, key=lambda layer: (scores[layer]["pointing_game"]["value"],
                                          scores[layer]["energy_share"]["value"], -order.index(layer)))


LOCALISATION_METRICS = ("pointing_game", "energy_share", "iou")


@dataclass
class ScoredExplanations:
    """The test split's scored CAMs: every method at the CAM layer, Grad-CAM at the validation-chosen layer.

    Attributes:
        model_name: Name of the explained model (the key of its scores).
        last: :func:`explain` at the CAM layer, every method of ``cam_methods``.
        selection: :func:`select_cam_layer` on the validation split, or None
            (no ``cam_layer_candidates``).
        chosen: :func:`explain` (Grad-CAM) at the chosen layer, or None.
        layer_shapes: Layer name -> its feature grid (rows, columns), for labels.
    """

    model_name: str
    last: dict
    selection: dict | None = None
    chosen: dict | None = None
    layer_shapes: dict = field(default_factory=dict)

    @property
    def scores(self) -> dict:
        """Metrics-file entry: model name [at layer] -> method -> scores."""
        out = {self.model_name: self.last["scores"]}
        if self.chosen:
            out[f"{self.model_name} at {self.chosen['layer']}"] = self.chosen["scores"]
        return out

    @property
    def seconds(self) -> dict:
        """Time of every step: CAMs per layer and method, and the layer choice."""
        out = {self.last["layer"]: self.last["seconds"]}
        if self.selection:
            out["choosing the layer (validation)"] = self.selection["seconds"]
        if self.chosen:
            out[f"chosen: {self.chosen['layer']}"] = self.chosen["seconds"]
        return out

    def _label(self, layer: str) -> str:
        return f"{layer} {self.layer_shapes.get(layer, '')}".strip()

    def validation_table(self) -> pd.DataFrame | None:
        """Grad-CAM per candidate layer on the validation split (None without candidates)."""
        from common.evaluation import metrics

        if not self.selection:
            return None
        rows = {self._label(layer): scores for layer, scores in self.selection["validation"].items()}
        return metrics.metrics_table(rows, names=LOCALISATION_METRICS)

    def test_table(self) -> pd.DataFrame:
        """Every method at the CAM layer, then Grad-CAM at the chosen layer, on the test split."""
        from common.evaluation import metrics

        last_label = self._label(self.last["layer"])
        rows = {f"{last_label}, {method}": scores for method, scores in self.last["scores"].items()}
        if self.chosen:  # may be the CAM layer itself, so its rows are named apart
            rows |= {f"{self._label(self.chosen['layer'])}, {method}, chosen on validation": scores
                     for method, scores in self.chosen["scores"].items()}
        return metrics.metrics_table(rows, names=LOCALISATION_METRICS)

    def best_and_worst(self, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """The ``k`` best then ``k`` worst explained images by Grad-CAM energy share, best first.

        Drawn from the chosen layer's heatmaps when there is one (the layer that
        can localise), else from the CAM layer's.

        Returns:
            ``(positions, cams, masks, layer)``: test positions, their Grad-CAMs and masks.
        """
        from common.explain import explain_metrics

        source = self.chosen or self.last
        maps = source["cams"]["gradcam"]
        order = np.argsort(explain_metrics.energy_share(maps, source["masks"]))[::-1]
        # With 2k images or fewer, each is shown once, best first.
        picks = order if len(order) <= 2 * k else np.concatenate([order[:k], order[-k:]])
        return source["positions"][picks], maps[picks], source["masks"][picks], source["layer"]


def explain_test_split(params: RunParams, model, data: dict, samples: pd.DataFrame, inputs: np.ndarray,
                       probabilities: np.ndarray, layer: str, lesion_classes=None,
                       candidates=None) -> ScoredExplanations | None:
    """Score every CAM method on the test split, and Grad-CAM at the layer chosen on validation.

    Args:
        params: Run parameters (``cam_methods``, ``cam_layer_candidates``, ``n_explain``...).
        model: Trained model.
        data: The run's datasets (``"val"`` is used to choose the layer).
        samples: The sample table with its ``split`` column.
        inputs: Model-ready test images, in test-split order.
        probabilities: Test probabilities.
        layer: The CAM layer every method is scored at.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).
        candidates: Layers to choose from on validation; None: ``params.cam_layer_candidates``
            (no choice when that is empty or absent).

    Returns:
        The scored explanations, or None when no test image can be scored (no
        lesion mask, or no correctly classified lesion image).
    """
    test = samples[samples["split"] == "test"].reset_index(drop=True)
    last = explain(params, model, inputs, test, probabilities, layer=layer, lesion_classes=lesion_classes)
    if not last["scores"]:
        return None
    scored = ScoredExplanations(model.name, last)
    candidates = list(getattr(params, "cam_layer_candidates", None) or [] if candidates is None else candidates)
    if candidates:  # Grad-CAM only: the comparison is about the layer, not the method
        val = samples[samples["split"] == "val"].reset_index(drop=True)
        scored.selection = select_cam_layer(params, model, data["val"], val, candidates, lesion_classes)
        chosen = scored.selection["chosen"]
        if chosen:  # the same test images and masks as at the CAM layer, Grad-CAM only
            from common.explain import cams as cam_module

            targets = test["label_index"].to_numpy()[last["positions"]]
            maps, scores, seconds = score_cams(params, cam_module.CamExplainer(model, "gradcam"),
                                               inputs[last["positions"]], targets, last["masks"], chosen)
            scored.chosen = {**last, "cams": {"gradcam": maps}, "scores": {"gradcam": scores},
                             "seconds": {"gradcam": seconds}, "layer": chosen}
    scored.layer_shapes = {name: tuple(model.get_layer(name).output.shape[1:-1]) for name in [layer, *candidates]}
    return scored


def example_positions(samples: pd.DataFrame, probabilities: np.ndarray, per_class: int = 1) -> np.ndarray:
    """Positions of up to ``per_class`` correct and ``per_class`` wrong predictions of every class."""
    predicted = probabilities.argmax(axis=1)
    truth = samples["label_index"].to_numpy()
    chosen: list[int] = []
    for class_index in np.unique(truth):
        for correct in (True, False):
            hits = np.flatnonzero((truth == class_index) & ((predicted == truth) == correct))
            chosen.extend(hits[:per_class].tolist())
    return np.asarray(chosen, dtype=int)


def cam_rows(params: RunParams, images: np.ndarray, cams: np.ndarray, samples: pd.DataFrame,
             probabilities: np.ndarray, masks: np.ndarray | None = None) -> list[dict]:
    """Rows for :func:`common.report.figures.cam_grid`: image, CAM, overlay, labels and probability.

    Args:
        images: Display images (N, H, W) in [0, 1], one per row.
        cams: CAMs (N, H, W) of the same images.
        samples: Their sample table rows.
        probabilities: Their predicted probabilities (N, C).
        masks: Optional lesion masks to outline.
    """
    from common.explain import cams as cam_module

    classes = params.classes
    rows = []
    for i, (image, cam) in enumerate(zip(images, cams)):
        predicted = int(probabilities[i].argmax())
        true = classes[int(samples["label_index"].iloc[i])]
        rows.append({
            "image": image, "cam": cam, "overlay": cam_module.overlay(image, cam),
            "title": f"true {true} / predicted {classes[predicted]} (p = {probabilities[i, predicted]:.2f})",
            **({"mask": masks[i]} if masks is not None and masks[i].any() else {}),
        })
    return rows
