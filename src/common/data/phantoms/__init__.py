"""Deterministic phantom data sets: the embedded default data of the study.

A new user runs every experiment without a download on phantoms drawn here.
Each image is rendered from its own random generator seeded with
``(seed, kind, class name, index)``, so an image never depends on how many
others are drawn, and the same seed gives byte-identical files.

All geometry lives in *phantom units*: the image width spans [-1, 1], so shapes
keep their proportions at any pixel size. CT scenes are rendered in Hounsfield
units (HU) and windowed to 8 bits for the PNG data sets; MRI and mammography
scenes are rendered directly as intensities in [0, 1].

Layouts (the same as the real class-folder data sets, plus lesion masks):

* 2D kinds (``chest``, ``multi_organ``)::

      out_dir/images/<class>/<class>_<i:04d>.png   8-bit greyscale
      out_dir/masks/<class>/<class>_<i:04d>.png    0/255 lesion mask (all 0 without lesion)

* ``chest_volumes``::

      out_dir/series/<class>/<case_id>/<random hex>.dcm   one CT slice per file
      out_dir/masks/<class>/<case_id>.npz                 key "mask", uint8 (H, W, D)

  with ``case_id = <class>_<i:04d>``. File names are random, so their order is
  not the slice order. Depth index ``d`` of a volume (and of its mask) is the
  slice with InstanceNumber ``d + 1``, whose ImagePositionPatient z is
  ``z0 + d * SpacingBetweenSlices``: z *increases* with InstanceNumber (from
  the lung bases towards the apices), so sorting by InstanceNumber and sorting
  by ascending z give the same order. Stored pixels are uint16 with
  HU = value * RescaleSlope + RescaleIntercept (slope 1, intercept -1024).

:func:`ensure_phantoms` generates a kind once into a folder named after its
parameters and reuses it afterwards; :data:`PHANTOM_KINDS` is the registry.

Modules (the public API below is re-exported here, so ``phantoms.ensure_phantoms`` etc. work):

* :mod:`~common.data.phantoms.geometry`: sampling grid, outlines, pose, smooth
  noise, vessel trees;
* :mod:`~common.data.phantoms.lesions`: lesion styles and lesion painting;
* :mod:`~common.data.phantoms.scenes`: chest, brain, breast and kidney scenes;
* :mod:`~common.data.phantoms.writers`: PNG pairs and DICOM CT series;
* :mod:`~common.data.phantoms.sets`: the kinds registry, rendering, the ``make_*`` makers;
* :mod:`~common.data.phantoms.cache`: :func:`ensure_phantoms`.
"""

from common.data.phantoms.cache import MARKER_NAME, PHANTOM_VERSION, ensure_phantoms
from common.data.phantoms.geometry import VOLUME_Z_SPAN
from common.data.phantoms.scenes import Phantom
from common.data.phantoms.sets import (
    ABDOMEN_WINDOW_HU,
    CHEST_WINDOW_HU,
    PHANTOM_KINDS,
    PhantomKind,
    make_chest_slices,
    make_chest_volumes,
    make_multi_organ,
    render_phantom,
)
from common.data.phantoms.writers import HU_INTERCEPT, MM_PER_UNIT

__all__ = [
    "ABDOMEN_WINDOW_HU",
    "CHEST_WINDOW_HU",
    "HU_INTERCEPT",
    "MARKER_NAME",
    "MM_PER_UNIT",
    "PHANTOM_KINDS",
    "PHANTOM_VERSION",
    "VOLUME_Z_SPAN",
    "Phantom",
    "PhantomKind",
    "ensure_phantoms",
    "make_chest_slices",
    "make_chest_volumes",
    "make_multi_organ",
    "render_phantom",
]
