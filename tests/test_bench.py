"""Tests of common.bench: the quick benchmark writes every ratio with its target."""

import json
import warnings

import numpy as np
import pytest

from common import bench


def test_wall_times_come_from_the_run_log(tmp_path, monkeypatch):
    monkeypatch.setattr(
        bench,
        "read_run_log",
        lambda results_dir=None: [
            {"experiment": "iqoth", "profile": "smoke", "ok": True, "wall_time_s": 40.0},
            {"experiment": "iqoth", "profile": "smoke", "ok": False, "wall_time_s": 3.0},
            {"experiment": "iqoth", "profile": "default", "ok": True, "wall_time_s": 200.0},
        ],
    )
    assert bench.notebook_wall_times() == {"iqoth": {"smoke": 40.0, "default": 200.0}}


@pytest.mark.notebook
def test_quick_bench_measures_every_ratio(tmp_path, monkeypatch):
    from common.experiments import loading

    monkeypatch.setattr(loading, "phantom_root", lambda: tmp_path / "phantoms")
    out = tmp_path / "bench.json"
    record = bench.run(quick=True, out=out, progress=lambda line: None)
    written = json.loads(out.read_text())
    assert written["quick"] is True
    for key in ("pipeline_vs_model", "pipeline_vs_in_memory", "batched_cam_speedup"):
        entry = written[key]
        assert entry["value"] > 0 and entry["target"] == bench.TARGETS[key]
        assert isinstance(entry["meets_target"], bool)
    assert written["machine"]["cpu_count"] >= 1 and written["machine"]["device"] in ("CPU", "GPU")
    assert "notebook_wall_times_s" in written
    cam = written["batched_cam_speedup"]
    assert cam["gradient_floor_images_per_s"] > 0
    assert cam["ceiling"] == pytest.approx(cam["gradient_floor_images_per_s"] / cam["single_images_per_s"], rel=0.01)
    assert "pipeline_vs_model" in bench.summary(record)
    # The bench's key sits beside its record: reused as it is, rerun for another size or processor.
    assert (tmp_path / "bench_key.json").exists()
    assert bench.stale_reason(quick=True, out=out) is None
    assert bench.stale_reason(quick=False, out=out) == "parameter quick True -> False"
    other = dict(bench.machine_identity(True), processor="another CPU")
    monkeypatch.setattr(bench, "machine_identity", lambda quick: other)
    assert bench.stale_reason(quick=True, out=out).startswith("parameter processor ")


def test_a_bench_without_its_record_or_key_runs(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.stale_reason(out=out) == "no bench record"
    out.write_text("{}")
    assert bench.stale_reason(out=out).startswith("the run recorded no key")


def test_gradient_floor_times_whole_batches_of_a_tiny_model():
    import keras

    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).random((5, 16, 16, 3), dtype=np.float32)
    assert bench.gradient_floor(model, images, np.array([0, 1, 0, 1, 0]), batch_size=2) > 0
    assert bench.gradient_floor(model, images, np.zeros(5, int), layer="conv", batch_size=32) > 0


def test_training_throughputs_times_every_source_in_alternation(monkeypatch):
    import keras
    import tensorflow as tf

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 8, 8, 1), "float32"), np.zeros(8, "int64")))
    order = []
    fit = model.fit
    monkeypatch.setattr(model, "fit", lambda batches, **kw: (order.append(batches), fit(batches, **kw))[1])
    sources = {"a": data.batch(4).repeat(), "b": data.batch(2).repeat()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no Keras warning on the terminal of `camstudy bench`
        speeds = bench.training_throughputs(model, sources, steps=2, rounds=3)
    assert set(speeds) == {"a", "b"} and all(speed > 0 for speed in speeds.values())
    # One warm-up each, then a, b, a, b, a, b.
    assert order == [sources["a"], sources["b"]] + [sources["a"], sources["b"]] * 3
