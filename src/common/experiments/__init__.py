"""Experiments: the steps the notebooks call, on top of every other sub-package.

``session.start`` opens a run; the other modules hold one experiment's engine each
(the 2D classifiers, the nine-model comparison, the 3D cross-validation, the organ
decomposition). A notebook is a narrative of short calls into these modules.
"""
