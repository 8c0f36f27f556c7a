"""The data steps of the 2D experiments: phantom sets, the sample table, its split, record and masks.

A 2D notebook starts by reading its images as a sample table (the project's
phantoms, or a class-folder data set under ``params.data_dir``), splitting it,
and recording where the data came from. Each step takes the run's typed
parameters (:func:`common.config.registry.resolve`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.config import registry
from common.config.params import ImageRunParams, RunParams
from common.data import annotations, folders, manifest, patient_groups, phantoms, splits
from common.errors import DataError, ParameterError
from common.report.results import project_root

# Where a run's lesion masks come from (LoadedData.mask_source).
PHANTOM_OUTLINES = "phantom outlines"
BOXES = "boxes"


def phantom_root() -> Path:
    """Folder that holds every generated phantom set (git-ignored ``data/phantoms``)."""
    return project_root() / "data" / "phantoms"


def box_mask_folder(params: RunParams) -> Path:
    """Folder the box masks of a real data set go to: ``data/annotation_masks/<hash>`` (git-ignored).

    One folder per data folder and annotations folder (the hash of both absolute
    paths), never inside the data folder, which may be read-only and is the
    user's. Every load writes the masks again (:func:`with_box_masks`), so they
    always follow the current annotation files.
    """
    key = json.dumps([str(Path(str(folder)).resolve()) for folder in (params.data_dir, params.annotations)])
    return project_root() / "data" / "annotation_masks" / hashlib.sha256(key.encode()).hexdigest()[:12]


def phantom_folder(params: RunParams, root: str | Path | None = None, **generator_args: Any) -> Path:
    """Generate (once) and return the phantom set an experiment's parameters ask for.

    Args:
        params: Run parameters (``phantom_kind`` and the generator's sizes and classes, named
            by the registry's ``phantom_sets`` section, which also holds the sets' seed).
        root: Folder of the phantom sets; None: :func:`phantom_root`.
        **generator_args: Arguments of the generator that replace the parameters' (e.g. the
            test extension's ``start_index`` and ``n_per_class``).
    """
    kind = params.phantom_kind
    sets = registry.section("phantom_sets")
    kwargs = {arg: getattr(params, name) for arg, name in sets["arguments"][kind].items()}
    kwargs.update(generator_args)
    for arg, value in kwargs.items():
        if isinstance(value, list):
            kwargs[arg] = tuple(value)
    return phantoms.ensure_phantoms(kind, root or phantom_root(), seed=sets["seed"], **kwargs)


def prepare_phantoms(profile: str, kind: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Generate the phantom sets every experiment needs in ``profile`` (or one kind).

    With ``sized_test`` (the default profile) also each experiment's test extension
    (:mod:`common.experiments.sized_test`) and the harder stratum of its contrast-detail analysis
    (:func:`common.experiments.detectability.hard_folder`), so a notebook's wall time holds no generation.

    Args:
        profile: ``smoke``, ``default`` or ``paper``.
        kind: Only this phantom kind (None: every kind).
        root: Folder of the phantom sets; None: :func:`phantom_root`.

    Returns:
        The folders generated or found, each once.

    Raises:
        ParameterError: for a kind the registry's ``phantom_sets`` does not have.
    """
    kinds = list(registry.section("phantom_sets")["arguments"])
    if kind is not None and kind not in kinds:
        raise ParameterError(f"Unknown phantom kind {kind!r}; choose one of {', '.join(kinds)} (or none for all).")
    found: list[Path] = []
    for experiment_id in registry.experiment_ids():
        params = registry.resolve(experiment_id, profile)
        if kind is None or params.phantom_kind == kind:
            folder = phantom_folder(params, root)
            if folder not in found:
                found.append(folder)
            extension = extension_folder(params, root)
            if extension is not None and extension not in found:
                found.append(extension)
            if params.sized_test:  # the default runs' contrast-detail analysis may need its harder stratum
                from common.experiments import detectability

                hard = detectability.hard_folder(params, root=root)
                if hard not in found:
                    found.append(hard)
    return found


@dataclass
class LoadedData:
    """A sample table with where it came from and what was left out.

    Attributes:
        samples: The sample (or volume) table.
        skipped: Files left out (``on_bad_file="skip"``): images, then annotation files; ``{"path", "reason"}`` each.
        source: Where the data came from, for the page and ``metrics.json``.
        root: The folder the samples were read from.
        mask_source: Where the lesion masks come from: :data:`PHANTOM_OUTLINES`, :data:`BOXES`
            (bounding boxes of the ``annotations`` folder; coarser than outlines), or None (no masks).
        box_masks: With :data:`BOXES`, the masks written and which samples have a box.
        verification: Real data only: the local copy checked against its manifest
            (:func:`common.data.manifest.verification_record`).
        groups_note: Real data only: how the manifest's rule grouped images by patient, or that it has none.
    """

    samples: pd.DataFrame
    skipped: list[dict] = field(default_factory=list)
    source: str = ""
    root: Path | None = None
    mask_source: str | None = None
    box_masks: annotations.BoxMasks | None = None
    verification: dict[str, Any] | None = None
    groups_note: str | None = None

    @property
    def has_masks(self) -> bool:
        """True when every sample has a lesion-mask file (phantoms, or real data with ``annotations``)."""
        return bool(self.samples["mask_path"].notna().all())

    def mask_record(self) -> dict[str, Any]:
        """Where the lesion masks come from, for ``metrics.json``: source, and with boxes how many samples have one."""
        record: dict[str, Any] = {"source": self.mask_source}
        if self.box_masks is not None:
            record.update(n_annotated=self.box_masks.n_annotated, n_samples=len(self.box_masks.paths))
        return record

    def notes(self) -> list[str]:
        """What a page says about the data beyond its counts (Markdown): the manifest check, patients, box masks."""
        found = []
        if self.verification is not None:
            name = self.verification["name"]
            found.append(
                f"**Data check** against manifest `{name}`: {manifest.verification_sentence(self.verification)}"
            )
        if self.groups_note:
            found.append(f"**Patient groups**: {self.groups_note}.")
        return found + [note for note in [self.mask_note()] if note]

    def mask_note(self) -> str | None:
        """What a page says about box masks (Markdown), or None when the masks are outlines or absent."""
        if self.mask_source != BOXES or self.box_masks is None:
            return None
        return (
            f"**Lesion masks are bounding boxes** ({self.box_masks.n_annotated} of {len(self.box_masks.paths)} "
            "annotated): a box is coarser than an outline and holds healthy tissue around the tumour, so energy "
            "share and IoU understate how well a heatmap sits on the lesion; the pointing game (is the heatmap's "
            "peak inside the box?) is the fairest of the three scores here."
        )


def label_map_for(params: RunParams) -> dict[str, str]:
    """The folder-to-label map, defaulting to the registry's class names in their order."""
    return params.label_map or {name: name for name in params.classes}


def load_samples(params: ImageRunParams) -> LoadedData:
    """Load the sample table of a 2D experiment: the phantoms, or ``params.data_dir``.

    ``label_index`` follows the registry's class order, so class 0..K-1 mean the
    same thing in every run of an experiment.

    With ``params.annotations``, every image gets a box mask (:func:`with_box_masks`).

    Raises:
        DataError: a bad folder or file (see :func:`common.data.folders.load_class_folders`),
            a bad annotation file (:mod:`common.data.annotations`), or labels that are not the experiment's classes.
    """
    label_map = label_map_for(params)
    if params.data_dir:
        root = Path(params.data_dir)
        samples, skipped = folders.load_class_folders(root, label_map, on_bad_file=params.on_bad_file)
        rule = group_rule(params)
        samples = patient_groups.with_patient_groups(samples, root, rule)
        source = real_source(params.manifest, root)
        real = {"verification": verify_copy(params), "groups_note": patient_groups.describe(samples, rule)}
    else:
        folder = phantom_folder(params)
        root = folder / "images"
        samples, skipped = folders.load_class_folders(root, label_map, mask_root=folder / "masks")
        samples = samples.assign(stratum=None)
        extension = extension_samples(params, label_map)
        if extension is not None:
            samples = pd.concat([samples, extension], ignore_index=True)
        source = f"phantoms/{params.phantom_kind} ({folder.name})"
        real = {}
    mask_source = None if params.data_dir else PHANTOM_OUTLINES
    loaded = LoadedData(with_label_index(params, samples), skipped, source, root, mask_source, **real)
    return with_box_masks(params, loaded, annotations.image_masks, params.on_bad_file)


def extension_samples(params: RunParams, label_map: dict[str, str]) -> pd.DataFrame | None:
    """The test-only extension of a phantom set (:mod:`common.experiments.sized_test`), or None when none is due.

    Its rows carry ``stratum`` = :data:`~common.experiments.sized_test.EXTENSION`; :func:`split` puts them
    into the test split.
    """
    from common.experiments import sized_test

    folder = extension_folder(params)
    if folder is None:
        return None
    samples, _ = folders.load_class_folders(folder / "images", label_map, mask_root=folder / "masks")
    return samples.assign(stratum=sized_test.EXTENSION)


def extension_folder(params: RunParams, root: str | Path | None = None) -> Path | None:
    """Generate (once) and return the phantoms of the run's test extension; None when it has none.

    The extension's images are the phantom set's next indices (``start_index = n_per_class``), as many
    per class as :func:`common.experiments.sized_test.extension_per_class` asks for.
    """
    from common.experiments import sized_test

    n_extra = sized_test.extension_per_class(params)
    if n_extra == 0:
        return None
    return phantom_folder(params, root, start_index=params.n_per_class, n_per_class=n_extra)


def real_source(manifest_name: str, root: Path) -> str:
    """How a page names real data: the manifest and the folder, relative to the project or by its name.

    The full path is in the run's parameters (``data_dir``); a page shows no machine path.
    """
    from common.report.executed import shown_path

    return f"{manifest_name} ({shown_path(root, root.name)})"


def verify_copy(params: RunParams) -> dict[str, Any] | None:
    """Real data: the local copy checked against its manifest, as ``camstudy data verify`` does; None for phantoms."""
    if not params.data_dir:
        return None
    return manifest.verification_record(manifest.verify(params.manifest, params.data_dir))


def with_box_masks(
    params: RunParams,
    loaded: LoadedData,
    write_masks: Callable[..., annotations.BoxMasks],
    on_bad_file: str,
) -> LoadedData:
    """``loaded`` with a box mask file per sample from ``params.annotations`` (unchanged without them).

    The masks go to :func:`box_mask_folder`; samples without a box get an empty
    mask, which the explanation steps pass over, so exactly the annotated lesion
    images are scored. Annotation files left out are added to ``skipped``.

    Args:
        params: Run parameters (``data_dir``, ``annotations``).
        loaded: The data as read.
        write_masks: :func:`common.data.annotations.image_masks` (images) or
            :func:`~common.data.annotations.series_masks` (DICOM series).
        on_bad_file: What a bad annotation file does: ``"error"`` or ``"skip"``.
    """
    if not params.annotations:
        return loaded
    found = annotations.read_annotations(params.annotations, on_bad_file)
    masks = write_masks(loaded.samples, loaded.root, found, box_mask_folder(params))
    return dataclasses.replace(
        loaded,
        samples=loaded.samples.assign(mask_path=list(masks.paths)),
        skipped=[*loaded.skipped, *masks.skipped],
        mask_source=BOXES,
        box_masks=masks,
    )


def group_rule(params: RunParams) -> patient_groups.GroupRule | None:
    """How the real data set's manifest names patients in file names (None: phantoms, or no rule)."""
    if not params.data_dir:
        return None
    return patient_groups.GroupRule.from_manifest(manifest.load_manifest(params.manifest))


def with_label_index(params: RunParams, samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` with ``label_index``, the label's position in the experiment's classes.

    Raises:
        DataError: a label that is not one of the experiment's classes.
    """
    unknown = sorted(set(samples["label"]) - set(params.classes))
    if unknown:
        raise DataError(
            f"Labels {unknown} are not classes of {params.experiment} ({params.classes}); "
            "pass a label map that maps every folder to one of them."
        )
    samples["label_index"] = samples["label"].map(params.classes.index).astype(int)
    return samples


def split(params: ImageRunParams, samples: pd.DataFrame) -> pd.DataFrame:
    """Stratified train/val/test split from the parameters (fractions or per-class counts).

    Exact per-class counts (nine-models' paper split) cannot keep patient groups
    whole; when the samples have groups, the counts' proportions are used as
    fractions instead, so no patient spans two splits.
    """
    counts = getattr(params, "split_counts", None)  # nine-models only
    fractions = tuple(params.split_fractions)
    if counts and "group" in samples.columns and samples["group"].notna().any():
        total = sum(counts.values())
        fractions = tuple(counts.get(name, 0) / total for name in ("train", "val", "test"))
        counts = None
    if "stratum" not in samples.columns or samples["stratum"].isna().all():
        return splits.split_samples(samples, fractions=fractions, counts=counts, seed=params.seed)
    from common.experiments import sized_test

    extension = samples["stratum"] == sized_test.EXTENSION
    own = splits.split_samples(samples[~extension], fractions=fractions, counts=counts, seed=params.seed)
    return sized_test.place_extension(pd.concat([own, samples[extension].assign(split=None)]))


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
        "masks": loaded.mask_record(),
        "verification": loaded.verification,
    }


def read_masks(samples: pd.DataFrame, image_size: int) -> np.ndarray:
    """Lesion masks of ``samples`` resized (nearest) to ``image_size``, as bool (N, S, S)."""
    from PIL import Image

    masks = []
    for path in samples["mask_path"]:
        with Image.open(path) as mask:
            masks.append(np.asarray(mask.convert("L").resize((image_size, image_size), Image.NEAREST)) > 127)
    return np.stack(masks) if masks else np.zeros((0, image_size, image_size), bool)


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class Preview:
    """The first few images of every class, as :func:`common.report.figures.image_grid` shows them.

    Attributes:
        images: Greyscale images (N, S, S) in [0, 1].
        labels: Their class labels.
        masks: Their lesion masks (N, S, S), or None when the data has none.
    """

    images: np.ndarray
    labels: list[str]
    masks: np.ndarray | None


def preview(params: ImageRunParams, samples: pd.DataFrame, per_class: int, with_masks: bool) -> Preview:
    """The first ``per_class`` images of every class (in order of appearance), at ``params.image_size``.

    Args:
        params: Run parameters (``image_size``).
        samples: A sample table.
        per_class: Images per class.
        with_masks: Read their lesion masks too (:attr:`LoadedData.has_masks`).
    """
    from common.data import pipeline

    shown = samples.groupby("label", sort=False).head(per_class)
    masks = read_masks(shown, params.image_size) if with_masks else None
    return Preview(pipeline.load_arrays(shown, params.image_size, 1)[..., 0], shown["label"].tolist(), masks)
