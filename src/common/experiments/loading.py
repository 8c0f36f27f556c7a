"""The data steps of the 2D experiments: phantom sets, the sample table, its split, record and masks.

A 2D notebook starts by reading its images as a sample table (the project's
phantoms, or a class-folder data set under ``params.data_dir``), splitting it,
and recording where the data came from. Each step takes the run's typed
parameters (:func:`common.config.registry.resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.config import registry
from common.config.params import ImageRunParams, RunParams
from common.data import folders, phantoms, splits
from common.errors import DataError, ParameterError
from common.report.results import project_root


def phantom_root() -> Path:
    """Folder that holds every generated phantom set (git-ignored ``data/phantoms``)."""
    return project_root() / "data" / "phantoms"


def phantom_folder(params: RunParams, root: str | Path | None = None) -> Path:
    """Generate (once) and return the phantom set an experiment's parameters ask for.

    Args:
        params: Run parameters (``phantom_kind`` and the generator's sizes and classes, named
            by the registry's ``phantom_sets`` section, which also holds the sets' seed).
        root: Folder of the phantom sets; None: :func:`phantom_root`.
    """
    kind = params.phantom_kind
    sets = registry.section("phantom_sets")
    kwargs = {arg: getattr(params, name) for arg, name in sets["arguments"][kind].items()}
    for arg, value in kwargs.items():
        if isinstance(value, list):
            kwargs[arg] = tuple(value)
    return phantoms.ensure_phantoms(kind, root or phantom_root(), seed=sets["seed"], **kwargs)


def prepare_phantoms(profile: str, kind: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Generate the phantom sets every experiment needs in ``profile`` (or one kind).

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
    return found


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
    return LoadedData(samples=with_label_index(params, samples), skipped=skipped, source=source, root=root)


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
