"""Fake runs, bench records and a registry for the book's tests: only what the book reads."""

from __future__ import annotations

from pathlib import Path

import nbformat

from common.config import registry
from common.report.results import write_json_atomic

# A 1x1 PNG: enough for the overview to copy a headline figure.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
)
ROW = {"model": "ResNet50", "metric": "accuracy", "paper": 0.982, "this_run": 0.75, "ci95": [0.25, 1.0]}


def fake_metrics(experiment_id: str, rows: list[dict], figures=(), source="phantoms/chest (chest-0a1b)") -> dict:
    """A metrics.json record with only what the book reads."""
    return {
        "experiment": experiment_id,
        "profile": "smoke",
        "seed": 42,
        "data": {"source": source},
        "parameters": {},
        "versions": {"python": "3.11", "tensorflow": "2.21.0"},
        "started_at": "2026-11-22T00:00:00",
        "wall_time_s": 12.5,
        "peak_memory_mb": 900.0,
        "paper_vs_run": rows,
        "figures": list(figures),
    }


def write_fake_run(results_dir: Path, experiment_id: str, rows: list[dict], figures=(), **metrics) -> None:
    """Write a run folder: executed notebook (title, figure cell), metrics.json, figure PNGs."""
    run_dir = results_dir / experiment_id
    (run_dir / "figures").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {experiment_id}"),
        nbformat.v4.new_code_cell('figures.confusion_matrix(cm, names, path=run.figure_path("confusion_matrix"))'),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    nbformat.write(notebook, run_dir / f"{experiment_id}.ipynb")
    for name in figures:
        (run_dir / "figures" / f"{name}.png").write_bytes(TINY_PNG)
    write_json_atomic(
        run_dir / "metrics.json", fake_metrics(experiment_id, rows, [f"{n}.png" for n in figures], **metrics)
    )


def table_rows(markdown: str) -> list[list[str]]:
    """Body rows of the first Markdown table, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def fake_bench_record() -> dict:
    """A bench.json record as ``camstudy bench`` writes it: one ratio below its target."""
    return {
        "quick": True,
        "experiment": "resnet50-gradcam",
        "model": "ResNet50",
        "image_size": 96,
        "batch_size": 32,
        "pipeline_vs_model": {
            "value": 7.345,
            "target": 3.0,
            "meets_target": True,
            "cold_images_per_s": 210.5,
            "cached_images_per_s": 880.25,
            "cold_ratio": 1.757,
            "model_train_images_per_s": 119.84,
        },
        "pipeline_vs_in_memory": {
            "value": 0.912,
            "target": 0.95,
            "meets_target": False,
            "median_of_pairs": 0.912,
            "spread": {"min": 0.881, "max": 0.95, "iqr": 0.031},
            "ratios": [0.881, 0.9, 0.912, 0.93, 0.95],
            "pairs": 5,
            "pipeline_train_images_per_s": 109.3,
            "in_memory_train_images_per_s": 119.84,
        },
        "cam_fraction_of_ceiling": {
            "value": 0.918,
            "target": 0.9,
            "meets_target": True,
            "batched_images_per_s": 45.92,
            "single_images_per_s": 4.0,
            "gradient_floor_images_per_s": 50.0,
            "ceiling": 12.5,
            "batched_cam_speedup": 11.48,
            "batch_size": 32,
        },
        "notebook_wall_times_s": {"iqoth": {"smoke": 41.3, "default": 612.0}, "gradcam-3d": {"default": 226.1}},
        "machine": {
            "cpu_count": 2,
            "processor": "x86_64",
            "memory_gb": 7.7,
            "device": "CPU",
            "gpus": [],
            "tensorflow": "2.21.0",
            "load_average_1min": 3.25,
            "versions": {"python": "3.11.9"},
        },
        "measured_at": "2026-11-22T10:00:00+0000",
    }


# A registry of three experiments for the golden pages, so edits of the real registry do not change them.
GOLDEN_EXPERIMENTS = {
    "alpha": {"title": "Alpha: a CNN with Grad-CAM", "budget_s": {"smoke": 60, "default": 300}},
    "beta": {"title": "Beta without numbers", "budget_s": {"default": 120}},
    "gamma": {"title": "Gamma, not run"},
}


def use_golden_registry(monkeypatch) -> None:
    """Make the registry hold only :data:`GOLDEN_EXPERIMENTS` for the rest of a test."""
    monkeypatch.setattr(registry, "experiment_ids", lambda: list(GOLDEN_EXPERIMENTS))
    monkeypatch.setattr(registry, "experiment", lambda experiment_id: GOLDEN_EXPERIMENTS[experiment_id])
    monkeypatch.setattr(registry, "PROFILES", ("smoke", "default", "paper"))


def golden_metrics() -> dict[str, dict]:
    """Runs of alpha (two claims, one without an interval; two headline figures) and beta (no claims)."""
    second = {"model": "VGG16", "metric": "auc", "paper": None, "this_run": 0.5, "ci95": None}
    return {
        "alpha": fake_metrics(
            "alpha", [ROW, second], figures=("confusion_matrix.png", "cam_contours.png", "samples.png")
        ),
        "beta": fake_metrics("beta", [], source="iqothnccd (/data/iqothnccd)"),
    }


def golden_bench_record() -> dict:
    """The fake record with a GPU, a ratio not measured and wall times of a known and an unknown run."""
    record = fake_bench_record()
    record["cam_fraction_of_ceiling"] = "skipped"
    record["machine"] = {**record["machine"], "device": "GPU", "gpus": ["A100", "H100"], "load_average_1min": 0.5}
    record["notebook_wall_times_s"] = {"zeta": {"smoke": 5.0}, "alpha": {"smoke": 41.3, "paper": 3600.0}}
    return record
