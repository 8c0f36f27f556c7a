"""The phantom cache: :func:`ensure_phantoms` generates a data set once and reuses it.

A data set lives in ``root/<kind>-<hash>``, named after its parameters, and
counts as complete only once its marker :data:`MARKER_NAME` is written.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from common.data.phantoms.sets import phantom_kind
from common.errors import ParameterError

# Bump when a change to the renderers changes the output, so cached folders
# made by ensure_phantoms are regenerated rather than silently reused.
PHANTOM_VERSION = 2  # 2: DICOM headers no longer name the class (patient ID, series description)
MARKER_NAME = "phantom.json"
# Generator arguments added after version 2: they enter a folder's key only when set away from
# their default, so the sets made before they existed keep their folders (and their images).
_KEYED_WHEN_SET = ("lesion_scale", "start_index")


def _plain(value: Any) -> Any:
    """A JSON-ready number for a numpy scalar (JSON's ``default`` hook)."""
    if isinstance(value, np.generic):
        return value.item()
    return int(value)


def _as_json(value: Any) -> Any:
    """``value`` through JSON, so tuples and lists, or numpy and Python numbers, compare and hash alike."""
    return json.loads(json.dumps(value, default=_plain))


def ensure_phantoms(kind: str, root, **params) -> Path:
    """Generate a phantom data set once and return its folder.

    The folder is ``root/<kind>-<hash>``, the hash taken over the kind, the
    full parameters (defaults filled in) and :data:`PHANTOM_VERSION`;
    ``lesion_scale`` and ``start_index`` count only when they differ from
    their defaults, so the folders made before they existed are still found. Data are
    written into a temporary sibling folder, the marker ``phantom.json`` last,
    and the folder is then renamed into place, so an interrupted run never
    leaves a folder that looks complete.

    Args:
        kind: Key of :data:`~common.data.phantoms.sets.PHANTOM_KINDS`.
        root: Cache folder holding the generated data sets.
        **params: Parameters of the kind's generator (``n_per_class``, ``seed``,
            ``lesion_scale``, ``start_index``, ...).

    Returns:
        The complete data set folder.
    """
    generator = phantom_kind(kind).generator
    signature = inspect.signature(generator)
    try:
        bound = signature.bind(None, **params)
    except TypeError as error:
        raise ParameterError(f"Bad parameters for phantom kind {kind!r}: {error}.") from None
    bound.apply_defaults()
    arguments = {
        name: value
        for name, value in bound.arguments.items()
        if name != "out_dir"
        and not (name in _KEYED_WHEN_SET and _as_json(value) == _as_json(signature.parameters[name].default))
    }
    record = _as_json({"kind": kind, "version": PHANTOM_VERSION, "parameters": arguments})
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(root)
    folder = root / f"{kind}-{digest}"
    if (folder / MARKER_NAME).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        generator(staging, **record["parameters"])
        (staging / MARKER_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if (folder / MARKER_NAME).is_file():
            # Another process generated the same set meanwhile and may be reading it: keep its folder.
            return folder
        if folder.exists():  # left by something other than this function: no marker, so incomplete
            shutil.rmtree(folder)
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / MARKER_NAME).is_file():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
