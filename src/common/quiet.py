"""Keeping libraries' start-up noise off the terminal and out of the book's pages.

TensorFlow writes start-up lines (oneDNN is on, no CUDA driver, cuInit failed,
absl's "before InitializeLog" notice) straight to file descriptor 2 while it loads,
before its logging honours ``TF_CPP_MIN_LOG_LEVEL``. :func:`import_tensorflow`
loads it with those lines kept aside, for the CLI and for every notebook kernel.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow() -> None:
    """Import TensorFlow and look for GPUs with its C++ start-up lines kept off the terminal.

    TensorFlow writes them (oneDNN is on, no CUDA driver found, cuInit failed) to file
    descriptor 2 before its logging honours ``TF_CPP_MIN_LOG_LEVEL``, so stderr is sent to a
    temporary file meanwhile; the lines are shown after all when the import fails.
    """
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
