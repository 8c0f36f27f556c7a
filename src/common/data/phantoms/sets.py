"""The phantom kinds: which scene draws each class, rendering, and the data set makers.

:data:`PHANTOM_KINDS` maps a kind (``chest``, ``multi_organ``,
``chest_volumes``) to its maker (``make_*``) and, per class folder, the scene,
lesion style and display window that draw it. Each phantom is rendered from its
own generator seeded with ``(seed, kind, class name, index)``, so an image
never depends on how many others are drawn: a set made with ``start_index=k``
holds exactly the images with indices k, k + 1, ... of the set starting at 0.

``lesion_scale=(size factor, contrast factor)`` draws every lesion smaller and
fainter (:class:`~common.data.phantoms.lesions.LesionScale`) with the same
anatomy; ``(1.0, 1.0)``, the default, gives today's images bit for bit.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.data.phantoms.geometry import Grid
from common.data.phantoms.lesions import LesionScale
from common.data.phantoms.scenes import (
    Phantom,
    brain_scene,
    breast_scene,
    chest_scene,
    kidney_scene,
)
from common.data.phantoms.writers import HU_INTERCEPT, write_ct_case, write_png_case
from common.errors import ParameterError

CHEST_WINDOW_HU = (-1000.0, 400.0)  # wide lung window: black air, grey tissue, white bone
ABDOMEN_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window for the kidney scene
_MIN_SIZE = 16


class Scene(NamedTuple):
    """How one class is drawn.

    Attributes:
        render: Scene function (grid, rng, lesion, scale) -> Phantom.
        lesion: Lesion style name (key of
            :data:`~common.data.phantoms.lesions.LESION_STYLES`) or None.
        window: HU window mapped to [0, 1] for 8-bit images; None when the scene
            is already in display units (MRI, mammography) or stays in HU (volumes).
    """

    render: Callable[[Grid, np.random.Generator, str | None, LesionScale], Phantom]
    lesion: str | None
    window: tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class PhantomKind:
    """One phantom data set kind.

    Attributes:
        generator: Function writing the data set (``make_*``).
        scenes: Class folder name -> how that class is drawn, in class order.
    """

    generator: Callable[..., Path]
    scenes: dict[str, Scene]

    @property
    def classes(self) -> tuple[str, ...]:
        """Default class folders, in order."""
        return tuple(self.scenes)


def stable_id(text: str) -> int:
    """A number for ``text`` that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def render_phantom(
    kind: str,
    class_name: str,
    index: int,
    shape: Sequence[int],
    seed: int = 0,
    lesion_scale: Sequence[float] = (1.0, 1.0),
) -> Phantom:
    """Render one phantom in memory, exactly as the data set writers do.

    Args:
        kind: Key of :data:`PHANTOM_KINDS`.
        class_name: Class folder name of that kind.
        index: Image index within the class.
        shape: (H, W) for 2D kinds, (H, W, D) for ``chest_volumes``.
        seed: Data set seed.
        lesion_scale: (size factor, contrast factor) of the lesion
            (:class:`~common.data.phantoms.lesions.LesionScale`); no effect on
            lesion-free classes.

    Returns:
        Phantom; 2D kinds give display intensities in [0, 1], volumes HU
        clipped to the range the DICOM files can store ([-1024, 3071]).
    """
    scene = phantom_kind(kind).scenes.get(class_name)
    if scene is None:
        raise ParameterError(
            f"Unknown class {class_name!r} for phantom kind {kind!r}; choose from {list(PHANTOM_KINDS[kind].classes)}."
        )
    scale = LesionScale.of(lesion_scale)
    rng = np.random.default_rng([int(seed), stable_id(kind), stable_id(class_name), int(index)])
    grid = Grid.for_shape(shape)
    phantom = scene.render(grid, rng, scene.lesion, scale)
    image = phantom.image
    if scene.window is not None:
        low, high = scene.window
        image = (image - low) / (high - low)
    if grid.ndim == 2:
        image = np.clip(image, 0.0, 1.0)
    else:  # the HU range a 12-bit DICOM with intercept -1024 can store
        image = np.clip(image, HU_INTERCEPT, HU_INTERCEPT + 4095)
    return Phantom(image.astype(np.float32), phantom.mask, phantom.region)


def _is_integer(value) -> bool:
    """Whether ``value`` is a Python or numpy integer (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _check_parameters(kind: str, n_per_class, seed, classes, start_index=0) -> tuple[str, ...]:
    """Validated ``classes`` of a maker call; raises ParameterError on a bad count, seed, start or class."""
    if not _is_integer(n_per_class) or n_per_class < 1:
        raise ParameterError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
    if not _is_integer(seed) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}.")
    if not _is_integer(start_index) or start_index < 0:
        raise ParameterError(f"start_index must be a non-negative integer, got {start_index!r}.")
    classes = tuple(classes)
    known = PHANTOM_KINDS[kind].classes
    unknown = [name for name in classes if name not in known]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ParameterError(
            f"classes for phantom kind {kind!r} must be distinct names from {list(known)}, got {list(classes)}."
        )
    return classes


def _check_shape(shape: Sequence[int], ndim: int) -> tuple[int, ...]:
    """``shape`` as ``ndim`` Python ints; raises ParameterError when it is too small or malformed."""
    shape = tuple(shape)
    minimum = (_MIN_SIZE, _MIN_SIZE, 4)[:ndim]
    if len(shape) != ndim or any(not isinstance(n, (int, np.integer)) or n < low for n, low in zip(shape, minimum)):
        raise ParameterError(f"Phantom shape must be {ndim} integers of at least {minimum}, got {shape!r}.")
    return tuple(int(n) for n in shape)


def _indices(start_index: int, n_per_class: int) -> range:
    """The image indices of a set: ``start_index`` to ``start_index + n_per_class - 1``."""
    return range(int(start_index), int(start_index) + int(n_per_class))


def _write_image_set(
    kind: str, out_dir, n_per_class: int, size: int, seed: int, classes, lesion_scale, start_index: int
) -> Path:
    """Validate the parameters, then render and write every PNG pair of a 2D kind."""
    classes = _check_parameters(kind, n_per_class, seed, classes, start_index)
    shape = _check_shape((size, size), 2)
    scale = LesionScale.of(lesion_scale)
    out_dir = Path(out_dir)
    for class_name in classes:
        for index in _indices(start_index, n_per_class):
            write_png_case(out_dir, class_name, index, render_phantom(kind, class_name, index, shape, seed, scale))
    return out_dir


def make_chest_slices(
    out_dir,
    n_per_class: int,
    size: int = 128,
    seed: int = 0,
    classes: Sequence[str] = ("normal", "benign", "malignant", "pneumonia"),
    lesion_scale: Sequence[float] = (1.0, 1.0),
    start_index: int = 0,
) -> Path:
    """Write 2D chest CT phantoms: normal, benign nodule, malignant nodule, pneumonia.

    Benign nodules are small, smooth and round (diameter 7-9% of the image
    width); malignant ones larger (12-16.5%), lobulated and spiculated;
    pneumonia is a large patchy ground-glass opacity with a few consolidated
    cores. Lesions lie inside a lung, either side.

    Args:
        out_dir: Folder to write ``images/`` and ``masks/`` into.
        n_per_class: Images per class.
        size: Image width and height in pixels.
        seed: Data set seed.
        classes: Subset of the class folders to write.
        lesion_scale: (size factor, contrast factor) of every lesion; (1.0, 1.0)
            draws them as their style says.
        start_index: Index of the first image of each class; the files are
            ``<class>_<start_index:04d>.png`` onwards, each exactly as in a set
            starting at 0.

    Returns:
        ``out_dir`` as a Path.
    """
    return _write_image_set("chest", out_dir, n_per_class, size, seed, classes, lesion_scale, start_index)


def make_multi_organ(
    out_dir,
    n_per_class: int,
    size: int = 128,
    seed: int = 0,
    lesion_scale: Sequence[float] = (1.0, 1.0),
    start_index: int = 0,
) -> Path:
    """Write the 8 organ x tumour classes of the multi-organ study (seed 003).

    Brain (axial MRI), breast (mammogram), kidney (abdominal CT) and lung
    (chest CT), each with and without a tumour, in the order of
    ``PHANTOM_KINDS["multi_organ"].classes``.

    Args:
        out_dir: Folder to write ``images/`` and ``masks/`` into.
        n_per_class: Images per class.
        size: Image width and height in pixels.
        seed: Data set seed.
        lesion_scale: (size factor, contrast factor) of every lesion; (1.0, 1.0)
            draws them as their style says.
        start_index: Index of the first image of each class; the files are
            ``<class>_<start_index:04d>.png`` onwards, each exactly as in a set
            starting at 0.

    Returns:
        ``out_dir`` as a Path.
    """
    classes = PHANTOM_KINDS["multi_organ"].classes
    return _write_image_set("multi_organ", out_dir, n_per_class, size, seed, classes, lesion_scale, start_index)


def make_chest_volumes(
    out_dir,
    n_per_class: int,
    shape: Sequence[int] = (64, 64, 32),
    seed: int = 0,
    classes: Sequence[str] = ("normal", "tumor"),
    lesion_scale: Sequence[float] = (1.0, 1.0),
    start_index: int = 0,
) -> Path:
    """Write 3D chest CT phantoms as DICOM series, with lesion masks.

    Each volume is one series of single-slice CT files with deterministic
    UIDs, fixed dates and random (not slice-ordered) file names; see
    :mod:`common.data.phantoms` for the slice order convention. ``tumor``
    volumes hold a 3D nodule in one lung.

    Args:
        out_dir: Folder to write ``series/`` and ``masks/`` into.
        n_per_class: Volumes per class.
        shape: (H, W, D) voxels.
        seed: Data set seed.
        classes: Subset of the class folders to write.
        lesion_scale: (size factor, contrast factor) of every lesion; (1.0, 1.0)
            draws them as their style says. Another scale also gives the
            lesion series other UIDs, so they never pass for the unscaled ones
            (lesion-free series are the same images, with the same UIDs).
        start_index: Index of the first volume of each class; the cases are
            ``<class>_<start_index:04d>`` onwards, each exactly as in a set
            starting at 0 (pixels, UIDs and file names).

    Returns:
        ``out_dir`` as a Path.
    """
    kind = "chest_volumes"
    classes = _check_parameters(kind, n_per_class, seed, classes, start_index)
    shape = _check_shape(shape, 3)
    scale = LesionScale.of(lesion_scale)
    grid = Grid.for_shape(shape)
    out_dir = Path(out_dir)
    for class_name in classes:
        for index in _indices(start_index, n_per_class):
            case_id = f"{class_name}_{index:04d}"
            phantom = render_phantom(kind, class_name, index, shape, seed, scale)
            entropy = ["camstudy-phantom", kind, str(seed), case_id]
            if not scale.is_identity and PHANTOM_KINDS[kind].scenes[class_name].lesion is not None:
                entropy.append(f"lesion_scale={scale.size!r},{scale.contrast!r}")
            write_ct_case(out_dir, class_name, case_id, phantom, grid, entropy)
    return out_dir


_CHEST = {"normal": None, "benign": "benign_nodule", "malignant": "malignant_nodule", "pneumonia": "pneumonia"}
_ORGANS = {  # organ -> (scene, tumour style, window)
    "brain": (brain_scene, "brain_tumour", None),
    "breast": (breast_scene, "breast_mass", None),
    "kidney": (kidney_scene, "kidney_tumour", ABDOMEN_WINDOW_HU),
    "lung": (chest_scene, "lung_nodule", CHEST_WINDOW_HU),
}

PHANTOM_KINDS: dict[str, PhantomKind] = {
    "chest": PhantomKind(
        make_chest_slices, {name: Scene(chest_scene, style, CHEST_WINDOW_HU) for name, style in _CHEST.items()}
    ),
    "multi_organ": PhantomKind(
        make_multi_organ,
        {
            f"{organ}_{suffix}": Scene(scene, style if has_tumour else None, window)
            for organ, (scene, style, window) in _ORGANS.items()
            for suffix, has_tumour in (("tumor", True), ("no_tumor", False))
        },
    ),
    "chest_volumes": PhantomKind(
        make_chest_volumes,
        {
            "normal": Scene(chest_scene, None, None),
            "tumor": Scene(chest_scene, "volume_nodule", None),
        },
    ),
}


def phantom_kind(kind: str) -> PhantomKind:
    """The registry entry of ``kind``; raises ParameterError for an unknown kind."""
    if kind not in PHANTOM_KINDS:
        raise ParameterError(f"Unknown phantom kind {kind!r}; choose from {sorted(PHANTOM_KINDS)}.")
    return PHANTOM_KINDS[kind]
