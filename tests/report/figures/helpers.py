"""A synthetic training history and the PNG check shared by the tests of common.report.figures."""

import matplotlib.pyplot as plt
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The models of the grid figures and the classes of the three-class figures.
MODEL_NAMES = [f"Model-{k}" for k in range(9)]
CLASS_NAMES = ["normal", "benign", "malignant"]


def history(epochs=6, offset=0.0):
    """A Keras-style training history with rising accuracies and falling losses."""
    steps = np.arange(1, epochs + 1)
    return {
        "accuracy": list(0.5 + 0.4 * (1 - np.exp(-steps / 2)) - offset),
        "val_accuracy": list(0.5 + 0.35 * (1 - np.exp(-steps / 2)) - offset),
        "loss": list(np.exp(-steps / 3) + offset),
        "val_loss": list(np.exp(-steps / 3) + 0.1 + offset),
    }


def assert_draws_a_png(draw, path):
    """Check that ``draw(path)`` returns a figure and writes a real PNG to ``path``; close the figure."""
    figure = draw(path)
    try:
        assert isinstance(figure, plt.Figure)
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 1024
    finally:
        plt.close(figure)
