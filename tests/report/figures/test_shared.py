"""Tests of common.report.figures._shared: a figure is saved only when given a path, and shown once inline.

The check that bad inputs raise DataError covers the convention every figure module follows, so it sits here.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.errors import DataError
from common.report import figures
from common.report.figures import _shared
from tests.report.figures.helpers import history


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


def test_bad_figure_inputs_raise_data_errors():
    with pytest.raises(DataError, match="accuracy"):
        figures.training_curves({"loss": [1.0, 0.5]})
    with pytest.raises(DataError, match="class names"):
        figures.confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"])
    with pytest.raises(DataError, match="projection"):
        figures.orthogonal_views(np.zeros((4, 4, 4)), "mean")
