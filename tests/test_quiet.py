"""Tests of common.quiet: TensorFlow loads without its C++ start-up lines on stderr."""

import os
import subprocess
import sys


def _stderr_of(code: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_tensorflow_loads_without_its_start_up_lines_and_stderr_works_after():
    stderr = _stderr_of(
        "import sys; from common import quiet; quiet.import_tensorflow(); "
        "import tensorflow as tf; tf.constant(1) + 1; print('after', file=sys.stderr)"
    )
    assert stderr == "after\n"


def test_a_plain_import_does_print_them_so_the_test_above_can_fail():
    stderr = _stderr_of("import tensorflow as tf; tf.config.list_physical_devices('GPU')")
    assert stderr.strip(), "TensorFlow printed nothing while loading here; the test above proves nothing"
