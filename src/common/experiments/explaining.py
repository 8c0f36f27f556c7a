"""The explanation steps of the 2D experiments: which test images to explain, and how they are shown.

CAMs are made and scored by the one explanation driver
(:mod:`common.explain.driver`); this module chooses the images it gets (the
correctly classified lesion images of a split, with their masks), and turns its
results into the rows and panels the notebooks' figures draw: examples of
right and wrong predictions, the best and worst explained images, and the
captions of the score tables (the multi-organ paper's contour maps are
:mod:`common.experiments.contour_maps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from common.config.params import ImageRunParams, RunParams
from common.errors import ParameterError
from common.evaluation import tables
from common.experiments.loading import read_masks

if TYPE_CHECKING:
    from common.experiments.fitting import FitResult
    from common.explain.benchmark import Benchmark
    from common.explain.driver import Explanation, ExplanationSet, ImageSubset, LayerSelection


def explained_subset(
    samples: pd.DataFrame, probabilities: np.ndarray, n: int, lesion_classes=None, only_correct: bool = True
) -> np.ndarray:
    """Positions (in ``samples``) of up to ``n`` correctly classified lesion images.

    These are the images the explanation scores are computed on: a heatmap can
    only sit on a lesion the image has, and only a right answer has a reason
    worth locating. Candidates are images with a mask file (and of
    ``lesion_classes`` when given); :func:`lesion_subset` drops those whose mask is empty.
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


def lesion_subset(
    params: RunParams, samples: pd.DataFrame, probabilities: np.ndarray, size: int, lesion_classes=None
) -> tuple[np.ndarray, np.ndarray]:
    """The images whose CAMs are scored, and their lesion masks.

    Up to ``params.n_explain`` lesion images (correctly classified ones only,
    unless ``explain_only_correct`` is false) whose mask is not empty, taken in
    turn from each lesion class folder (:func:`in_turn`): a split lists its images
    class by class, and the first 40 of multi-organ's test split were all brain
    tumours, so its scores described one organ of four.

    Returns:
        ``(positions, masks)``: row positions in ``samples``, in that turn order (so the first
        few, which the CAM benchmark takes, are of every class too), and masks (N, size, size).
    """
    candidates = explained_subset(
        samples, probabilities, len(samples), lesion_classes, only_correct=params.explain_only_correct
    )
    masks = read_masks(samples.iloc[candidates], size)
    # A mask file may be empty (a normal phantom): no lesion, nothing to point at.
    keep = masks.any(axis=tuple(range(1, masks.ndim)))
    candidates, masks = candidates[keep], masks[keep]
    # Turns by class folder, the finer grouping where classes merge (benign and malignant nodules are one class
    # in resnet50-gradcam).
    folders = samples["class_folder"] if "class_folder" in samples else samples["label"]
    order = in_turn(folders.to_numpy()[candidates])[: params.n_explain]
    return candidates[order], masks[order]


def in_turn(labels: np.ndarray) -> np.ndarray:
    """An order of ``labels`` that takes the first item of each label, then the second of each, and so on.

    Labels take their turns in the order they first appear, and each label's items keep
    their order. ``in_turn(["a", "a", "b", "a", "b"])`` is ``[0, 2, 1, 4, 3]``.

    Returns:
        Indices into ``labels``.
    """
    labels = np.asarray(labels)
    turn = np.zeros(len(labels), int)
    for label in dict.fromkeys(labels.tolist()):
        turn[labels == label] = np.arange(int((labels == label).sum()))
    return np.lexsort((np.arange(len(labels)), turn))


def lesion_images(
    params: RunParams, samples: pd.DataFrame, inputs: np.ndarray, probabilities: np.ndarray, lesion_classes=None
) -> ImageSubset:
    """The images whose CAMs are scored (:func:`lesion_subset`), as the explanation driver's subset.

    Args:
        params: Run parameters (``n_explain``, ``explain_only_correct``).
        samples: The split's sample table, in ``inputs`` order.
        inputs: The split's model-ready images.
        probabilities: The split's probabilities, in ``samples`` order.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).
    """
    from common.explain.driver import ImageSubset

    positions, masks = lesion_subset(params, samples, probabilities, inputs.shape[1], lesion_classes)
    return ImageSubset.take(inputs, samples["label_index"].to_numpy(), positions, masks)


def explain(
    params: RunParams,
    model,
    inputs: np.ndarray,
    samples: pd.DataFrame,
    probabilities: np.ndarray,
    layer: str | None = None,
    lesion_classes=None,
) -> Explanation:
    """CAMs of every method of ``params.cam_methods`` on the lesion images, scored against their masks.

    Args:
        params: Run parameters (``cam_methods``, ``n_explain``, ``scorecam_max_channels``...).
        model: Trained model.
        inputs: Model-ready test images, in ``samples`` order.
        samples: Test sample table.
        probabilities: Test probabilities, in ``samples`` order.
        layer: CAM layer; None -> the last convolutional layer.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).
    """
    from common.explain import driver

    subset = lesion_images(params, samples, inputs, probabilities, lesion_classes)
    return driver.explain(model, subset, params.cam_methods, driver.ExplainSettings.from_params(params), layer)


def validation_images(
    params: RunParams,
    model,
    dataset,
    samples: pd.DataFrame,
    lesion_classes=None,
    probabilities: np.ndarray | None = None,
) -> ImageSubset:
    """The validation split's lesion images a CAM layer is chosen on.

    Args:
        params: Run parameters (``n_explain``, ``explain_only_correct``).
        model: Trained model.
        dataset: The validation split's unshuffled dataset.
        samples: The validation sample table, in ``dataset`` order.
        lesion_classes: Classes whose masks count as lesions (default: any non-empty mask).
        probabilities: The model's validation probabilities (N, C), in ``samples`` order, when
            they were predicted already; None: predicted here (a model rebuilt from its weights
            traces its predict graph for it, seconds for a deep network on a CPU).
    """
    from common.experiments.fitting import model_inputs
    from common.training import fit

    if probabilities is None:
        probabilities = fit.predict_proba(model, dataset)
    return lesion_images(params, samples, model_inputs(dataset), probabilities, lesion_classes)


def explain_test_split(
    params: RunParams,
    model,
    data: dict,
    samples: pd.DataFrame,
    inputs: np.ndarray,
    probabilities: np.ndarray,
    layer: str,
    lesion_classes=None,
    candidates=None,
    val_probabilities: np.ndarray | None = None,
) -> ExplanationSet | None:
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
        val_probabilities: The model's validation probabilities, if already predicted
            (:func:`validation_images`); None: predicted when a layer is chosen.

    Returns:
        The scored explanations (:class:`common.explain.driver.ExplanationSet`), or None when no
        test image can be scored (no lesion mask, or no correctly classified lesion image).
    """
    from common.explain import driver

    test = samples[samples["split"] == "test"].reset_index(drop=True)
    val = samples[samples["split"] == "val"].reset_index(drop=True)
    candidates = list(getattr(params, "cam_layer_candidates", None) or [] if candidates is None else candidates)
    return driver.explain_split(
        model,
        lesion_images(params, test, inputs, probabilities, lesion_classes),
        layer,
        params.cam_methods,
        driver.ExplainSettings.from_params(params),
        candidates,
        lambda: validation_images(params, model, data["val"], val, lesion_classes, val_probabilities),
    )


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


def cam_rows(
    params: RunParams,
    images: np.ndarray,
    cams: np.ndarray,
    samples: pd.DataFrame,
    probabilities: np.ndarray,
    masks: np.ndarray | None = None,
) -> list[dict]:
    """Rows for :func:`common.report.figures.cam_grid`: image, CAM, overlay, labels and probability.

    Args:
        params: Run parameters (``classes``).
        images: Display images (N, H, W) in [0, 1], one per row.
        cams: CAMs (N, H, W) of the same images.
        samples: Their sample table rows.
        probabilities: Their predicted probabilities (N, C).
        masks: Optional lesion masks to outline.
    """
    from common.explain import overlays

    classes = params.classes
    rows = []
    for i, (image, cam) in enumerate(zip(images, cams, strict=True)):
        predicted = int(probabilities[i].argmax())
        true = classes[int(samples["label_index"].iloc[i])]
        rows.append(
            {
                "image": image,
                "cam": cam,
                "overlay": overlays.overlay(image, cam),
                "title": f"true {true} / predicted {classes[predicted]} (p = {probabilities[i, predicted]:.2f})",
                **({"mask": masks[i]} if masks is not None and masks[i].any() else {}),
            }
        )
    return rows


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class TestImages:
    """A trained model's test split, as the explanation steps read it.

    Attributes:
        samples: The test split's sample table, re-indexed from 0.
        inputs: Model-ready images, in ``samples`` order (exactly what the model saw).
        display: The same images in [0, 1], greyscale (N, S, S), for figures.
        probabilities: The model's test probabilities (N, C).
        has_masks: Whether the images have lesion masks (phantoms) to score CAMs against.
    """

    samples: pd.DataFrame
    inputs: np.ndarray
    display: np.ndarray
    probabilities: np.ndarray
    has_masks: bool

    @classmethod
    def read(
        cls, params: ImageRunParams, dataset, samples: pd.DataFrame, probabilities: np.ndarray, has_masks: bool
    ) -> TestImages:
        """Read the test split's inputs from its unshuffled dataset, and its display images from disk.

        Args:
            params: Run parameters (``image_size``).
            dataset: The test split's unshuffled dataset.
            samples: The test split's sample table, in ``dataset`` order.
            probabilities: The model's test probabilities.
            has_masks: Whether the images have lesion masks.
        """
        from common.data import pipeline
        from common.experiments.fitting import model_inputs

        return cls(
            samples,
            model_inputs(dataset),
            pipeline.load_arrays(samples, params.image_size, 1)[..., 0],
            probabilities,
            has_masks,
        )

    @classmethod
    def of(cls, params: ImageRunParams, result: FitResult, has_masks: bool) -> TestImages:
        """The test split of :func:`common.experiments.fitting.fit_and_evaluate`'s result."""
        return cls.read(params, result.datasets["test"], result.test, result.probabilities, has_masks)

    @property
    def labels(self) -> np.ndarray:
        """The true class index of every image."""
        return self.samples["label_index"].to_numpy()

    def rows(
        self, params: RunParams, positions: np.ndarray, cams: np.ndarray, masks: np.ndarray | None = None
    ) -> list[dict]:
        """:func:`cam_rows` of the images at ``positions`` with their CAMs (and masks)."""
        return cam_rows(
            params, self.display[positions], cams, self.samples.iloc[positions], self.probabilities[positions], masks
        )


def example_rows(params: ImageRunParams, model, test: TestImages, layer: str) -> list[dict]:
    """Grad-CAM rows of a right and a wrong prediction of every class (:func:`example_positions`).

    The CAM explains the predicted class; the lesion is outlined when the test split has masks.
    """
    from common.explain import cams

    shown = example_positions(test.samples, test.probabilities)
    maps = cams.compute_cam(model, test.inputs[shown], test.probabilities[shown].argmax(1), "gradcam", layer=layer)
    masks = read_masks(test.samples.iloc[shown], params.image_size) if test.has_masks else None
    return test.rows(params, shown, maps, masks)


def explain_test_images(
    params: RunParams, model, data: dict, samples: pd.DataFrame, test: TestImages, layer: str
) -> ExplanationSet | None:
    """:func:`explain_test_split` of a :class:`TestImages`; None when the test split has no masks."""
    if not test.has_masks:
        return None
    return explain_test_split(params, model, data, samples, test.inputs, test.probabilities, layer)


def run_benchmark(params: RunParams, model, subset: ImageSubset, layer: str) -> Benchmark:
    """:func:`common.explain.benchmark.benchmark` of ``params.benchmark_methods`` with the run's settings.

    The sanity check re-initialises the run's ``randomisation_layers`` (none where the run has no such parameter).

    Args:
        params: Run parameters (``benchmark_methods``, ``deletion_steps``, ``seed``, ``n_resamples``...).
        model: The model, or :class:`~common.explain.driver.FoldModels` with an owner per image of ``subset``.
        subset: The images.
        layer: The layer every method's maps are taken at.
    """
    from common.explain import benchmark, driver
    from common.explain.faithfulness import Perturbation

    if not params.benchmark_methods:
        raise ParameterError("benchmark_methods is null: this run benchmarks no CAM method")
    from common.config import registry

    settings = driver.ExplainSettings.from_params(params)
    return benchmark.benchmark(
        model,
        subset,
        params.benchmark_methods,
        settings,
        Perturbation(steps=params.deletion_steps),
        alpha=float(registry.section("statistics")["alpha"]),  # the model comparisons' level too
        layer=layer,
        randomisation_layers=getattr(params, "randomisation_layers", 0),
    )


def benchmark_test_images(
    params: RunParams, model, test: TestImages, explained: Explanation | ExplanationSet | None, layer: str
) -> Benchmark | None:
    """Every method of ``params.benchmark_methods`` on the same test images (:mod:`common.explain.benchmark`).

    The images and the layer are :func:`benchmark_subset`'s; without masks the
    layer is the first of ``cam_layer_candidates`` where the run has them
    (without masks no layer is chosen on validation, and the coarsest layer
    would make the methods agree), else ``layer``.

    Args:
        params: Run parameters.
        model: The trained model.
        test: The test split.
        explained: The scored explanations (an :class:`ExplanationSet` or one
            :class:`Explanation`), or None when nothing was scored.
        layer: The CAM layer.

    Returns:
        The benchmark; None when ``benchmark_methods`` is null, or when there is no image to benchmark.
    """
    if not params.benchmark_methods:
        return None
    candidates = getattr(params, "cam_layer_candidates", None)
    found = benchmark_subset(
        params,
        test.inputs,
        test.labels,
        test.probabilities,
        test.has_masks,
        explained,
        candidates[0] if candidates else layer,
    )
    return None if found is None else run_benchmark(params, model, *found)


def benchmark_subset(
    params: RunParams,
    inputs: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    has_masks: bool,
    explained: Explanation | ExplanationSet | None,
    unmasked_layer: str,
) -> tuple[ImageSubset, str] | None:
    """The test images and the layer a CAM benchmark scores.

    With lesion masks: the first ``params.benchmark_images`` of the images the
    explanation scores used, at the layer chosen on validation when one was
    (where the methods can differ: at the last layer before global pooling
    HiResCAM and XGrad-CAM equal Grad-CAM), else at the explanation's layer.
    Without masks (real scans): the first ``benchmark_images`` correctly
    classified test images, each explaining its class, by faithfulness only, at ``unmasked_layer``.

    Args:
        params: Run parameters (``benchmark_images``).
        inputs: The model's test inputs.
        labels: Their true class indices.
        probabilities: The model's test probabilities.
        has_masks: Whether the test split has lesion masks.
        explained: The scored explanations, or None when nothing was scored.
        unmasked_layer: The layer of a benchmark without masks.

    Returns:
        ``(images, layer)``; None when the split has masks but no image was scored, or no image is right.
    """
    from common.explain.driver import ExplanationSet, ImageSubset

    n = params.benchmark_images
    if has_masks:
        if isinstance(explained, ExplanationSet):
            explained = explained.chosen or explained.last
        if explained is None or not len(explained.positions):
            return None
        positions, masks, layer = explained.positions[:n], explained.masks[:n], explained.layer
    else:
        positions = np.flatnonzero(probabilities.argmax(axis=1) == labels)[:n]
        masks = np.zeros((len(positions), *inputs.shape[1:-1]), bool)
        layer = unmasked_layer
    if not len(positions):
        return None
    return ImageSubset.take(inputs, labels, positions, masks), layer


def method_panels(
    params: RunParams, test: TestImages, found: Benchmark, k: int = 3
) -> tuple[list[np.ndarray], list[str], list[np.ndarray | None]]:
    """The first ``k`` benchmarked images under every method: the image, then one overlay per method.

    Returns:
        ``(panels, titles, masks)``, ``1 + len(methods)`` of each per image (the lesion outline on every
        panel where the image has a mask), for :func:`common.report.figures.image_grid`.
    """
    from common.explain import overlays

    panels, titles, masks = [], [], []
    for row, position in enumerate(found.positions[:k]):
        image = test.display[position]
        lesion = found.masks[row] if found.masks is not None and found.masks[row].any() else None
        panels.append(image)
        titles.append(f"{test.samples.label[position]} ({found.layer})")
        for method in found.methods:
            panels.append(overlays.overlay(image, found.cams[method][row]))
            titles.append(method)
        masks += [lesion] * (1 + len(found.methods))
    return panels, titles, masks


def extreme_rows(params: RunParams, test: TestImages, scored: ExplanationSet, k: int = 3) -> tuple[list[dict], str]:
    """Rows of the ``k`` best then ``k`` worst explained images by Grad-CAM energy share, best first.

    Returns:
        ``(rows, layer)``: the rows, and the layer their CAMs are from
        (:meth:`common.explain.driver.ExplanationSet.best_and_worst`).
    """
    positions, maps, masks, layer = scored.best_and_worst(k)
    return test.rows(params, positions, maps, masks), layer


def ranked_by_energy(
    explained: Explanation, k: int = 3, method: str = "gradcam"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` highest energy shares (highest first), then the ``k`` lowest (lowest first).

    Unlike :meth:`common.explain.driver.Explanation.best_and_worst`, the worst
    come lowest first, and with ``2 k`` images or fewer an image may be shown
    among both.

    Returns:
        ``(positions, cams, masks)`` of the picked images.
    """
    from common.explain.scores import energy_share

    maps = explained.cams[method]
    order = energy_share(maps, explained.masks).argsort()
    picks = [*order[-k:][::-1], *order[:k]]
    return explained.positions[picks], maps[picks], explained.masks[picks]


def selection_caption(selection: LayerSelection) -> str:
    """Markdown heading of the validation table: how many images the layer was chosen on, and which."""
    return (
        f"**Validation split** ({selection.n} lesion images), Grad-CAM per candidate layer; "
        f"chosen: `{selection.chosen}`"
    )


def scored_caption(scored: ExplanationSet) -> str:
    """Images scored, the energy share of a uniform heatmap (chance level), and the seconds of every step."""
    return (
        f"{len(scored.last.positions)} lesion images; energy share of a uniform heatmap (chance): "
        f"{scored.last.masks.mean():.4f}; seconds: {scored.seconds}"
    )


def score_summary(scores: dict) -> pd.DataFrame:
    """Method -> ``"value (low–high)"`` (``format_estimate``) of every score with an interval, one row per method."""
    return pd.DataFrame(
        {
            method: {
                name: tables.format_estimate(v) for name, v in entries.items() if isinstance(v, dict) and "value" in v
            }
            for method, entries in scores.items()
        }
    ).T
