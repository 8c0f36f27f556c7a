"""``camstudy predict``: many files predicted in batches, each one's outputs written as its batch ends.

Per input: ``<stem>.json`` (probabilities and the CAM's method and layer),
``<stem>_overlay.png`` and ``<stem>_contours.png``, ``<stem>`` naming the input
(:func:`output_stem`). A DICOM series (volume model) also gets ``<stem>_montage.png``
(its slices with their CAM, the CAM maximum's slice framed) and ``<stem>_mip.png``
(the CAM's maximum-intensity projections), and its JSON names the shown slice
(``slice_index``) and the CAM maximum's (``cam_max_slice``).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from common.data.folders import IMAGE_SUFFIXES
from common.errors import StudyError
from common.predict.card import RunModel
from common.predict.inputs import LoadedInput, load_input
from common.predict.prediction import Prediction, check_layer, check_method, png_bytes, predict_loaded
from common.report.results import to_jsonable, write_json_atomic


def output_stem(source: str | Path) -> str:
    """The file stem of an input's outputs: a readable name and a digest of its absolute path.

    A file keeps its whole name without an image suffix (``scan1.png`` -> ``scan1``); a folder
    (a DICOM series) is named with its parent, as TCIA series folders repeat names such as
    ``2.000000-5mm-40805`` across patients. The digest makes the stem of two different inputs
    differ, in one call or over calls writing into one folder, and the same input keep its stem.
    """
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        readable = f"{path.parent.name}_{path.name}" if path.parent.name else path.name
    else:
        readable = path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:8]
    return f"{readable or 'input'}-{digest}"


def _unique_stem(source: str, used: set[str]) -> str:
    """:func:`output_stem`, numbered when one call is given the same input twice."""
    base = output_stem(source)
    stem, number = base, 2
    while stem in used:
        stem, number = f"{base}_{number}", number + 1
    used.add(stem)
    return stem


def write_prediction(prediction: Prediction, out_dir: str | Path, stem: str, run_model: RunModel) -> Path:
    """Write ``<stem>.json`` (probabilities) and ``<stem>_<kind>.png`` of each of :meth:`Prediction.images`.

    The kinds are ``overlay`` and ``contours``, and for a volume also ``montage`` and ``mip``.

    Args:
        prediction: The prediction; its ``files`` gets the PNG names by kind.
        out_dir: Output folder (made if missing).
        stem: File name stem of the files.
        run_model: The model that predicted (named in the JSON).

    Returns:
        The JSON file's path; the PNG names are recorded in it under ``files``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, image in prediction.images().items():
        name = f"{stem}_{kind}.png"
        (out_dir / name).write_bytes(png_bytes(image))
        prediction.files[kind] = name
    record = {"experiment": run_model.experiment, "model_file": str(run_model.model_path), **prediction.record()}
    return write_json_atomic(out_dir / f"{stem}.json", record)


def predict_paths(
    run_model: RunModel,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[list[dict], list[str]]:
    """Predict many files (or series folders), writing each one's outputs as soon as its batch is done.

    A bad input is reported and skipped; the others are still predicted.

    Args:
        run_model: The run's model and card.
        paths: Image files (image models) or DICOM series folders (volume models).
        out_dir: Folder for the per-input JSON and PNG files.
        method: One of :func:`common.predict.prediction.cam_methods`.
        layer: CAM layer; None -> the run's own.
        batch_size: Inputs predicted and explained together.
        progress: Show a tqdm progress bar (on stderr).

    Returns:
        ``(records, errors)``: the JSON record of every predicted input and a
        one-line message per input that could not be read.
    """
    from tqdm.auto import tqdm

    check_method(method)
    layer = check_layer(run_model, layer)
    paths = list(paths)
    records: list[dict] = []
    errors: list[str] = []
    used_stems: set[str] = set()
    pending: list[LoadedInput] = []

    def flush() -> None:
        for prediction in predict_loaded(run_model, pending, method, layer):
            write_prediction(prediction, out_dir, _unique_stem(prediction.source, used_stems), run_model)
            records.append(to_jsonable(prediction.record()))
        pending.clear()

    with tqdm(total=len(paths), desc="predict", unit="input", disable=not progress, file=sys.stderr) as bar:
        for path in paths:
            try:
                pending.append(load_input(run_model, path))
            except StudyError as exc:
                errors.append(str(exc))
            if len(pending) >= batch_size:
                flush()
            bar.update(1)
        flush()
    return records, errors


def probability_table(records: Sequence[dict], classes: Sequence[str]) -> str:
    """A plain-text table: one row per input with its predicted class and every probability."""
    import pandas as pd

    if not records:
        return "(no predictions)"
    table = pd.DataFrame(
        [
            {
                "input": Path(r["source"]).name,
                "predicted": r["predicted"],
                **{name: f"{r['probabilities'][name]:.4f}" for name in classes},
            }
            for r in records
        ]
    )
    return table.to_string(index=False)
