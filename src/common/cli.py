"""``camstudy``: the command line of the study (argument parsing only).

Every subcommand calls into the modules of ``common``; errors the study raises
on purpose (:class:`common.errors.StudyError`) are printed as one line and
exit with status 2, without a traceback that hides the cause.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from common import quiet
from common.config import registry
from common.errors import ParameterError, StudyError, StudyWarning, failure_line, log_traceback


class _LazyChoices(Sequence):
    """An argument's choices, read from ``read()`` when argparse first needs them."""

    def __init__(self, read: Callable[[], Sequence[str]]) -> None:
        self._read = read

    def __getitem__(self, index):
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="execute an experiment notebook (or all) through papermill",
        description="Execute notebooks/<id>.ipynb with papermill into results/<id>/.",
    )
    run.add_argument("experiment", help=f"one of {', '.join(registry.experiment_ids())}, or 'all'")
    run.add_argument("--profile", default="default", choices=registry.PROFILES)
    run.add_argument("--data-dir", help="root of a real data set (default: the embedded phantoms)")
    run.add_argument("--annotations", metavar="DIR", help="Pascal VOC lesion boxes of the --data-dir slices")
    run.add_argument("--results-dir", help="where results/<id>/ folders go (default: results/)")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter (YAML value, e.g. -p epochs=3 -p 'models=[VGG16, ResNet50]')",
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress lines redrawn in place: one line as each notebook starts and ends",
    )
    run.add_argument(
        "--seeds",
        metavar="N|S1,S2,...",
        help="run the experiment once per seed, into results/<id>/seeds/<seed>/, and write the spread of its "
        "metrics to results/<id>/seeds.json: N seeds from the registry's (N at least 2), or a list (42,43,44)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --seeds: run every seed again, also one whose finished run nothing has changed since",
    )
    _add_jobs(run)
    run.set_defaults(handler=_cmd_run)


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="with several experiments, run N notebooks at once (default: 1)",
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from common import runner
    from common.report.progress import RunProgress

    overrides = registry.parse_overrides(args.param)
    if args.annotations is not None:
        overrides["annotations"] = args.annotations
    if args.seeds is not None:
        return _run_seeds(args, overrides)
    if args.force:
        raise ParameterError("--force goes with --seeds (a run without --seeds always runs).")
    if args.experiment == "all":
        outcomes = runner.run_all(
            args.profile,
            args.data_dir,
            overrides,
            args.results_dir,
            progress_bar=not args.no_progress,
            jobs=args.jobs,
        )
    else:
        with RunProgress(live=False if args.no_progress else None) as progress:
            run = runner.run_experiment(
                args.experiment, args.profile, args.data_dir, overrides, args.results_dir, progress
            )
        outcomes = [run]
    return _report_runs(outcomes)


def _run_seeds(args: argparse.Namespace, overrides: dict) -> int:
    """``camstudy run ID --seeds ...``: one run per seed, the summary, and where the spread went."""
    from common import seeds
    from common.report.progress import RunProgress

    if args.experiment == "all":
        raise ParameterError("--seeds runs one experiment over several seeds; name the experiment instead of 'all'.")
    if args.jobs != 1:
        raise ParameterError("--seeds runs the seeds one after another; leave out --jobs.")
    chosen = seeds.parse_seeds(args.seeds, seeds.registry_seed(args.experiment, args.profile))
    with RunProgress(live=False if args.no_progress else None) as progress:
        sweep = seeds.run_seeds(
            args.experiment,
            chosen,
            args.profile,
            args.data_dir,
            overrides,
            args.results_dir,
            force=args.force,
            progress=progress,
        )
    status = _report_runs(list(sweep.outcomes))
    print(seeds.describe(sweep))
    return status


def _report_runs(outcomes: list) -> int:
    """Print the runs' summary table, then one line per failure naming its notebook and log; the exit status."""
    from common.report.progress import summary_table

    if not outcomes:
        return 0
    print(summary_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        kept = ""
        if outcome.notebook:  # a run refused before it started has none
            kept = f"; its notebook and log are in {outcome.notebook.parent}, earlier results untouched"
        print(f"failed: {outcome.experiment}: {outcome.error}{kept}", file=sys.stderr)
    return 1 if failed else 0


def _add_book(sub: argparse._SubParsersAction) -> None:
    book = sub.add_parser(
        "book",
        help="build the Jupyter Book from results/ (runs first each experiment whose inputs changed)",
        description="Run each experiment (and each seed of the sweep) whose results are missing or depend on "
        "anything changed since (notebook, parameters, code, registry, data, packages: its run_key.json), "
        "reuse the rest, then build the book.",
    )
    book.add_argument("--profile", default="default", choices=registry.PROFILES)
    book.add_argument(
        "--force", action="store_true", help="rerun every experiment (and the seed sweep's seeds) before building"
    )
    book.add_argument(
        "--no-run", action="store_true", help="build from the results as they are (no runs, no seed sweep)"
    )
    real_help = "also run the experiments that fit a real data set (manifest name and folder) into results/real/"
    book.add_argument("--real", action="append", default=[], metavar="NAME=DIR", help=real_help)
    _add_jobs(book)
    book.set_defaults(handler=_cmd_book)


def _cmd_book(args: argparse.Namespace) -> int:
    from common import real_runs, run_key, runner, seeds
    from common.report import book
    from common.report.progress import RunProgress
    from common.report.results import results_root

    real = [real_runs.parse(spec) for spec in args.real]  # every NAME=DIR checked before anything runs
    status = 0
    if not args.no_run:
        sweep = seeds.book_sweep()
        sweep_seeds = sweep.seeds(args.profile)  # checked before anything runs
        status = _bench_if_stale(args.force)
        pending = run_key.pending(registry.experiment_ids(), results_root(), args.profile, force=args.force)
        outcomes = runner.run_all(args.profile, experiments=pending, jobs=args.jobs) if pending else []
        outcomes += real_runs.run(real, args.profile, args.jobs, args.force)
        with RunProgress() as progress:
            swept = seeds.run_seeds(sweep.experiment, sweep_seeds, args.profile, force=args.force, progress=progress)
        status = max(status, _report_runs(outcomes + list(swept.outcomes)))
        print(seeds.describe(swept))
    index = book.build()
    print(index)
    return status


def _bench_if_stale(force: bool) -> int:
    """The book's performance page reads the quick bench: run it (in its own process) unless nothing it used changed."""
    import subprocess

    from common import bench

    reason = "--force" if force else bench.stale_reason(quick=True)
    if reason is None:
        print("bench: reused, nothing it depends on changed")
        return 0
    print(f"bench: runs ({reason})")
    return subprocess.run([sys.executable, "-m", "common", "bench", "--quick"], check=False).returncode


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="embedded phantoms and data-set manifests")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    phantoms = data_sub.add_parser("phantoms", help="generate the embedded phantom data sets")
    phantoms.add_argument("kind", nargs="?", help="chest, multi_organ or chest_volumes (default: all)")
    phantoms.add_argument(
        "--profile", default="default", choices=registry.PROFILES, help="generate the sizes this profile uses"
    )
    phantoms.add_argument("--out", help="root folder (default: data/phantoms)")
    phantoms.set_defaults(handler=_cmd_phantoms)
    verify = data_sub.add_parser("verify", help="check a data folder against its manifest")
    verify.add_argument("manifest", help="manifest name (data_manifests/<name>.yaml) or path")
    verify.add_argument("--data-dir", required=True)
    verify.set_defaults(handler=_cmd_verify)
    fetch = data_sub.add_parser(
        "fetch",
        help="download a data set from its manifest's URL, check it and unpack it",
        description="Download the archive named in the manifest's download section, check its SHA-256, "
        "unpack it safely and verify it; a folder that already verifies is left alone.",
    )
    fetch.add_argument("manifest", help="manifest name (data_manifests/<name>.yaml) or path")
    fetch.add_argument("--out", required=True, help="folder to hold the class folders (must not hold other files)")
    fetch.add_argument("--no-progress", action="store_true", help="hide the download progress bar")
    fetch.add_argument(
        "--insecure", action="store_true", help="download even when the manifest gives no SHA-256 (unchecked)"
    )
    fetch.set_defaults(handler=_cmd_fetch)


def _cmd_phantoms(args: argparse.Namespace) -> int:
    from common.experiments import loading

    for folder in loading.prepare_phantoms(args.profile, kind=args.kind, root=args.out):
        print(folder)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from common.data import manifest

    report = manifest.verify(manifest.load_manifest(args.manifest), args.data_dir)
    print(manifest.format_report(report))
    return 0 if report["ok"] else 1


def _cmd_fetch(args: argparse.Namespace) -> int:
    from common.data import fetch

    result = fetch.fetch(args.manifest, args.out, progress=not args.no_progress, insecure=args.insecure)
    print(fetch.describe(result))
    return 0


def _add_audit(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser(
        "audit",
        help="find duplicate images (leakage audit) and shortcuts (shortcut audit) of a class-folder data set",
        description="Write audit.json, duplicate_groups.csv and a figure of the most similar pairs "
        "across the splits of a seeded image-level 70/15/15 split, and the shortcut audit (does metadata or "
        "intensity predict the class?) in audit.json's 'shortcut' section.",
    )
    audit.add_argument("data_dir", help="folder with one sub-folder of images per class")
    audit.add_argument(
        "--label-map",
        metavar="MANIFEST",
        help="take the label map from this data manifest (name or YAML path); default: the folder names are the labels",
    )
    audit.add_argument(
        "--threshold", type=float, default=0.98, help="cosine similarity of near duplicates (default 0.98)"
    )
    audit.add_argument(
        "--max-hamming",
        type=int,
        default=0,
        help="perceptual-hash distance of near duplicates (default 0; -1 turns it off)",
    )
    audit.add_argument("--seed", type=int, default=42, help="seed of the split the leakage is measured on")
    audit.add_argument("--out", help="output folder (default: results/audit)")
    audit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    audit.add_argument("--no-shortcuts", action="store_true", help="skip the shortcut audit (leakage audit only)")
    audit.set_defaults(handler=_cmd_audit)


def _cmd_audit(args: argparse.Namespace) -> int:
    from common.data import audit, manifest
    from common.report.results import results_root

    label_map = manifest.load_manifest(args.label_map)["label_map"] if args.label_map else None
    result = audit.run(
        args.data_dir,
        args.out or results_root() / "audit",
        label_map,
        threshold=args.threshold,
        max_hamming=args.max_hamming,
        split_seed=args.seed,
        progress=not args.no_progress,
        check_shortcuts=not args.no_shortcuts,
    )
    print(audit.summary(result))
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    from common import predict

    parser = sub.add_parser(
        "predict",
        help="predict and explain image files (or DICOM series folders) with a run's saved model",
        description="Load results/<id>/model.keras in safe mode, make each input exactly as the run did "
        "(recorded in model_card.json), and write per input its probabilities (<name>.json), "
        "the CAM overlay (<name>_overlay.png) and the contour map (<name>_contours.png); a DICOM series "
        "also a montage of its slices (<name>_montage.png) and the CAM's projections (<name>_mip.png).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE",
        help="PNG/JPEG/DICOM slice files, or DICOM series folders for a volume model (gradcam-3d)",
    )
    parser.add_argument(
        "--experiment",
        required=True,
        metavar="ID",
        help=f"the run whose model predicts: {', '.join(registry.experiment_ids())}",
    )
    parser.add_argument("--model", metavar="PATH", help="a .keras file instead of results/<id>/model.keras")
    method = parser.add_argument("--method", default="gradcam", help="CAM method")
    # Set after add_argument, which would list the choices at once: the names come from the CAM
    # methods' module, which imports TensorFlow; only help or a --method value reads them.
    method.choices = _LazyChoices(predict.cam_methods)
    parser.add_argument("--layer", help="CAM layer (default: the run's own)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: results/<id>/predictions)")
    parser.add_argument("--results-dir", help="where results/<id>/ folders are (default: results/)")
    parser.add_argument("--batch-size", type=int, default=16, help="inputs predicted together")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from common import predict

    run_model = predict.load_run_model(args.experiment, args.model, args.results_dir)
    out_dir = Path(args.out) if args.out else predict.run_dir(args.experiment, args.results_dir) / "predictions"
    records, errors = predict.predict_paths(
        run_model,
        args.inputs,
        out_dir,
        args.method,
        args.layer,
        args.batch_size,
        progress=not args.no_progress,
    )
    print(predict.model_banner(run_model.card))
    print(predict.probability_table(records, run_model.classes))
    if records:
        print(f"{len(records)} prediction(s) written to {out_dir}")
    for message in errors:
        print(f"camstudy: error: {message}", file=sys.stderr)
    if errors:
        # Each bad input is reported on its own line above and the others were predicted: a failure
        # of some inputs, not a misused command.
        print(f"camstudy: {len(errors)} of {len(args.inputs)} input(s) could not be predicted (above)", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _add_app(sub: argparse._SubParsersAction) -> None:
    from common import predict

    parser = sub.add_parser(
        "app",
        help="serve the Streamlit page that predicts and explains uploaded images",
        description="Run `streamlit run src/common/app.py` headless; open the printed address in a browser.",
    )
    parser.add_argument("--port", type=int, default=predict.DEFAULT_PORT)
    parser.add_argument(
        "--address",
        default=predict.DEFAULT_ADDRESS,
        help="interface to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--results-dir", help="where results/<id>/ folders are (default: results/)")
    parser.set_defaults(handler=_cmd_app)


def _cmd_app(args: argparse.Namespace) -> int:
    import subprocess

    from common import predict

    env = dict(os.environ)
    if args.results_dir:
        env[predict.RESULTS_DIR_ENV] = str(Path(args.results_dir).resolve())
    print(f"camstudy app: http://{args.address}:{args.port} (Ctrl+C stops it)")
    try:
        return subprocess.call(predict.streamlit_command(args.port, args.address), env=env)
    except KeyboardInterrupt:
        return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure the pipeline, training and CAM speed ratios",
        description="Measure the performance ratios and write bench.json.",
    )
    bench.add_argument("--quick", action="store_true", help="small measurements (under two minutes)")
    bench.add_argument("--out", help="output file (default: results/bench.json)")
    bench.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from common import bench

    record = bench.run(quick=args.quick, out=args.out, progress=lambda line: print(line, file=sys.stderr))
    print(bench.summary(record))
    return 0


def _add_assign(sub: argparse._SubParsersAction) -> None:
    from common.course import DEFAULT_TIMEOUT_S

    assign = sub.add_parser(
        "assign",
        help="course assignments: build student and autograder versions, grade submitted notebooks (otter-grader)",
    )
    assign_sub = assign.add_subparsers(dest="assign_command", required=True)
    build = assign_sub.add_parser(
        "build",
        help="build the student and autograder versions of the source notebooks with otter assign",
        description="Run `otter assign` on each source notebook: OUT/<name>/student/<name>.ipynb (no solutions, "
        "no hidden tests), OUT/<name>/autograder/<name>.ipynb and <name>-autograder.zip, OUT/<name>/questions.json.",
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="assignments to build (default: all in --source)")
    build.add_argument("--source", metavar="DIR", help="folder of source notebooks (default: assignments/)")
    build.add_argument("--out", metavar="DIR", help="output folder (default: _build/assignments/)")
    build.add_argument("--no-check", action="store_true", help="do not run the tests against the solutions")
    build.set_defaults(handler=_cmd_assign_build)
    grade = assign_sub.add_parser(
        "grade",
        help="grade every submitted notebook of a folder with otter run (no Docker)",
        description="Grade each *.ipynb under SUBMISSIONS_DIR against its assignment's autograder and write "
        "grades.csv (with an empty column per question graded by hand) and grades.json (with the test outputs).",
    )
    grade.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="folder of submitted notebooks (recursive)")
    grade.add_argument("--autograders", metavar="DIR", help="what assign build wrote (default: _build/assignments/)")
    grade.add_argument("--out", metavar="DIR", help="where the grades go (default: SUBMISSIONS_DIR/grades)")
    grade.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"grading time allowed per submission (default {DEFAULT_TIMEOUT_S:g})",
    )
    grade.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="submissions graded at the same time (default 1)"
    )
    grade.set_defaults(handler=_cmd_assign_grade)


def _cmd_assign_build(args: argparse.Namespace) -> int:
    from common import course

    def report(built: course.BuiltAssignment) -> None:
        if built.ok:
            print(course.describe_build(built), flush=True)
        else:
            print(f"camstudy: error: {course.describe_build(built)}", file=sys.stderr, flush=True)

    built = course.build_assignments(args.names, args.source, args.out, check=not args.no_check, on_built=report)
    return 0 if all(b.ok for b in built) else EXIT_FAILURE


def _cmd_assign_grade(args: argparse.Namespace) -> int:
    from common import course

    def report(graded: course.GradedSubmission) -> None:
        print(course.describe_submission(graded), flush=True)

    result = course.grade_folder(
        args.submissions, args.autograders, args.out, args.timeout, on_graded=report, jobs=args.jobs
    )
    print(course.describe_report(result))
    return 0 if result.ok else EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """Return the ``camstudy`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="camstudy",
        description="A reproduction protocol for five Grad-CAM tumour-detection studies (see README.md).",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_book, _add_data, _add_audit, _add_predict, _add_app, _add_bench, _add_assign):
        add(sub)
    return parser


# Exit statuses: a user's mistake (bad input, parameter or path), a failure, an interrupt (128 + SIGINT).
EXIT_USER_ERROR, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``camstudy`` and ``python -m common``: one error boundary for every command.

    Every error ends as one line on stderr naming the input and what to do; an
    unexpected one also writes its traceback to ``results/camstudy.log`` and
    names that file. ``--debug`` raises instead, with the traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.handler in (_cmd_predict, _cmd_bench):
                quiet.import_tensorflow()
            return args.handler(args)
    except KeyboardInterrupt:
        print("camstudy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (StudyError, OSError) as exc:
        if args.debug:
            raise
        print(f"camstudy: error: {_user_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if args.debug:
            raise
        log = log_traceback(exc, f"camstudy {' '.join(sys.argv[1:])}")
        print(f"camstudy: error: {failure_line(exc, log)}; --debug shows it here", file=sys.stderr)
        return EXIT_FAILURE


_DEFAULT_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The study's warnings as one line each; others as Python shows them."""
    if issubclass(category, StudyWarning):
        print(f"camstudy: warning: {message}", file=file or sys.stderr)
    else:
        _DEFAULT_SHOWWARNING(message, category, filename, lineno, file, line)


def _user_error(exc: BaseException) -> str:
    """The one line of a user's mistake: the study's message, or the path an OS error names."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
