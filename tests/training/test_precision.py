"""Tests of common.training.precision: bfloat16 training where the CPU has it, float32 evaluation."""

import keras
import numpy as np
import pytest

from common.config import registry
from common.errors import ParameterError
from common.training import fit, precision, runtime
from tests.training.helpers import batches, tiny_data, tiny_model

BF16_CPU = frozenset({"avx512f", "avx512_bf16"})
AMX_CPU = frozenset({"amx_tile", "amx_bf16"})
OLD_CPU = frozenset({"avx2", "avx512f"})


def test_the_cpu_flags_are_read_from_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert precision.cpu_flags(tmp_path / "absent") == frozenset()


def test_auto_is_bfloat16_only_on_a_cpu_that_multiplies_it_natively_and_no_gpu():
    assert precision.resolve("auto", flags=BF16_CPU) == "bfloat16"
    assert precision.resolve("auto", flags=AMX_CPU) == "bfloat16"
    assert precision.resolve("auto", flags=OLD_CPU) == "float32"
    assert precision.resolve("auto", gpus=1, flags=BF16_CPU) == "float32"  # the GPU speed-ups decide there
    assert precision.resolve("float32", flags=BF16_CPU) == "float32"
    assert precision.resolve("bfloat16", flags=OLD_CPU) == "bfloat16"
    with pytest.raises(ParameterError, match="precision='half'"):
        precision.resolve("half")


def test_the_run_records_what_auto_became_and_the_registry_refuses_other_words():
    params = registry.resolve("iqoth", "smoke", {"precision": "auto"})
    record = runtime.for_run(params).record
    expected = "bfloat16" if precision.native_bf16() and record["gpus"] == 0 else "float32"
    assert record["precision"] == expected
    assert record["dtype_policy"] == precision.TRAINING_POLICY[expected] or record["gpus"] > 0
    with pytest.raises(ParameterError, match="precision"):
        registry.resolve("iqoth", "smoke", {"precision": "float16"})


def test_smoke_trains_in_float32_on_every_machine_and_default_follows_the_cpu():
    for experiment in registry.experiment_ids():
        assert registry.resolve(experiment, "smoke").precision == "float32"
    assert registry.resolve("multi-organ", "default").precision == "auto"


def test_the_runtime_builds_under_bfloat16_only_inside_its_scope():
    params = registry.resolve("iqoth", "smoke", {"precision": "bfloat16"})
    run = runtime.for_run(params)
    with run.scope():
        inside = tiny_model()
    outside = tiny_model()
    assert inside.layers[1].compute_dtype == "bfloat16" and inside.layers[1].variable_dtype == "float32"
    assert outside.layers[1].compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    assert run.record["dtype_policy"] == "mixed_bfloat16" and run.record["evaluated_in"] == "float32"
    assert runtime.for_run(registry.resolve("iqoth", "smoke", {"precision": "float32"})).training_policy == "float32"
    assert run.with_precision("float32").training_policy == "float32" and run.precision == "bfloat16"


def test_to_float32_keeps_the_weights_and_computes_what_a_float32_copy_computes():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = tiny_model(n_inputs=64)
    finally:
        keras.config.set_dtype_policy("float32")
    copy = tiny_model(n_inputs=64)
    copy.set_weights(mixed.get_weights())
    x = np.random.default_rng(1).normal(size=(16, 64)).astype("float32")
    rounded = mixed.predict(x, verbose=0)
    exact = copy.predict(x, verbose=0)
    assert 0 < np.abs(rounded - exact).max() < 0.05  # bfloat16 rounds: the two differ a little

    assert precision.to_float32(mixed) is mixed
    assert all(layer.compute_dtype == "float32" for layer in mixed.layers)
    np.testing.assert_array_equal(mixed.predict(x, verbose=0), exact)


def test_a_model_trained_in_bfloat16_comes_out_of_fit_in_float32():
    params = registry.resolve("iqoth", "smoke", {"precision": "bfloat16"})
    run = runtime.for_run(params)
    runtime.set_seed(0)
    with run.scope():
        model = tiny_model()
    run.compile(model, 1e-2)
    x, y = tiny_data()
    history = fit.fit(model, batches(x, y), batches(x, y), epochs=2, log=None)
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    assert all(layer.compute_dtype == "float32" for layer in model.layers)
    assert model.predict(x, verbose=0).dtype == np.float32
