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


def test_a_kernel_gets_tensorflow_quietly_and_the_understood_warnings_filtered():
    # "ipykernel" among the imported modules is how quiet_kernel knows it runs in a notebook kernel.
    stderr = _stderr_of(
        "import sys, types, warnings; sys.modules['ipykernel'] = types.ModuleType('ipykernel'); "
        "from common import quiet; quiet.quiet_kernel(); assert 'tensorflow' in sys.modules; "
        "import os; assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '3'; "
        "import tensorflow as tf; tf.data.Dataset.range(4).map(lambda x: x + 1, num_parallel_calls=2); "
        "import tqdm; warnings.warn_explicit('IProgress not found. Please update jupyter and ipywidgets.', "
        "tqdm.TqdmWarning, 'auto.py', 21, module='tqdm.auto'); "
        "warnings.warn('IProgress not found elsewhere', tqdm.TqdmWarning); print('after', file=sys.stderr)"
    )
    lines = stderr.splitlines()
    assert lines[-1] == "after"
    # The same message from another module is not an understood one: it is still shown.
    assert any("IProgress not found elsewhere" in line for line in lines)
    assert not any("ipywidgets" in line for line in lines)
    assert not any(mark in stderr for mark in ("I0000", "E0000", "cuda", "absl"))


def test_outside_a_kernel_quiet_kernel_does_nothing():
    stderr = _stderr_of(
        "import sys, warnings; from common import quiet; quiet.quiet_kernel(); "
        "assert 'tensorflow' not in sys.modules; "
        "assert not any(f[1] is not None and 'IProgress' in f[1].pattern for f in warnings.filters)"
    )
    assert stderr == ""


def test_every_warning_filter_names_a_category_a_message_a_module_and_a_reason():
    import importlib

    from common import quiet

    for category_path, message, module, reason in quiet.WARNING_FILTERS:
        module_name, _, class_name = category_path.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module_name), class_name), Warning)
        assert message and module and len(reason) > 20


def test_the_understood_retracing_message_of_keras_predict_is_dropped_and_others_are_kept(caplog):
    import logging

    from common import quiet

    logger = logging.getLogger("tensorflow")
    before = list(logger.filters)
    try:
        quiet.filter_logs()
        quiet.filter_logs()  # once only
        assert len(logger.filters) == len(before) + len(quiet.LOG_FILTERS)
        with caplog.at_level(logging.WARNING, logger="tensorflow"):
            logger.warning(
                "5 out of the last 13 calls to <function TensorFlowTrainer.make_predict_function.<locals>."
                "one_step_on_data_distributed at 0x7fd0dd4793a0> triggered tf.function retracing. Tracing is expensive"
            )
            logger.warning("5 out of the last 13 calls to <function my_step at 0x7f00> triggered tf.function retracing")
        assert [record.getMessage()[:40] for record in caplog.records] == [
            "5 out of the last 13 calls to <function "
        ] and "my_step" in caplog.records[0].getMessage()
    finally:
        logger.filters[:] = before
