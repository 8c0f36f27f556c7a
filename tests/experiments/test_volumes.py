"""Tests of common.experiments.volumes: out-of-fold explanations of a tiny cross-validation of phantoms."""

import dataclasses

import numpy as np
import pytest

from common.experiments import volumes
from tests.data.volume_phantoms import INPUT_SHAPE
from tests.experiments.volume_runs import tiny_params

# fixtures: phantom_dir, samples; inputs, masks, cv_dir, cv
pytest_plugins = ["tests.data.volume_fixtures", "tests.experiments.volume_fixtures"]


@pytest.fixture(scope="module")
def tumours(samples):
    return np.flatnonzero(samples["label_index"].to_numpy() == 1)


@pytest.fixture(scope="module")
def known_cv(cv, samples, tumours):
    """Pretend every test volume but the first tumour was predicted right,
    so which volumes get explained, and by which fold's model, is known."""
    truth = samples["label_index"].to_numpy()
    for fold in cv.folds:
        fold.probabilities = np.eye(2, dtype=np.float32)[truth[fold.test_positions]]
        fold.probabilities[fold.test_positions == tumours[0]] = [1.0, 0.0]
    return cv


def test_volumes_are_explained_out_of_fold(known_cv, inputs, samples, masks, tumours):
    explained = volumes.explain_folds(tiny_params(), known_cv, inputs, samples, masks)
    np.testing.assert_array_equal(explained.positions, tumours[1:])
    cams = explained.cams["gradcam"]
    assert cams.shape == (len(tumours) - 1, *INPUT_SHAPE) and 0 <= cams.min() and cams.max() <= 1
    assert explained.scores["gradcam"]["energy_share"]["n"] == len(tumours) - 1
    one = volumes.fold_cam(known_cv, inputs, int(tumours[1]), 1)
    np.testing.assert_allclose(one, cams[0], atol=1e-5)
    assert volumes.example_volume(known_cv, samples, "tumor") == tumours[1]


def test_layer_explanations_record_scores_per_layer(known_cv, inputs, samples, masks, tumours):
    params = dataclasses.replace(tiny_params(), compare_cam_layer=None)
    explained = volumes.explain_layers(params, known_cv, inputs, samples, masks, "conv3d_1")
    assert list(explained.by_layer) == ["conv3d_1"] and explained.scored
    records = explained.records()
    assert list(records) == ["CNN3D"]
    assert records["CNN3D"] is explained.by_layer["conv3d_1"].scores
    table = explained.table(known_cv.folds[0].model)
    assert list(table.index) == ["conv3d_1 (16, 16, 8), gradcam"]
    assert explained.summary().startswith(f"{len(tumours) - 1} tumour volumes; energy share of a uniform heatmap")
    nothing = volumes.explain_layers(params, known_cv, inputs, samples, None, "conv3d_1")
    assert not nothing.scored and nothing.records() == {}


def test_shown_volumes_are_explained_for_their_own_class(known_cv, inputs, samples, tumours):
    shown = volumes.shown_volumes(tiny_params(), known_cv, samples, inputs, "conv3d_1")
    assert list(shown) == ["tumour", "normal"]
    tumour, normal = shown["tumour"], shown["normal"]
    assert (tumour.position, tumour.target) == (tumours[1], 1)
    assert normal.target == 0 and samples["label"].iloc[normal.position] == "normal"
    np.testing.assert_array_equal(
        tumour.cam, volumes.fold_cam(known_cv, inputs, tumour.position, 1, "gradcam", "conv3d_1")
    )
    fold = known_cv.fold_of()[tumour.position]
    assert tumour.caption == f"{samples.case.iloc[tumour.position]}, fold {fold}: predicted tumor (p = 1.00)"
