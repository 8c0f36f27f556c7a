"""Keeping libraries' start-up noise off the terminal and out of the book's pages.

TensorFlow writes start-up lines (oneDNN is on, no CUDA driver, cuInit failed,
absl's "before InitializeLog" notice) straight to file descriptor 2 while it loads,
before its logging honours ``TF_CPP_MIN_LOG_LEVEL``. :func:`import_tensorflow`
loads it with those lines kept aside, for the CLI and for every notebook kernel.

A notebook kernel calls :func:`quiet_kernel` when it first imports ``common`` (the
package's ``__init__``), before any module imports TensorFlow: TensorFlow loads
quietly, and the warnings in :data:`WARNING_FILTERS` and the log messages in
:data:`LOG_FILTERS`, each understood, are not shown. Every other warning and log
message still is.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings

# TensorFlow's C++ log level: 3 keeps its E-level lines out too. Those a run meets are harmless:
# "NodeDef mentions attribute use_unbounded_threadpool" (tf.data's graph rewrite of MapDataset),
# "failed call to cuInit" (no GPU here), "oneDNN supports DT_INT32 only ... AVX-512" (a fallback);
# an error that stops TensorFlow raises a Python exception, which the notebook shows.
TF_CPP_MIN_LOG_LEVEL = "3"

# Fixed where they arose rather than filtered: TensorFlow's "triggered tf.function retracing" (the CAM
# explainers' steps, see common.explain.methods._GradientStep) and DeLong's RuntimeWarnings on a test
# split with a single positive or negative (common.evaluation.intervals.delong_interval).
#
# (category as "module.Class", message regex, module regex, why it is not shown). Each matches one
# understood warning by its category, the start of its message and the module it is raised from.
WARNING_FILTERS: tuple[tuple[str, str, str, str], ...] = (
    (
        "tqdm.TqdmWarning",
        r"IProgress not found",
        r"tqdm\.auto$",
        "tqdm.auto asks for ipywidgets, which the study does not install; its bars fall back to text",
    ),
)


def import_tensorflow() -> None:
    """Import TensorFlow and look for GPUs with its C++ start-up lines kept off the terminal.

    TensorFlow writes them (oneDNN is on, no CUDA driver found, cuInit failed) to file
    descriptor 2 before its logging honours ``TF_CPP_MIN_LOG_LEVEL``, so stderr is sent to a
    temporary file meanwhile; the lines are shown after all when the import fails. The
    C++ log level is set to :data:`TF_CPP_MIN_LOG_LEVEL` first, which its later lines honour.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = TF_CPP_MIN_LOG_LEVEL
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# (logger, message regex, why it is not shown): log records of other libraries that are understood.
LOG_FILTERS: tuple[tuple[str, str, str], ...] = (
    (
        "tensorflow",
        r"calls to <function TensorFlowTrainer\.make_predict_function\.<locals>\.one_step_on_data_distributed"
        r" at 0x[0-9a-f]+> triggered tf\.function retracing",
        "Keras builds one predict function per model and TensorFlow counts traces per function code across "
        "models: predicting with nine models in turn (nine-models) looks like retracing, but each traced once",
    ),
)


class MessageFilter(logging.Filter):
    """Drops the log records whose message matches a regular expression (one understood message)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def filter_logs() -> None:
    """Add a :class:`MessageFilter` for each of :data:`LOG_FILTERS` to its logger (once)."""
    for logger_name, pattern, _reason in LOG_FILTERS:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(f, MessageFilter) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(MessageFilter(pattern))


def filter_warnings() -> None:
    """Hide the understood warnings of :data:`WARNING_FILTERS` (each by category, message and module)."""
    import importlib

    for category_path, message, module, _reason in WARNING_FILTERS:
        module_name, _, class_name = category_path.rpartition(".")
        category = getattr(importlib.import_module(module_name), class_name)
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (papermill runs every notebook in one)."""
    return "ipykernel" in sys.modules


def quiet_kernel() -> None:
    """In a notebook kernel: load TensorFlow quietly and hide the understood warnings; elsewhere nothing.

    Called when ``common`` is first imported, so a notebook needs no line of its own and the
    CLI, the app and the tests do not pay for TensorFlow before they need it.
    """
    if in_kernel():
        import_tensorflow()
        filter_warnings()
        filter_logs()
