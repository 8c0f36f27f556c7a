"""Tiny runs saved as ``camstudy run`` would save them, shared by the tests of common.predict, the app and the CLI.

:func:`save_tiny_run`: a tiny CNN trained for one epoch on chest phantoms; :func:`save_tiny_volume_run`:
a one-layer 3D CNN whose CAM is positive wherever its features are. Each run lives in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import models
from common.config import registry
from common.data import folders, phantoms, pipeline, splits
from common.report.results import RunRecorder
from common.training import fit, runtime

# A real experiment id (its registry classes go into the model card); the run lives in a temporary folder.
EXPERIMENT = "resnet50-gradcam"
CLASSES = ["no_nodule", "nodule"]
# Chest phantom folders -> the experiment's classes.
FOLDERS = {"normal": "no_nodule", "malignant": "nodule"}
IMAGE_SIZE = 32  # the phantoms are 48 px, so the resize is exercised
PREPROCESS = "resnet50"  # a named preprocess_input (channel flip and mean subtraction), not plain scaling
VOLUME_EXPERIMENT = "gradcam-3d"
VOLUME_SHAPE = (16, 16, 8)
VOLUME_CAM_LAYER = "conv3d_1"


def save_tiny_run(root: Path) -> dict:
    """Train a tiny CNN for one epoch on 20 chest phantoms and save it as a run would.

    Args:
        root: Folder for the phantoms (``root/phantoms``) and the run (``root/results/<EXPERIMENT>``).

    Returns:
        ``results_dir``, ``model`` and the split ``samples`` of the run.
    """
    phantoms.make_chest_slices(root / "phantoms", n_per_class=10, size=48, classes=tuple(FOLDERS))
    samples, _ = folders.load_class_folders(root / "phantoms" / "images", FOLDERS)
    samples = splits.split_samples(samples, fractions=(0.6, 0.2, 0.2), seed=0)
    runtime.set_seed(0)
    model = models.build_plain_cnn((IMAGE_SIZE, IMAGE_SIZE, 3), len(CLASSES), filters=(4, 8))
    fit.compile_model(model, 1e-3)
    training = pipeline.make_dataset(samples[samples.split == "train"], IMAGE_SIZE, 8, PREPROCESS, training=True)
    model.fit(training, epochs=1, verbose=0)
    run = RunRecorder(registry.resolve(EXPERIMENT, "smoke"), root / "results" / EXPERIMENT)
    model.save(run.output_dir / "model.keras")
    run.write_model_card(model.name, IMAGE_SIZE, 3, PREPROCESS)
    return {"results_dir": root / "results", "model": model, "samples": samples}


def tiny_volume_model():
    """One Conv3D layer, pooled, and a softmax whose first class sums the features.

    Its CAM is at full resolution and positive wherever the features are (an untrained
    Grad-CAM is often zero everywhere).
    """
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((*VOLUME_SHAPE, 1))
    features = keras.layers.Conv3D(2, 3, padding="same", activation="relu", name=VOLUME_CAM_LAYER)(inputs)
    pooled = keras.layers.GlobalAveragePooling3D()(features)
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[1.0, -1.0], [1.0, -1.0]], dtype=np.float32), np.zeros(2, dtype=np.float32)])
    return model


def save_tiny_volume_run(root: Path) -> Path:
    """Save :func:`tiny_volume_model` as a gradcam-3d run would; return its results folder (``root/results``)."""
    model = tiny_volume_model()
    run = RunRecorder(registry.resolve(VOLUME_EXPERIMENT, "smoke"), root / "results" / VOLUME_EXPERIMENT)
    model.save(run.output_dir / "model.keras")
    run.write_model_card(
        model.name, list(VOLUME_SHAPE), 1, None, VOLUME_CAM_LAYER, input_kind="volume", window=[-600, 1500], sobel=True
    )
    return root / "results"
