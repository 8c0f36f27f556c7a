"""Evaluation: estimates with confidence intervals, classification metrics, comparison tables.

Modules:
    estimate: :class:`~common.evaluation.estimate.Estimate`, the value type of every
        reported number with its interval, and its ``metrics.json`` record.
    intervals: bootstrap over units (images or groups), DeLong, Wilson and t intervals.
    classification: metrics of a classifier's probabilities with their intervals.
    tables: display and comparison tables over models, folds and papers.
"""
