"""Tests of common.report.figures: every figure kind draws and saves a real PNG.

Set FIGURE_DIR to keep the PNGs for looking at them (default: pytest's tmp_path).
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.errors import DataError
from common.report import figures
from common.report.figures import _shared
from tests.scores import three_class_scores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figure_dir(tmp_path):
    return Path(os.environ.get("FIGURE_DIR", tmp_path / "nested" / "figures"))


def metrics_entry(value, half_width=0.05):
    return {"value": value, "ci95": [value - half_width, min(value + half_width, 1.0)]}


def history(epochs=6, offset=0.0):
    steps = np.arange(1, epochs + 1)
    return {
        "accuracy": list(0.5 + 0.4 * (1 - np.exp(-steps / 2)) - offset),
        "val_accuracy": list(0.5 + 0.35 * (1 - np.exp(-steps / 2)) - offset),
        "loss": list(np.exp(-steps / 3) + offset),
        "val_loss": list(np.exp(-steps / 3) + 0.1 + offset),
    }


def disc(size=64, radius=12, centre=(32, 36)):
    rows, cols = np.mgrid[:size, :size]
    return ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2).astype(float)


def phantom_volume(shape=(48, 48, 20)):
    rows, cols, depth = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    body = (rows**2 + cols**2 < 0.8) * 400.0 - 1000.0
    lesion = ((rows - 0.2) ** 2 + (cols + 0.3) ** 2 + depth**2) < 0.05
    cam = np.exp(-((rows - 0.2) ** 2 + (cols + 0.3) ** 2 + depth**2) / 0.1)
    return body + lesion * 300.0, cam, lesion.astype(np.uint8)


# The ratios of a bench.json record (common.bench), one below its target; other keys are ignored.
BENCH_RECORD = {
    "quick": True,
    "pipeline_vs_model": {"value": 7.5, "target": 3.0, "meets_target": True, "cold_ratio": 1.2},
    "pipeline_vs_in_memory": {"value": 0.9, "target": 0.95, "meets_target": False},
    "batched_cam_speedup": {"value": 12.0, "target": 5.0, "meets_target": True, "batch_size": 32},
    "machine": {"cpu_count": 2},
}


def gray_image(seed):
    rng = np.random.default_rng(seed)
    return np.clip(disc() * 150 + rng.normal(60, 20, (64, 64)), 0, 255)


def make_cases():
    """(name, zero-argument call that draws into path) for every figure kind."""
    labels, probs = three_class_scores()
    binary_labels = (labels == 2).astype(int)
    model_names = [f"Model-{k}" for k in range(9)]
    models = {
        name: {
            m: metrics_entry(0.7 + 0.02 * k) for m in ("accuracy", "precision", "recall", "specificity", "f1", "auc")
        }
        for k, name in enumerate(model_names)
    }
    volume, cam, mask = phantom_volume()
    cam_2d = np.exp(-((np.mgrid[:64, :64] - np.array([32, 36])[:, None, None]) ** 2).sum(axis=0) / 200.0)
    overlay = np.stack([gray_image(0)] * 3, axis=-1) * 0.6 + plt.get_cmap("jet")(cam_2d)[..., :3] * 255 * 0.4
    cm = [[28, 2, 0], [3, 25, 2], [1, 4, 25]]
    names = ["normal", "benign", "malignant"]
    return {
        "training_curves": lambda path: figures.training_curves(history(), title="ResNet-50", path=path),
        "training_curves_grid": lambda path: figures.training_curves_grid(
            {name: history(offset=0.01 * k) for k, name in enumerate(model_names)}, path=path
        ),
        "confusion_matrix": lambda path: figures.confusion_matrix(cm, names, path=path, title="DenseNet121"),
        "confusion_matrix_grid": lambda path: figures.confusion_matrix_grid(
            {name: (cm, names) for name in model_names[:4]}, path=path
        ),
        "roc_curves_binary": lambda path: figures.roc_curves(
            binary_labels, probs[:, 2], ["no cancer", "cancer"], path=path, title="binary"
        ),
        "roc_curves": lambda path: figures.roc_curves(labels, probs, names, path=path),
        "roc_curves_models": lambda path: figures.roc_curves_models(
            {
                name: (binary_labels, probs[:, 2] + 0.05 * k * np.random.default_rng(k).random(90))
                for k, name in enumerate(model_names)
            },
            path=path,
        ),
        "metric_bars": lambda path: figures.metric_bars(models, path=path, title="test set"),
        "bar_with_reference": lambda path: figures.bar_with_reference(
            {organ: metrics_entry(0.8 + 0.02 * k) for k, organ in enumerate(["lung", "liver", "kidney", "brain"])},
            {"lung": 0.97, "liver": 0.95, "kidney": 0.96, "pancreas": 0.9},
            ylabel="accuracy",
            path=path,
        ),
        "image_grid": lambda path: figures.image_grid(
            [gray_image(k) for k in range(6)],
            [f"malignant_{k:04d}.png" for k in range(6)],
            masks=[disc()] * 5 + [None],
            ncols=3,
            path=path,
        ),
        "cam_grid": lambda path: figures.cam_grid(
            [
                {
                    "image": gray_image(k),
                    "cam": cam_2d,
                    "overlay": overlay,
                    "mask": disc(),
                    "title": f"true malignant / predicted malignant (p = 0.9{k})",
                }
                for k in range(2)
            ],
            path=path,
            cam_label="Grad-CAM",
        ),
        "volume_views": lambda path: figures.volume_views(volume, cam=cam, mask=mask, path=path),
        "volume_views_mip": lambda path: figures.volume_views(volume, cam=cam, projection="max", path=path),
        "slice_montage": lambda path: figures.slice_montage(volume, cam=cam, mask=mask, n=8, path=path),
        "bench_ratios": lambda path: figures.bench_ratios(BENCH_RECORD, path=path),
    }


@pytest.mark.parametrize("kind", list(make_cases()))
def test_each_figure_returns_a_figure_and_writes_a_png(kind, figure_dir):
    path = figure_dir / f"fig_{kind}.png"
    figure = make_cases()[kind](path)
    try:
        assert isinstance(figure, plt.Figure)
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 1024
    finally:
        plt.close(figure)


def test_figure_without_path_writes_nothing(tmp_path):
    figure = figures.training_curves(history())
    try:
        assert isinstance(figure, plt.Figure)
        assert list(tmp_path.iterdir()) == []
        # Two panels: accuracy and loss, each with train and validation lines.
        assert [len(axis.lines) for axis in figure.axes] == [2, 2]
    finally:
        plt.close(figure)


def test_inline_backend_shows_the_saved_png_and_draws_once(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(_shared, "_inline_backend", lambda: True)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    path = tmp_path / "curves.png"
    figure = figures.training_curves(history(), path=path)
    # The notebook gets the file's bytes, and the figure is closed so the backend does not draw it again.
    assert len(shown) == 1 and shown[0].data == path.read_bytes()
    assert figure.number not in plt.get_fignums()
    monkeypatch.setattr(_shared, "_inline_backend", lambda: False)
    figure = figures.training_curves(history(), path=path)
    try:
        assert len(shown) == 1 and figure.number in plt.get_fignums()
    finally:
        plt.close(figure)


def test_image_grid_wraps_titles_wider_than_a_panel():
    images = np.zeros((2, 8, 8))
    long = "MobileNetV2 at block_13_expand_relu (p = 0.71)"
    figure = figures.image_grid(images, [long, "cancer"], ncols=2)
    try:
        titles = [axis.get_title() for axis in figure.axes]
        assert titles[0].replace("\n", " ") == long and "\n" in titles[0]
        assert titles[1] == "cancer"
    finally:
        plt.close(figure)


def test_roc_curves_show_one_curve_per_class_or_one_for_binary():
    labels, probs = three_class_scores()
    multi = figures.roc_curves(labels, probs, ["normal", "benign", "malignant"])
    binary = figures.roc_curves((labels == 2).astype(int), probs[:, 2], ["rest", "malignant"])
    try:
        assert len(multi.axes[0].lines) == 3 + 1  # curves + chance line
        assert len(binary.axes[0].lines) == 1 + 1
        assert "malignant (AUC = " in binary.axes[0].get_legend().get_texts()[0].get_text()
    finally:
        plt.close(multi)
        plt.close(binary)


def test_orthogonal_views_shapes_and_projection():
    volume = np.zeros((6, 5, 4))
    volume[1, 2, 3] = 7.0
    middle = figures.orthogonal_views(volume, "slice")
    maximum = figures.orthogonal_views(volume, "max")
    assert middle["axial"].shape == (6, 5) and middle["coronal"].shape == (4, 5) and middle["sagittal"].shape == (4, 6)
    assert middle["axial"].max() == 0.0
    assert maximum["axial"][1, 2] == 7.0 and maximum["coronal"][3, 2] == 7.0 and maximum["sagittal"][3, 1] == 7.0


def test_bad_figure_inputs_raise_data_errors():
    with pytest.raises(DataError, match="accuracy"):
        figures.training_curves({"loss": [1.0, 0.5]})
    with pytest.raises(DataError, match="class names"):
        figures.confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"])
    with pytest.raises(DataError, match="projection"):
        figures.orthogonal_views(np.zeros((4, 4, 4)), "mean")


def test_bench_ratios_draw_one_panel_per_ratio_with_its_target_line():
    figure = figures.bench_ratios(BENCH_RECORD)
    try:
        assert [axis.get_title() for axis in figure.axes] == [
            "pipeline vs model",
            "pipeline vs in memory",
            "batched cam speedup",
        ]
        for axis, key in zip(figure.axes, ("pipeline_vs_model", "pipeline_vs_in_memory", "batched_cam_speedup")):
            (bar,) = axis.patches
            (target_line,) = axis.lines
            assert bar.get_height() == BENCH_RECORD[key]["value"]
            assert target_line.get_ydata()[0] == BENCH_RECORD[key]["target"]
        # Green when the target is met, red when it is missed.
        colours = [axis.patches[0].get_facecolor()[:3] for axis in figure.axes]
        assert colours[0] == colours[2] != colours[1]
    finally:
        plt.close(figure)
    with pytest.raises(DataError, match="no ratio"):
        figures.bench_ratios({"quick": True})
