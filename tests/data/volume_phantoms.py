"""Sizes of the tiny chest-volume phantoms the volume tests write (fixtures in :mod:`tests.data.volume_fixtures`)."""

N_PER_CLASS = 4
PHANTOM_SHAPE = (24, 24, 8)
INPUT_SHAPE = (16, 16, 8)
LABEL_MAP = {"normal": "normal", "tumor": "tumor"}
