"""A tiny cross-validation of the phantom volumes, once per test module: fixtures of the volume tests.

Test modules load them with ``pytest_plugins = ["tests.data.volume_fixtures", "tests.experiments.volume_fixtures"]``
(``samples`` comes from the first).
"""

import pytest

from common.data import volume_sets
from common.experiments import cross_validation
from tests.data.volume_phantoms import INPUT_SHAPE
from tests.experiments.volume_runs import tiny_model, tiny_params


@pytest.fixture(scope="module")
def inputs(samples):
    """The phantoms at the tiny input shape."""
    return volume_sets.load_volumes(samples, INPUT_SHAPE)


@pytest.fixture(scope="module")
def masks(samples):
    """The phantoms' lesion masks at the tiny input shape."""
    return volume_sets.load_masks(samples, INPUT_SHAPE)


@pytest.fixture(scope="module")
def cv_dir(tmp_path_factory):
    """Where the tiny cross-validation writes its folds."""
    return tmp_path_factory.mktemp("cv")


@pytest.fixture(scope="module")
def cv(samples, inputs, cv_dir):
    """A two-fold, one-epoch cross-validation of :func:`tests.experiments.volume_runs.tiny_model`."""
    return cross_validation.cross_validate(tiny_params(), samples, inputs, tiny_model, out_dir=cv_dir)
