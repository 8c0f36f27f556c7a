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

from common.data.phantoms.sets import phantom_kind
from common.errors import ParameterError

# Bump when a change to the renderers changes the output, so cached folders
# made by ensure_phantoms are regenerated rather than silently reused.
PHANTOM_VERSION = 2  # 2: DICOM headers no longer name the class (patient ID, series description)
MARKER_NAME = "phantom.json"


def ensure_phantoms(kind: str, root, **params) -> Path:
    """Generate a phantom data set once and return its folder.

    The folder is ``root/<kind>-<hash>``, the hash taken over the kind, the
    full parameters (defaults filled in) and :data:`PHANTOM_VERSION`. Data are
    written into a temporary sibling folder, the marker ``phantom.json`` last,
    and the folder is then renamed into place, so an interrupted run never
    leaves a folder that looks complete.

    Args:
        kind: Key of :data:`~common.data.phantoms.sets.PHANTOM_KINDS`.
        root: Cache folder holding the generated data sets.
        **params: Parameters of the kind's generator (``n_per_class``, ...).

    Returns:
        The complete data set folder.
    """
    generator = phantom_kind(kind).generator
    try:
        bound = inspect.signature(generator).bind(None, **params)
    except TypeError as error:
        raise ParameterError(f"Bad parameters for phantom kind {kind!r}: {error}.") from None
    bound.apply_defaults()
    arguments = {name: value for name, value in bound.arguments.items() if name != "out_dir"}
    # Through JSON so tuples and lists, or numpy and Python ints, hash alike.
    record = json.loads(json.dumps({"kind": kind, "version": PHANTOM_VERSION, "parameters": arguments}, default=int))
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
