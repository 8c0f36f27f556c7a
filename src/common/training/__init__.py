"""Training: how a run computes (``runtime``: seeds, strategy, precision) and the one training loop (``fit``)."""
