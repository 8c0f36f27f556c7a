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
    # Half the images, two pairs of epochs instead of seven, one timing of each CAM figure instead of five:
    # this test checks the record, not the speed.
    monkeypatch.setitem(
        bench.SETTINGS, "quick", dict(bench.SETTINGS["quick"], n_images=32, epoch_pairs=2, cam_images=16)
    )
    monkeypatch.setattr(bench, "CAM_REPEATS", 1)
    out = tmp_path / "bench.json"
    record = bench.run(quick=True, out=out, progress=lambda line: None)
    written = json.loads(out.read_text())
    assert written["quick"] is True
    for key in ("pipeline_vs_model", "pipeline_vs_in_memory", "cam_fraction_of_ceiling"):
        entry = written[key]
        assert entry["value"] > 0 and entry["target"] == bench.TARGETS[key]
        assert isinstance(entry["meets_target"], bool)
    assert written["machine"]["cpu_count"] >= 1 and written["machine"]["device"] in ("CPU", "GPU")
    assert "notebook_wall_times_s" in written
    epochs = written["pipeline_vs_in_memory"]
    assert epochs["pairs"] == bench.SETTINGS["quick"]["epoch_pairs"] == len(epochs["ratios"])
    seconds = epochs["epoch_seconds"]
    assert len(seconds["pipeline"]) == len(seconds["in_memory"]) == epochs["pairs"]
    assert epochs["value"] == pytest.approx(min(seconds["in_memory"]) / min(seconds["pipeline"]), abs=2e-3)
    assert epochs["median_of_pairs"] == pytest.approx(float(np.median(epochs["ratios"])), abs=1e-3)
    assert epochs["spread"]["min"] == min(epochs["ratios"]) and epochs["spread"]["max"] == max(epochs["ratios"])
    cam = written["cam_fraction_of_ceiling"]
    assert cam["value"] == pytest.approx(cam["batched_images_per_s"] / cam["gradient_floor_images_per_s"], rel=0.01)
    speedup = cam["batched_images_per_s"] / cam["single_images_per_s"]
    assert cam["batched_cam_speedup"] == pytest.approx(speedup, rel=0.01)
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


def test_epoch_ratios_time_whole_epochs_in_alternating_pairs(monkeypatch):
    import keras
    import tensorflow as tf

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 8, 8, 1), "float32"), np.zeros(8, "int64")))
    pipeline, in_memory = data.batch(4), data.batch(4)
    order = []
    fit = model.fit
    monkeypatch.setattr(model, "fit", lambda batches, **kw: (order.append(batches), fit(batches, **kw))[1])
    # Known epoch times: the pipeline takes 2 s an epoch, memory 1.8 s, so every pair's ratio is 0.9.
    seconds = {id(pipeline): 2.0, id(in_memory): 1.8}

    def fake_seconds(model_, dataset):
        model_.fit(dataset, epochs=1, verbose=0, shuffle=False)
        return seconds[id(dataset)]

    monkeypatch.setattr(bench, "_epoch_seconds", fake_seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no Keras warning on the terminal of `camstudy bench`
        result = bench.epoch_ratios(model, pipeline, in_memory, pairs=4)
    assert result["value"] == pytest.approx(0.9) and result["ratios"] == [0.9] * 4 and result["pairs"] == 4
    assert result["spread"] == {"min": 0.9, "max": 0.9, "iqr": 0.0}
    assert result["pipeline_train_images_per_s"] == pytest.approx(8 / 2.0)
    assert result["in_memory_train_images_per_s"] == round(8 / 1.8, 2)
    # One warm-up epoch each, then pairs whose first source alternates: p m, m p, p m, m p.
    assert order == [pipeline, in_memory] + [pipeline, in_memory, in_memory, pipeline] * 2
