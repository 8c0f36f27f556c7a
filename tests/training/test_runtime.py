"""Tests of common.training.runtime: mixed precision and XLA, distribution strategies."""

import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from common.errors import ParameterError
from common.training import runtime
from tests.training.helpers import tiny_model

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"


def test_gpu_speedups_switch_mixed_precision_and_xla_together():
    try:
        on_cpu = runtime.gpu_speedups("auto")
        if not tf.config.list_physical_devices("GPU"):
            assert on_cpu == {
                "enabled": False,
                "mixed_precision": False,
                "jit_compile": False,
                "dtype_policy": "float32",
                "gpus": 0,
            }
        forced = runtime.gpu_speedups(True)
        assert forced["mixed_precision"] and forced["jit_compile"]
        model = tiny_model()
        assert model.layers[1].compute_dtype == "float16"
        from common.models import build_plain_cnn

        cnn = build_plain_cnn((16, 16, 1), 2)
        assert cnn.get_layer("predictions").compute_dtype == "float32"
        with pytest.raises(ParameterError):
            runtime.gpu_speedups("yes")
    finally:
        runtime.gpu_speedups(False)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_distribution_strategy_choices(monkeypatch):
    if len(tf.config.list_logical_devices("GPU")) < 2:
        assert runtime.distribution_strategy("auto").num_replicas_in_sync == 1
    assert runtime.distribution_strategy("default").num_replicas_in_sync == 1
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ParameterError, match="TF_CONFIG"):
        runtime.distribution_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{'cluster': single quotes}")
    with pytest.raises(ParameterError, match="TF_CONFIG is not valid JSON"):
        runtime.distribution_strategy("multi-worker")
    with pytest.raises(ParameterError, match="Unknown"):
        runtime.distribution_strategy("tpu")


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf

    # Two logical CPUs must be configured before TensorFlow initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    from common.training import fit, runtime

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    def weights_after_training(strategy, initial=None):
        with strategy.scope():
            inputs = keras.Input((6,))
            hidden = keras.layers.Dense(4, activation="relu")(inputs)
            model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
            if initial is not None:
                model.set_weights(initial)
            start = model.get_weights()
            fit.compile_model(model, lr=0.05)
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, verbose=0)
        return start, model.get_weights()

    mirrored = runtime.distribution_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
    start, single = weights_after_training(runtime.distribution_strategy("default"))
    _, replicated = weights_after_training(mirrored, initial=start)
    assert any(not np.allclose(a, b) for a, b in zip(start, single))
    for a, b in zip(single, replicated):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("MIRRORED_OK")
    """
)


def test_mirrored_strategy_step_equals_single_device_step():
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(SRC))
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]
