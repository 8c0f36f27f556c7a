"""A tiny run saved as ``camstudy run`` would save it, shared by the tests of common.predict and the app.

The model is a tiny CNN trained for one epoch on chest phantoms; the run lives in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

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
