"""``camstudy bench``: the performance ratios the study promises, measured in one run.

Absolute times vary from run to run and machine to machine; each figure here
is a ratio of two measurements taken back to back in one process, so the
numbers can be compared across runs:

1. ``pipeline_vs_model``: images/s of the input pipeline alone (decode, resize,
   augment, batch; cold and cached) over the model's training images/s. The
   pipeline must be at least 3x faster than the model it feeds.
2. ``pipeline_vs_in_memory``: training images/s through the project's
   ``tf.data`` pipeline over training on the same batches already in memory as
   tensors (the upper limit), timed over whole epochs in alternating pairs
   (:func:`epoch_ratios`): the fastest epoch of each source against the other,
   with the pairs' ratios and their median beside it. At least 0.95.
3. ``cam_fraction_of_ceiling``: batched Grad-CAM images/s (batches of 32,
   one explainer whose step is compiled, so model preparation and tracing are
   not counted) as a fraction of the compiled forward-and-gradient pass alone
   (:func:`gradient_floor`), the most any batched Grad-CAM can reach on this
   machine. At least 0.90. The speed-up over one image at a time
   (``batched_cam_speedup``) is kept beside it as information: where one
   compiled image already keeps the cores busy, no batching gains much.
4. ``notebook_wall_times_s``: wall time of every notebook per profile, read from
   the runner's log (``results/run_log.jsonl``), not re-run.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from common.config import registry
from common.report.results import read_run_log, results_root, versions, write_json_atomic

BENCH_EXPERIMENT = "resnet50-gradcam"  # its default profile sets the model and input size
# What the bench's key (bench_key.json beside bench.json) names as the work done.
BENCH_KEY_NAME = "bench"
TARGETS = {"pipeline_vs_model": 3.0, "pipeline_vs_in_memory": 0.95, "cam_fraction_of_ceiling": 0.90}
# Sizes of the measurements; --quick keeps the whole bench near two minutes. epoch_pairs: timed
# epochs of each training source, alternating (the fastest of each source gives the ratio).
SETTINGS = {
    "quick": {"n_images": 64, "epoch_pairs": 7, "cam_images": 32},
    "full": {"n_images": 256, "epoch_pairs": 9, "cam_images": 32},
}


def machine() -> dict[str, Any]:
    """Describe the machine: CPUs, memory, TensorFlow's devices and versions."""
    import psutil
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "device": "GPU" if gpus else "CPU",
        "gpus": [gpu.name for gpu in gpus],
        "tensorflow": tf.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "versions": versions(),
    }


def machine_identity(quick: bool) -> dict[str, Any]:
    """What a bench record measures: its size and the processor (the parameters of its key, :func:`stale_reason`)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else model
    return {"quick": quick, "processor": model, "cpu_count": os.cpu_count()}


def _record_file(out: str | Path | None) -> Path:
    """The bench record: ``out``, or ``results/bench.json``."""
    return Path(out) if out else results_root() / "bench.json"


def _key_file(out: str | Path | None) -> Path:
    """``bench_key.json`` beside the bench record (what the bench depended on, :mod:`common.run_key`)."""
    record = _record_file(out)
    return record.with_name(f"{record.stem}_key.json")


def stale_reason(quick: bool = True, out: str | Path | None = None) -> str | None:
    """Why the recorded bench cannot stand for one run now (None: reuse it), as for an experiment's run.

    The bench is rerun when its size, the processor, or any module, registry part or
    package it used changed (:func:`common.run_key.changes_reason`).
    """
    from common import run_key

    if not _record_file(out).is_file():
        return "no bench record"
    key_file = _key_file(out)
    recorded = run_key.read(key_file.parent, key_file.name)
    now = None if recorded is None else run_key.now_of(recorded, BENCH_KEY_NAME, machine_identity(quick))
    return run_key.changes_reason(recorded, now)


# Timings of the CAM figures, of which the fastest counts: one batch of 32 takes a third of a second, so a
# stall of the machine (see epoch_ratios) in a single timing once put batched Grad-CAM at 1.18 of its ceiling.
CAM_REPEATS = 5


def _images_per_second(run: Callable[[], int], repeats: int = 1) -> float:
    """Time ``run`` (which returns the number of images it processed) ``repeats`` times; the fastest counts."""
    speeds = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        speeds.append(count / (time.perf_counter() - started))
    return max(speeds)


def _drain(dataset) -> int:
    return sum(int(images.shape[0]) for images, _ in dataset)


def pipeline_throughput(dataset) -> dict[str, float]:
    """Images/s of one pass over ``dataset`` (cold: decoding) and a second pass (cached)."""
    cold = _images_per_second(lambda: _drain(dataset))
    cached = _images_per_second(lambda: _drain(dataset))
    return {"cold_images_per_s": round(cold, 1), "cached_images_per_s": round(cached, 1)}


def _epoch_seconds(model, dataset) -> float:
    """Seconds of one whole training epoch over ``dataset`` (a fresh iterator, as every epoch of a run)."""
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)  # tf.data shuffles; Keras would warn
    return time.perf_counter() - started


def epoch_ratios(model, pipeline_epoch, in_memory_epoch, pairs: int) -> dict[str, Any]:
    """Training speed through the pipeline over training from memory, epoch against epoch, in alternating pairs.

    Both sources hold the same images in the same batches, so the speed ratio of
    a pair is ``in-memory seconds / pipeline seconds``. Each source is first
    trained on for one untimed epoch (tracing, and filling the pipeline's cache as a
    run's first epoch does); then ``pairs`` pairs of whole epochs are timed, the
    source that goes first alternating, so a drift of the machine's speed falls
    on both sides alike. The figure is the ratio of each source's fastest epoch:
    on this 2-core machine about one epoch in four, of either source, took
    about 2.5 s longer than the others (5.1-5.2 s against 2.3-3.3 s, quick
    bench), which moved the median of the pairs' ratios between 0.84 and 1.54
    in three back-to-back benches; a stall only ever adds time, so the fastest
    epoch is the best estimate of each source's cost (as ``timeit`` takes the
    minimum). It does not remove a second, slower mode: epochs also come at
    about 2.15 s or about 2.55 s, and a process may stay in the slower one for all
    of one source's epochs (one bench of three measured 1.075 that way). The
    pairs' ratios, their median and spread, and every epoch's seconds are kept
    beside it.

    Args:
        model: A compiled model.
        pipeline_epoch: One epoch of ``(images, labels)`` batches through the project's pipeline (finite).
        in_memory_epoch: The same batches from tensors in memory (finite).
        pairs: Timed pairs of epochs (at least 1).

    Returns:
        ``value`` (fastest in-memory epoch over fastest pipeline epoch, in seconds, so a speed
        ratio), ``median_of_pairs``, ``spread`` (lowest and highest pair, interquartile range),
        each pair's ``ratios``, the median images/s of each source and ``epoch_seconds``.
    """
    n_images = _drain(in_memory_epoch)
    for dataset in (pipeline_epoch, in_memory_epoch):
        _epoch_seconds(model, dataset)
    ratios, pipeline_speeds, memory_speeds = [], [], []
    timed: dict[str, list[float]] = {"pipeline": [], "in_memory": []}
    for pair in range(pairs):
        order = ("pipeline", "in_memory") if pair % 2 == 0 else ("in_memory", "pipeline")
        seconds = {
            name: _epoch_seconds(model, pipeline_epoch if name == "pipeline" else in_memory_epoch) for name in order
        }
        for name, value in seconds.items():
            timed[name].append(round(value, 3))
        ratios.append(seconds["in_memory"] / seconds["pipeline"])
        pipeline_speeds.append(n_images / seconds["pipeline"])
        memory_speeds.append(n_images / seconds["in_memory"])
    low, high = np.percentile(ratios, [25, 75])
    return {
        "value": round(min(timed["in_memory"]) / min(timed["pipeline"]), 3),
        "median_of_pairs": round(float(np.median(ratios)), 3),
        "spread": {"min": round(min(ratios), 3), "max": round(max(ratios), 3), "iqr": round(float(high - low), 3)},
        "ratios": [round(r, 3) for r in ratios],
        "pairs": pairs,
        "pipeline_train_images_per_s": round(float(np.median(pipeline_speeds)), 2),
        "in_memory_train_images_per_s": round(float(np.median(memory_speeds)), 2),
        "epoch_seconds": timed,
    }


def gradient_floor(
    model, images: np.ndarray, classes: np.ndarray, layer: str | None = None, batch_size: int = 32
) -> float:
    """Images/s of the least work any batched Grad-CAM does: no more than that.

    One compiled forward pass to the class scores and their gradient with
    respect to the CAM layer's output, in batches of ``batch_size`` (the
    weighting and upsampling that follow are cheap). Batched Grad-CAM cannot be
    faster, so ``gradient_floor / single`` bounds the batching speed-up: where
    one image alone already keeps the cores busy, no batch size reaches a
    large ratio.

    Args:
        model: Functional model.
        images: Model-ready images; timed in whole batches (at least one).
        classes: Class index per image.
        layer: CAM layer; None: the last convolutional layer.
        batch_size: Images per batch (capped at ``len(images)``).
    """
    import keras
    import tensorflow as tf

    from common.explain.layers import last_conv_layer

    probe = keras.Model(model.inputs, [model.get_layer(layer or last_conv_layer(model)).output, model.outputs[0]])

    @tf.function
    def gradient(x, c):
        with tf.GradientTape() as tape:
            features, scores = probe(x, training=False)
            score = tf.gather(scores, c, batch_dims=1)
        return tape.gradient(score, features)

    batch_size = min(batch_size, len(images))
    n = len(images) // batch_size * batch_size
    batches = [
        (tf.constant(images[i : i + batch_size]), tf.constant(classes[i : i + batch_size], tf.int32))
        for i in range(0, n, batch_size)
    ]
    gradient(*batches[0]).numpy()  # traces the graph
    return _images_per_second(lambda: sum(int(gradient(x, c).shape[0]) for x, c in batches), CAM_REPEATS)


def cam_batching(
    model, images: np.ndarray, classes: np.ndarray, method: str = "gradcam", batch_size: int = 32
) -> dict[str, float]:
    """CAM images/s in batches of ``batch_size`` and one image at a time, one explainer for both.

    Also the :func:`gradient_floor` of the same batches and the ceiling it puts
    on the speed-up (``floor / single``). Each is the fastest of :data:`CAM_REPEATS` timings.
    """
    from common.explain.cams import CamExplainer

    explainer = CamExplainer(model, method, compile_after_batches=0)
    # Warm-up at both batch shapes: tracing, and TensorFlow's first run at each shape.
    explainer.cams(images[:batch_size], classes[:batch_size], None, batch_size=batch_size)
    explainer.cams(images[:1], classes[:1], None, batch_size=1)
    batched = _images_per_second(lambda: len(explainer.cams(images, classes, None, batch_size=batch_size)), CAM_REPEATS)
    single = _images_per_second(lambda: len(explainer.cams(images, classes, None, batch_size=1)), CAM_REPEATS)
    floor = gradient_floor(model, images, classes, batch_size=batch_size)
    return {
        "batched_images_per_s": round(batched, 2),
        "single_images_per_s": round(single, 2),
        "gradient_floor_images_per_s": round(floor, 2),
        "ceiling": round(floor / single, 2),
        "batch_size": batch_size,
    }


def notebook_wall_times(results_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Latest successful wall time of every notebook per profile, from the run log."""
    times: dict[str, dict[str, float]] = {}
    for entry in read_run_log(results_dir):
        if entry.get("ok"):
            times.setdefault(entry["experiment"], {})[entry["profile"]] = entry["wall_time_s"]
    return times


def _ratio(numerator: float, denominator: float, target: float) -> dict[str, Any]:
    value = numerator / denominator if denominator else float("nan")
    return {"value": round(value, 3), "target": target, "meets_target": bool(value >= target)}


def _bench_params(settings: dict[str, int]):
    """The default profile's parameters of :data:`BENCH_EXPERIMENT`, with only as many phantoms as are timed."""
    # The default profile's model and input size; only as many phantoms as are timed, both
    # classes (generating the profile's 600 to read 64 took 34 s of a 143 s quick bench, and
    # the first 64 of them were all of one class). With both classes, pipeline_vs_in_memory
    # was 0.87-0.915 while Keras' random layers augmented batch by batch, 0.96 with
    # augmentation off; with common.data.augment's parallel map it measured 0.95-1.02 in three of
    # four quick benches (0.61 in one where in-memory training and one-image Grad-CAM ran slow
    # too: 5.0 vs 5.9-6.5 and 8.5 vs 15-17 images/s). Two timed steps per round make the
    # quick figure noisy.
    n_classes = len(registry.experiment(BENCH_EXPERIMENT)["classes"])
    return registry.resolve(BENCH_EXPERIMENT, "default", {"n_per_class": -(-settings["n_images"] // n_classes)})


def _ratios(
    pipeline_speed: dict[str, float], epochs: dict[str, Any], cam_speed: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """The three ratios of ``bench.json``, each with its target and the speeds it divides."""
    pipeline_train = epochs["pipeline_train_images_per_s"]
    details = {name: value for name, value in epochs.items() if name != "value"}
    return {
        "pipeline_vs_model": {
            **_ratio(pipeline_speed["cached_images_per_s"], pipeline_train, TARGETS["pipeline_vs_model"]),
            **pipeline_speed,
            "cold_ratio": round(pipeline_speed["cold_images_per_s"] / pipeline_train, 3),
            "model_train_images_per_s": round(pipeline_train, 2),
        },
        "pipeline_vs_in_memory": {
            "value": epochs["value"],
            "target": TARGETS["pipeline_vs_in_memory"],
            "meets_target": bool(epochs["value"] >= TARGETS["pipeline_vs_in_memory"]),
            **details,
        },
        "cam_fraction_of_ceiling": {
            **_ratio(
                cam_speed["batched_images_per_s"],
                cam_speed["gradient_floor_images_per_s"],
                TARGETS["cam_fraction_of_ceiling"],
            ),
            **cam_speed,
            "batched_cam_speedup": round(cam_speed["batched_images_per_s"] / cam_speed["single_images_per_s"], 2),
        },
    }


def run(quick: bool = False, out: str | Path | None = None, progress: Callable[[str], None] = print) -> dict:
    """Measure every ratio and write ``bench.json``; return its record.

    Args:
        quick: Smaller measurements (under two minutes on a 2-core CPU).
        out: Output file (default ``results/bench.json``).
        progress: Called with a line of text before each measurement.

    Returns:
        The record written to ``bench.json``.
    """
    import tensorflow as tf

    from common.data import pipeline
    from common.experiments import fitting, loading
    from common.training import fit, runtime

    settings = SETTINGS["quick" if quick else "full"]
    params = _bench_params(settings)
    runtime.set_seed(params.seed)
    progress("preparing phantom images")
    samples = loading.load_samples(params).samples.head(settings["n_images"])
    size, batch = params.image_size, params.batch_size
    preprocess = fitting.preprocess_name(params)

    def project_dataset():
        return pipeline.make_dataset(
            samples,
            size,
            batch,
            preprocess=preprocess,
            augment=params.augment,
            training=True,
            channels=params.channels,
            seed=params.seed,
        )

    progress("1/3 input pipeline alone (cold, then cached)")
    pipeline_speed = pipeline_throughput(project_dataset())

    progress("2/3 training through the pipeline vs from tensors in memory")
    model = fitting.build_backbone_classifier(params)
    fit.compile_model(model, params.learning_rate)
    through_pipeline = project_dataset()
    _drain(through_pipeline)  # fill the cache, as after a run's first epoch
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in through_pipeline])
    in_memory = tf.data.Dataset.from_tensor_slices((np.concatenate(images), np.concatenate(labels)))
    epochs = epoch_ratios(model, through_pipeline, in_memory.batch(batch), settings["epoch_pairs"])

    progress("3/3 batched Grad-CAM vs the compiled forward-and-gradient ceiling (and one image at a time)")
    cam_inputs = np.concatenate(images)[: settings["cam_images"]]
    cam_speed = cam_batching(model, cam_inputs, np.concatenate(labels)[: settings["cam_images"]])

    record = {
        "quick": quick,
        "experiment": BENCH_EXPERIMENT,
        "model": params.backbone,
        "image_size": size,
        "batch_size": batch,
        **_ratios(pipeline_speed, epochs, cam_speed),
        "notebook_wall_times_s": notebook_wall_times(),
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(_record_file(out), record)
    from common import run_key

    key_file = _key_file(out)
    run_key.write(run_key.of_this_process(BENCH_KEY_NAME, machine_identity(quick)), key_file.parent, key_file.name)
    return record


def summary(record: dict) -> str:
    """A few lines for the console: each ratio against its target."""
    lines = []
    for key, target in TARGETS.items():
        entry = record[key]
        mark = "ok" if entry["meets_target"] else "below target"
        spread = entry.get("spread")
        shown = f", pairs {spread['min']:.2f}-{spread['max']:.2f}" if spread else ""
        lines.append(f"{key:24s} {entry['value']:8.2f}  (target >= {target}; {mark}{shown})")
    cam = record["cam_fraction_of_ceiling"]
    lines.append(
        f"{'batched_cam_speedup':24s} {cam['batched_cam_speedup']:8.2f}  (information: over one image at a time)"
    )
    machine_info = record["machine"]
    lines.append(
        f"machine: {machine_info['cpu_count']} CPUs, {machine_info['device']}, "
        f"TensorFlow {machine_info['tensorflow']}, load {machine_info['load_average_1min']}"
    )
    return "\n".join(lines)
