"""Tests of common.experiments.detectability: the contrast-detail step of a 2D experiment."""

import numpy as np
import pytest

from common.experiments import detectability, loading


@pytest.fixture
def tiny_test(tiny_params):
    """The tiny iqoth phantom set as one test split, with one-hot (perfect) probabilities."""
    samples = loading.load_samples(tiny_params).samples.assign(split="test").reset_index(drop=True)
    perfect = np.eye(len(tiny_params.classes))[samples["label_index"].to_numpy()]
    return tiny_params, samples, perfect


def test_lesion_set_keeps_the_images_with_a_lesion(tiny_test):
    params, samples, _ = tiny_test
    lesions = detectability.lesion_set(params, samples)
    # iqoth is multiclass: every class with a lesion (benign, malignant), none of the normal images.
    assert set(lesions.samples["label"]) == {"benign", "malignant"}
    assert len(lesions) == int((samples["label"] != "normal").sum())
    assert (lesions.properties["size_px"] > 0).all()


def test_a_perfect_model_is_at_the_ceiling_and_a_harder_stratum_shows_its_limit(tiny_test):
    params, samples, perfect = tiny_test
    asked = []

    def predict_hard(hard):
        asked.append(len(hard))
        wrong = np.eye(len(params.classes))[np.zeros(len(hard), dtype=int)]  # "normal" for every hard lesion
        return {"model": wrong}

    found = detectability.contrast_detail_of(params, samples, {"model": perfect}, predict_hard=predict_hard)
    assert asked and found.hard_stratum == asked[0] > 0
    analysis = found.by_model["model"]
    assert analysis.n == found.hard_stratum + int((samples["label"] != "normal").sum())
    assert not found.at_ceiling()  # the hard lesions are all missed
    record = found.record()
    assert record["hard_stratum"]["n_images"] == found.hard_stratum
    assert "harder, test-only stratum" in found.sentences()


def test_without_a_predictor_the_ceiling_is_said(tiny_test):
    params, samples, perfect = tiny_test
    found = detectability.contrast_detail_of(params, samples, {"model": perfect})
    assert found.at_ceiling() and found.hard_stratum == 0
    assert "no harder stratum" in found.sentences()


def test_pointed_flags_mark_unscored_images_as_missing():
    flags = detectability.pointed_flags(5, [1, 3], [True, False])
    assert np.isnan(flags[[0, 2, 4]]).all()
    assert flags[1] == 1.0 and flags[3] == 0.0


def test_a_binary_run_reads_its_harder_stratum_of_one_class(tmp_path, monkeypatch):
    from common.config import registry

    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    params = registry.resolve("resnet50-gradcam", "smoke", {"n_per_class": 4, "phantom_size": 32})
    hard = detectability.hard_stratum(params)
    # benign and malignant nodules, both "nodule": one label, and none of the lesion-free normal images.
    assert set(hard["label"]) == {"nodule"} and set(hard["split"]) == {"test"}
    assert len(hard) == 2 * detectability.Settings.from_registry().hard_per_class
