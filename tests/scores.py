"""Synthetic three-class labels and probabilities shared by the metric and figure tests."""

import numpy as np


def three_class_scores(n: int = 90, seed: int = 0, boost: float = 0.5):
    """Random labels and Dirichlet probabilities with ``boost`` added to the true class, renormalised."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet([1, 1, 1], n)
    probs[np.arange(n), labels] += boost
    return labels, probs / probs.sum(axis=1, keepdims=True)
