"""Shared package of the Grad-CAM tumour-detection reproduction study.

Every notebook is a narrative of calls into these modules; the CLI
(``camstudy``) and the app hold no logic of their own.

Sub-packages, by concern:
    config: the registry (``registry.yaml``: experiments, profiles, parameters,
        data sets, the papers' numbers) and the typed run parameters it resolves.
    data: class folders, DICOM series, splits, audits, the ``tf.data`` pipeline,
        augmentation, manifests, downloads and the embedded phantoms.
    models: backbones, heads and the papers' own CNNs.
    training: seeds, strategies and precision (runtime); compile, fit and predict (fit).
    explain: CAM methods, the one explanation driver, scores, overlays.
    evaluation: the ``Estimate`` value type, classification metrics, intervals, tables.
    experiments: the steps notebooks call, one module per kind of study.
    report: the run recorder (``metrics.json``, model card), figures and the book.
    predict: a saved run's model on new files (``camstudy predict`` and the app).

Top-level modules: ``cli`` (argument parsing), ``runner`` (papermill runs that
never lose earlier results), ``bench`` (performance ratios), ``app`` (the
Streamlit page) and ``errors``.

How data flows: ``config`` resolves an experiment, profile and overrides into
run parameters; ``runner`` executes ``notebooks/<id>.ipynb`` with them, whose
cells call ``experiments`` (data -> models -> training -> evaluation ->
explain); the notebook's :class:`~common.report.results.RunRecorder` writes
``results/<id>/metrics.json``, its figures and the saved model; and
``report.book`` builds the Jupyter Book from those results.
"""

__version__ = "0.1.0"

from common import quiet as _quiet  # noqa: E402 - after the package's metadata, before any sub-package

_quiet.quiet_kernel()  # a notebook kernel: TensorFlow loads quietly before any module imports it
