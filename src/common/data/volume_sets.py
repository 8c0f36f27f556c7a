"""Volume data sets: DICOM series in class folders, their lesion masks and a ``tf.data`` pipeline.

The 3D experiment (seed 001) classifies whole CT series. This module reads such
a data set:

* a sample table of DICOM series (one row per volume) from class folders,
  ``root/<class>/<case>/.../*.dcm``, with optional lesion masks
  ``mask_root/<class>/<case>.npz`` (the layout of the ``chest_volumes``
  phantoms, see :mod:`common.data.phantoms`);
* every series at the model's input shape with :func:`common.data.dicom.load_series`
  (sorted slices, window, min-max normalisation, Sobel), and its mask resampled
  onto the same voxel grid (:func:`common.data.volume_ops.resample`);
* a ``tf.data`` pipeline of volumes with the paper's rotation augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from common.data import dicom, volume_ops
from common.errors import DataError, ParameterError

MASK_SUFFIX = ".npz"
MASK_KEY = "mask"
# A resampled mask voxel is lesion when at least half of it was (linear resampling).
MASK_THRESHOLD = 0.5


# ---------------------------------------------------------------- the sample table


def load_volume_samples(
    root: str | Path,
    label_map: dict[str, str] | None = None,
    mask_root: str | Path | None = None,
    min_classes: int = 2,
) -> pd.DataFrame:
    """One row per DICOM series under ``root/<class folder>/``.

    Every folder that directly holds DICOM files (:func:`common.data.dicom.find_series`)
    is one volume. Its case is the first folder below the class folder (a
    patient in a TCIA download, a case in the phantoms); all series of one case
    share a group, so no case is split across folds.

    Args:
        root: Folder with one sub-folder per class.
        label_map: Class folder -> label; None uses the folder names. Labels are
            ordered by first appearance in the map's values.
        mask_root: Folder with ``<class folder>/<case>.npz`` lesion masks (key
            ``"mask"``, (H, W, D) in slice order); None when unknown.
        min_classes: Fewest labels the series must hold: 2 for a data set to train on, 1 for a
            test-only stratum of one class (the contrast-detail analysis's harder volumes).

    Returns:
        Columns: path (series folder), label, label_index, class_folder, case,
        group, mask_path (None without ``mask_root``).

    Raises:
        DataError: ``root`` has no DICOM series, a series lies outside a class
            folder, a class folder is not in ``label_map``, fewer than two
            labels, or a mask file is missing.
    """
    root = Path(root)
    rows = []
    for folder in dicom.find_series(root):
        parts = folder.relative_to(root).parts
        if len(parts) < 2:
            raise DataError(
                f"{folder}: DICOM files directly in {'the root' if not parts else 'a class folder'}; "
                f"put each series in its own folder under {root}/<class>/<case>/"
            )
        class_folder, case = parts[0], parts[1]
        rows.append({"path": str(folder), "class_folder": class_folder, "case": case})
    samples = pd.DataFrame(rows)
    folders = list(dict.fromkeys(samples["class_folder"]))
    label_map = label_map or {name: name for name in folders}
    unknown = [name for name in folders if name not in label_map]
    if unknown:
        raise DataError(
            f"{root}: class folders {unknown} are not in the label map {sorted(label_map)}; "
            "add them to the map or move them out of the data folder"
        )
    samples["label"] = samples["class_folder"].map(label_map)
    labels = [label for label in dict.fromkeys(label_map.values()) if label in set(samples["label"])]
    if len(labels) < min_classes:
        raise DataError(f"{root}: series of only {labels} found; a classifier needs at least two classes")
    samples["label_index"] = samples["label"].map(labels.index).astype(int)
    samples["group"] = samples["class_folder"] + "/" + samples["case"]
    samples["mask_path"] = None
    if mask_root is not None:
        paths = [Path(mask_root) / row.class_folder / f"{row.case}{MASK_SUFFIX}" for row in samples.itertuples()]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} lesion masks missing, e.g. {missing[0]}; "
                "give every series a mask or pass mask_root=None"
            )
        samples["mask_path"] = [str(path) for path in paths]
    columns = ["path", "label", "label_index", "class_folder", "case", "group", "mask_path"]
    return samples[columns]


# ---------------------------------------------------------------- volumes and masks


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError(f"input_shape={input_shape!r}: give (height, width, depth) in voxels")
    return shape


def load_volumes(
    samples: pd.DataFrame, input_shape: Sequence[int], window: Sequence[float] | None = None, sobel: bool = False
) -> np.ndarray:
    """Load every series of ``samples`` at the model's input shape.

    Each series is sorted, windowed, resampled, min-max normalised to [0, 1]
    and optionally Sobel-enhanced by :func:`common.data.dicom.load_series`.

    Args:
        samples: Volume table (``path`` column).
        input_shape: (H, W, D) of the model input.
        window: (center, width) in HU, or None.
        sobel: Add Sobel edges (seed 001's enhancement).

    Returns:
        float32 array (N, H, W, D, 1).
    """
    height, width, depth = _check_input_shape(input_shape)
    volumes = np.zeros((len(samples), height, width, depth, 1), dtype=np.float32)
    for index, path in enumerate(samples["path"]):
        volumes[index, ..., 0], _ = dicom.load_series(
            path, depth=depth, size=(height, width), window=window, sobel=sobel
        )
    return volumes


def read_mask(path: str | Path) -> np.ndarray:
    """Read one lesion mask file (``.npz`` with key ``"mask"``) as bool (H, W, D).

    Raises:
        DataError: the file is unreadable, lacks the key or is not 3D.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            mask = np.asarray(archive[MASK_KEY])
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a mask file with key {MASK_KEY!r} ({error})") from error
    if mask.ndim != 3:
        raise DataError(f"{path}: mask has shape {mask.shape}; expected (H, W, D)")
    return mask > 0


def load_masks(samples: pd.DataFrame, input_shape: Sequence[int]) -> np.ndarray:
    """Lesion masks of ``samples`` on the input's voxel grid, bool (N, H, W, D).

    A mask is indexed like its series in slice order, so it is resampled the
    way :func:`common.data.volume_ops.resample` resamples the volume (linear, corner
    aligned, evenly spaced slices) and thresholded at :data:`MASK_THRESHOLD`.
    """
    shape = _check_input_shape(input_shape)
    masks = np.zeros((len(samples), *shape), dtype=bool)
    for index, path in enumerate(samples["mask_path"]):
        source = read_mask(path).astype(np.float32)
        masks[index] = volume_ops.resample(source, shape[:2], shape[2]) >= MASK_THRESHOLD
    return masks


def volume_dataset(
    volumes: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    rotation_degrees: float = 0.0,
    training: bool = False,
    seed: int = 0,
):
    """A ``tf.data`` pipeline of (volume, label) batches.

    Training batches are reshuffled every epoch and, with ``rotation_degrees``,
    rotated in-plane (seed 001's rotation augmentation) by one random angle per
    volume, the same for all its slices; gaps are filled with 0, the air of a
    normalised CT.

    Args:
        volumes: (N, H, W, D, 1) float32.
        labels: (N,) integer class indices.
        batch_size: Volumes per batch.
        rotation_degrees: Largest rotation, in degrees either way; 0 = none.
        training: Shuffle and augment.
        seed: Shuffle and augmentation seed.
    """
    import tensorflow as tf

    from common.data import augment

    dataset = tf.data.Dataset.from_tensor_slices((volumes.astype(np.float32), np.asarray(labels, np.int32)))
    if training:
        dataset = dataset.shuffle(len(volumes), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and rotation_degrees:
        rotate = augment.augmenter({"rotation": rotation_degrees / 360.0})

        def rotate_volumes(batch, batch_seed):
            # Slices become channels, so one 2D rotation turns the whole volume about its axis.
            volumes_batch, batch_labels = batch
            slices_as_channels = tf.squeeze(volumes_batch, axis=-1)
            return tf.expand_dims(rotate(slices_as_channels, batch_seed), -1), batch_labels

        dataset = augment.with_batch_seeds(dataset, seed).map(
            rotate_volumes, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
