"""Tests of common.experiments.nine_models.panels: overlay panels and the heatmap figures."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.errors import DataError
from common.experiments import nine_models


def test_overlay_panels_put_one_row_per_model_under_the_images():
    images = np.zeros((2, 16, 16), np.float32)
    cams = {"A": np.ones((2, 8, 8), np.float32), "B": np.zeros((2, 8, 8), np.float32)}
    masks = np.zeros((2, 16, 16), bool)
    panels = nine_models.overlay_panels(images, cams, masks, {"A": np.array([0.9, 0.6])})
    assert len(panels["images"]) == len(panels["titles"]) == len(panels["masks"]) == 6
    assert panels["titles"] == ["image 1", "image 2", "A (p = 0.90)", "A (p = 0.60)", "B", "B"]
    assert panels["images"][2].shape == (16, 16, 3) and panels["images"][2].dtype == np.uint8
    assert panels["ncols"] == 2
    by_image = nine_models.overlay_panels(images, cams, masks, one_row_per_image=True)
    assert by_image["titles"] == ["image 1", "A", "B", "image 2", "A", "B"] and by_image["ncols"] == 3
    np.testing.assert_array_equal(by_image["images"][1], panels["images"][2])
    with pytest.raises(DataError, match="3 CAMs for 2 images"):
        nine_models.overlay_panels(images, {"A": np.ones((3, 8, 8))})


def test_shown_images_are_read_titled_and_drawn_with_each_models_probability(tmp_path):
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"scan_{index}.png")
        Image.fromarray(np.full((20, 20), 40 * index, np.uint8)).save(paths[-1])
    test = pd.DataFrame({"path": [str(p) for p in paths], "label": ["cancer", "pneumonia", "cancer"]})
    shown = nine_models.ShownImages.load(test, np.array([2, 0]), 16, with_masks=False)
    assert shown.images.shape == (2, 16, 16) and shown.masks is None
    assert shown.titles == ["cancer: scan_2.png", "cancer: scan_0.png"]
    runs = {"A": SimpleNamespace(probabilities=np.array([[0.1, 0.9], [0.5, 0.5], [0.3, 0.7]]))}
    assert shown.probabilities(runs, 1)["A"].tolist() == [0.7, 0.9]
    assert list(shown.probabilities(runs, 1, {"A at x": "A"})) == ["A at x"]
    cams = {"A": np.ones((2, 8, 8), np.float32)}
    figure = shown.draw(cams, tmp_path / "grid.png", "title", shown.probabilities(runs, 1))
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["cancer: scan_2.png", "cancer: scan_0.png", "A (p = 0.70)", "A (p = 0.90)"]
    assert (tmp_path / "grid.png").stat().st_size > 0
    by_image = shown.draw(cams, tmp_path / "layers.png", "layers", one_row_per_image=True)
    assert [axis.get_title() for axis in by_image.axes if axis.get_title()] == ["image 1", "A", "image 2", "A"]
