"""Tests of common.experiments.contour_maps: the image contour against Grad-CAM and the lesion, and its figure."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.config import registry
from common.experiments import contour_maps, explaining

SIZE = 64


@pytest.fixture
def params():
    return dataclasses.replace(registry.resolve("multi-organ", "smoke"), n_resamples=200, cam_fraction=0.5)


def disc(centre, radius):
    rows, cols = np.mgrid[:SIZE, :SIZE]
    return np.hypot(rows - centre[0], cols - centre[1]) < radius


def square(top, left, side):
    region = np.zeros((SIZE, SIZE), bool)
    region[top : top + side, left : left + side] = True
    return region


def scan(blob, seed):
    """A grey body on black air with a bright blob (the tumour)."""
    noise = 0.02 * np.random.default_rng(seed).standard_normal((SIZE, SIZE))
    image = np.where(disc((32, 32), 28), 0.4, 0.0)
    return np.clip(np.where(blob, 0.9, image) + noise, 0, 1)


def lesion_scans(params, blobs, classes, mask_paths=None):
    """Test images with the given tumours, each predicted as the given class (probability 0.9)."""
    display = np.stack([scan(blob, seed) for seed, blob in enumerate(blobs)])
    indices = [params.classes.index(name) for name in classes]
    probabilities = np.full((len(blobs), len(params.classes)), 0.1 / (len(params.classes) - 1))
    probabilities[np.arange(len(blobs)), indices] = 0.9
    samples = pd.DataFrame(
        {
            "path": [f"/data/{name}/{name}_{i:04d}.png" for i, name in enumerate(classes)],
            "label": list(classes),
            "label_index": indices,
            "mask_path": mask_paths or [None] * len(blobs),
        }
    )
    return explaining.TestImages(samples, display[..., None], display, probabilities, has_masks=mask_paths is not None)


def test_organ_of_reads_the_class_name():
    assert contour_maps.organ_of("lung_tumor") == "lung"
    assert contour_maps.organ_of("Kidney No Tumour") == "kidney"
    assert contour_maps.organ_of("malignant") is None


def test_the_contour_comes_from_the_image_not_from_the_cam(params):
    # The tumour is bright at the top left; the heatmap points at the bottom right, away from it.
    blob = disc((20, 20), 6)
    test = lesion_scans(params, [blob, blob], ["brain_tumor", "breast_tumor"])
    cams = np.zeros((2, SIZE, SIZE), np.float32)
    cams[:, 40:50, 40:50] = 1.0
    compared = contour_maps.ContourComparison.of(params, test, np.array([0, 1]), cams, np.stack([blob, blob]))
    # Taken from the image, the contour lies on the tumour and nowhere near the heatmap.
    assert np.all(compared.overlaps["contour_vs_lesion"] > 0.8)
    np.testing.assert_array_equal(compared.overlaps["contour_vs_cam"], [0.0, 0.0])
    np.testing.assert_array_equal(compared.overlaps["cam_vs_lesion"], [0.0, 0.0])
    # The figure's green contour surrounds the tumour, not the heatmap's region.
    panels, titles, outlines = contour_maps.contour_panels(params, test, np.array([0]), cams[:1])
    green = (panels[2][..., 1] == 255) & (panels[2][..., 0] == 0)
    rows, cols = np.nonzero(green)
    assert rows.max() < 30 and cols.max() < 30


def test_overlaps_on_constructed_regions(params):
    # The tumour is a bright square; the thresholded heatmap covers its top half and as much again above it.
    tumour = square(20, 20, 10)
    test = lesion_scans(params, [tumour, tumour, tumour], ["brain_tumor", "kidney_tumor", "kidney_tumor"])
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[15:25, 20:30] = 1.0  # rows 15-24: 50 pixels on the tumour, 50 above it
    cam[30:40, 40:50] = 0.4  # below half the peak: outside the region
    cams = np.stack([cam, cam, np.zeros_like(cam)])  # the third heatmap is empty
    compared = contour_maps.ContourComparison.of(params, test, np.arange(3), cams, np.stack([tumour] * 3))
    np.testing.assert_allclose(compared.overlaps["contour_vs_lesion"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(compared.overlaps["cam_vs_lesion"], [50 / 150, 50 / 150, 0.0])
    np.testing.assert_allclose(compared.overlaps["contour_vs_cam"], [50 / 150, 50 / 150, 0.0])
    assert compared.organs == ("brain", "kidney", "kidney") and compared.found.all()

    record = compared.record()
    assert record["n_images"] == 3 and record["cam_fraction"] == 0.5 and record["method"] == "gradcam"
    assert list(record["summary"]) == ["all", "brain", "kidney"]
    overall = record["summary"]["all"]
    assert overall["cam_vs_lesion"]["value"] == pytest.approx(100 / 450) and overall["cam_vs_lesion"]["n"] == 3
    low, high = overall["cam_vs_lesion"]["ci95"]
    assert 0.0 <= low <= 100 / 450 <= high <= 1 / 3
    assert record["summary"]["kidney"]["contour_vs_cam"]["n"] == 2
    assert record["summary"]["kidney"]["contour_vs_cam"]["value"] == pytest.approx(50 / 300)
    assert record["contour_found"]["value"] == 1.0 and record["contour_found"]["n"] == 3
    assert record["contour_minus_cam_vs_lesion"]["value"] == pytest.approx(1 - 100 / 450)
    assert record["images"][0] == {
        "file": "brain_tumor_0000.png",
        "label": "brain_tumor",
        "predicted_organ": "brain",
        "contour_found": True,
        "contour_vs_cam": pytest.approx(50 / 150),
        "contour_vs_lesion": pytest.approx(1.0),
        "cam_vs_lesion": pytest.approx(50 / 150),
    }
    assert "image contour overlaps the tumours more" in compared.sentence()
    table = compared.table()
    assert list(table.index) == ["all", "brain", "kidney"] and table.loc["kidney", "images"] == 2


def test_sentence_says_so_when_the_interval_cannot_tell(params):
    blob = disc((20, 20), 6)
    test = lesion_scans(params, [blob, blob], ["brain_tumor", "brain_tumor"])
    cams = np.stack([blob, blob]).astype(np.float32)  # the heatmap is the tumour: both views agree
    compared = contour_maps.ContourComparison.of(params, test, np.arange(2), cams, np.stack([blob, blob]))
    assert np.all(compared.overlaps["contour_vs_cam"] > 0.8)
    assert "cannot tell" in compared.sentence()


def test_contour_panels_show_four_views_and_outline_the_lesion(params, tmp_path):
    blob = disc((20, 20), 6)
    mask_path = tmp_path / "mask.png"
    Image.fromarray((blob * 255).astype(np.uint8)).save(mask_path)
    test = lesion_scans(
        params, [blob, np.zeros((SIZE, SIZE), bool)], ["lung_tumor", "lung_no_tumor"], [str(mask_path), None]
    )
    cams = np.zeros((2, SIZE, SIZE), np.float32)
    cams[:, 10:30, 10:30] = 1.0
    panels, titles, outlines = contour_maps.contour_panels(params, test, np.array([0, 1]), cams)
    assert len(panels) == len(titles) == len(outlines) == 8
    assert np.array_equal(panels[0], test.display[0])
    assert titles[:4] == [
        "true lung_tumor\npredicted lung_tumor (p = 0.90)",
        "Grad-CAM",
        titles[2],
        "Grad-CAM outline at 50% of max (yellow)",
    ]
    assert titles[2] == "image contour (green)"  # the bright disc among the noise is found
    assert np.array_equal(outlines[0], blob) and outlines[1:4] == [None] * 3 and outlines[4:] == [None] * 4
    # The CAM outline is yellow, on the fourth panel; an empty map has none, and its title says so.
    yellow = (panels[3][..., 0] == 255) & (panels[3][..., 1] == 255) & (panels[3][..., 2] == 0)
    assert yellow.any()
    _, empty_titles, _ = contour_maps.contour_panels(params, test, np.array([0]), np.zeros((1, SIZE, SIZE)))
    assert empty_titles[3] == "Grad-CAM: empty map, no outline"


def test_compared_images_come_in_turn_from_each_tumour_class(params, tmp_path):
    classes = ["brain_tumor"] * 5 + ["kidney_tumor"] * 5 + ["lung_tumor"] * 3 + ["brain_no_tumor"] * 2
    blobs = [disc((20, 20), 6)] * len(classes)
    mask = tmp_path / "m.png"
    Image.fromarray((blobs[0] * 255).astype(np.uint8)).save(mask)
    test = lesion_scans(params, blobs, classes, [str(mask)] * 13 + [None] * 2)
    assert contour_maps.compared_images(dataclasses.replace(params, n_explain=4), test)[0].tolist() == [0, 1, 5, 10]
    assert contour_maps.compared_images(dataclasses.replace(params, n_explain=7), test)[0].tolist() == [
        0,
        1,
        2,
        5,
        6,
        10,
        11,
    ]
    # Misclassified images are left out where only correct answers are explained.
    test.probabilities[1] = test.probabilities[1][::-1]
    chosen, _ = contour_maps.compared_images(dataclasses.replace(params, n_explain=4, explain_only_correct=True), test)
    assert chosen.tolist() == [0, 2, 5, 10]


def test_compute_takes_gradcam_of_the_predicted_class_on_the_chosen_images(params, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(len(params.classes), activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(features)
    )
    model = keras.Model(inputs, outputs)
    blob, empty = disc((20, 20), 6), np.zeros((SIZE, SIZE), bool)
    paths = []
    for name, mask in (("a.png", blob), ("b.png", empty), ("c.png", blob)):
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    test = lesion_scans(params, [blob, empty, blob], ["brain_tumor", "breast_tumor", "lung_tumor"], paths)
    compared = contour_maps.ContourComparison.compute(params, model, test, "conv")
    # The image with an empty mask has no lesion to overlap: left out.
    assert compared.files == ("brain_tumor_0000.png", "lung_tumor_0002.png")
    assert compared.labels == ("brain_tumor", "lung_tumor") and compared.n == 2
    assert np.all(compared.overlaps["contour_vs_lesion"] > 0.8)
