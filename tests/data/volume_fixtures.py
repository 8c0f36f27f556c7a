"""Tiny chest-volume phantoms written once per test module: the fixtures of the volume tests.

Test modules load them with ``pytest_plugins = ["tests.data.volume_fixtures"]``.
"""

import pytest

from common.data import phantoms, volume_sets
from tests.data.volume_phantoms import LABEL_MAP, N_PER_CLASS, PHANTOM_SHAPE


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    """Four normal and four tumour DICOM series with their masks."""
    return phantoms.make_chest_volumes(tmp_path_factory.mktemp("volumes"), N_PER_CLASS, PHANTOM_SHAPE)


@pytest.fixture(scope="module")
def samples(phantom_dir):
    """The phantoms' volume table, with mask paths."""
    return volume_sets.load_volume_samples(phantom_dir / "series", LABEL_MAP, mask_root=phantom_dir / "masks")
