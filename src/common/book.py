"""Assemble and build the Jupyter Book from the executed notebooks in ``results/``.

The book never executes anything. :func:`assemble` copies each experiment's
executed notebook into ``book/experiments/`` with a run-summary banner on top,
and generates the results overview from every ``results/*/metrics.json``;
:func:`build` then runs ``jupyter-book build`` with warnings as errors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from common import registry
from common.errors import StudyError
from common.results import project_root, read_metrics, results_root, run_banner

BOOK_DIR = "book"
EXPERIMENT_PAGES = "book/experiments"
GENERATED = "book/generated"
# Figures the overview shows for every experiment that produced them.
HEADLINE_FIGURES = ("confusion_matrix", "cam_grid")


def _with_banner(notebook_file: Path, metrics: dict) -> nbformat.NotebookNode:
    """Return the executed notebook with a run-summary banner after its title cell."""
    notebook = nbformat.read(notebook_file, as_version=4)
    banner = nbformat.v4.new_markdown_cell(
        ":::{note}\n" + run_banner(metrics) + "\n:::", metadata={"tags": ["run-banner"]}
    )
    notebook.cells.insert(1, banner)
    return notebook


def _missing_page(experiment_id: str) -> str:
    entry = registry.experiment(experiment_id)
    return (
        f"# {entry['title']}\n\n"
        f"This experiment has no finished run in `results/{experiment_id}/` yet. "
        f"Run it with\n\n```bash\ncamstudy run {experiment_id}\n```\n\n"
        "and build the book again.\n"
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def overview_markdown(all_metrics: dict[str, dict], figure_dir: Path) -> str:
    """Return the results overview page: one table of paper claims vs this study's runs.

    Every row comes from a ``metrics.json`` (its ``paper_vs_run`` rows, written
    by the notebook from the registry's claims); nothing is typed here.

    Args:
        all_metrics: ``{experiment id: metrics.json record}`` of the finished runs.
        figure_dir: Folder to copy headline figures into (beside the page).
    """
    lines = [
        "# Results overview",
        "",
        "Each row sets a paper's claim beside the value this study measured, with its 95% "
        "confidence interval, and says which profile and data the run used. A phantom run "
        "(`default` or `smoke` profile) checks that the pipeline learns and explains on data "
        "with known lesions; it does not reproduce the paper's number, which needs the "
        "`paper` profile on the real data set.",
        "",
        "| experiment | model | metric | paper | this run | 95% CI | profile | data |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for experiment_id in registry.experiment_ids():
        metrics = all_metrics.get(experiment_id)
        if metrics is None:
            lines.append(f"| {experiment_id} | – | – | – | not run | – | – | – |")
            continue
        source = metrics.get("data", {}).get("source", "?")
        rows = metrics.get("paper_vs_run") or []
        if not rows:
            lines.append(
                f"| {experiment_id} | – | – | no numbers reported | – | – | "
                f"{metrics['profile']} | {source} |"
            )
        for row in rows:
            ci = row.get("ci95") or [None, None]
            lines.append(
                f"| {experiment_id} | {row['model']} | {row['metric']} | {_fmt(row.get('paper'))} | "
                f"{_fmt(row.get('this_run'))} | [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
                f"{metrics['profile']} | {source} |"
            )
    lines += ["", "## Headline figures", ""]
    for experiment_id, metrics in all_metrics.items():
        figures_dir = results_root() / experiment_id / "figures"
        for name in HEADLINE_FIGURES:
            source_png = figures_dir / f"{name}.png"
            if source_png.exists():
                target = figure_dir / f"{experiment_id}-{name}.png"
                shutil.copyfile(source_png, target)
                lines += [f"**{experiment_id}: {name.replace('_', ' ')}**", "",
                          f"![{experiment_id} {name}](figures/{target.name})", ""]
    return "\n".join(lines) + "\n"


def assemble(results_dir: Path | None = None) -> dict[str, dict]:
    """Copy executed notebooks into the book and generate its overview page.

    Returns:
        ``{experiment id: metrics.json record}`` of the runs found.
    """
    top = project_root()
    results_dir = results_dir or results_root()
    pages = top / EXPERIMENT_PAGES
    generated = top / GENERATED
    for folder in (pages, generated):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (generated / "figures").mkdir()
    found: dict[str, dict] = {}
    for experiment_id in registry.experiment_ids():
        run_dir = results_dir / experiment_id
        notebook_file = run_dir / f"{experiment_id}.ipynb"
        metrics_file = run_dir / "metrics.json"
        if notebook_file.exists() and metrics_file.exists():
            metrics = read_metrics(metrics_file)
            found[experiment_id] = metrics
            nbformat.write(_with_banner(notebook_file, metrics), pages / f"{experiment_id}.ipynb")
        else:
            (pages / f"{experiment_id}.md").write_text(_missing_page(experiment_id), encoding="utf-8")
    (generated / "overview.md").write_text(
        overview_markdown(found, generated / "figures"), encoding="utf-8"
    )
    return found


def build(results_dir: Path | None = None, warnings_as_errors: bool = True) -> Path:
    """Assemble the book and build it to ``_build/html``; return ``index.html``.

    Raises:
        StudyError: when ``jupyter-book build`` fails (its output is included).
    """
    assemble(results_dir)
    top = project_root()
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(top), "--builder", "html"]
    if warnings_as_errors:
        command += ["-W", "-n", "--keep-going"]
    done = subprocess.run(command, cwd=top, capture_output=True, text=True)
    if done.returncode != 0:
        raise StudyError(f"jupyter-book build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return top / "_build" / "html" / "index.html"
