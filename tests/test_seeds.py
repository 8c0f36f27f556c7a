"""Seed sweeps (common.seeds): the seeds of --seeds, the spread over hand-made runs, the noise sentence,
the book's section, and a sweep's bookkeeping with a stand-in for the notebook run."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import nbformat
import pytest

from common import run_key, runner, seeds
from common.config import registry
from common.errors import DataError, ParameterError
from common.report import book
from common.report.progress import RunProgress

EXPERIMENT = "multi-organ"
# Accuracies of three seeds: mean 0.82, SD (ddof=1) sqrt(((-0.02)² + 0² + 0.02²) / 2) = 0.02.
ACCURACY = {42: 0.80, 43: 0.82, 44: 0.84}
# For df = 2 the chi-square distribution is exponential with mean 2: its p-quantile is -2 ln(1 - p).
CHI2_2_HIGH = -2 * math.log(0.025)  # 7.3778, the 0.975 quantile
CHI2_2_LOW = -2 * math.log(0.975)  # 0.050636, the 0.025 quantile


def write_run(experiment_dir: Path, seed: int, models: dict, profile: str = "smoke", **fields) -> Path:
    """A seed run's folder with a hand-made metrics.json."""
    folder = experiment_dir / "seeds" / str(seed)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"experiment": EXPERIMENT, "profile": profile, "seed": seed, "models": models, **fields}
    (folder / "metrics.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def estimate(value: float | None) -> dict:
    return {"value": value, "ci95": [None, None] if value is None else [value - 0.1, value + 0.1]}


@pytest.fixture
def three_seeds(tmp_path: Path) -> Path:
    """results/multi-organ with three seed runs: CNN accuracy 0.80/0.82/0.84, its AUC undefined at seed 43."""
    experiment_dir = tmp_path / EXPERIMENT
    for seed, accuracy in ACCURACY.items():
        auc = None if seed == 43 else 0.90 + (seed - 42) / 100  # 0.90 and 0.92
        models = {"CNN": {"accuracy": estimate(accuracy), "auc": estimate(auc), "n": 120, "per_class": {}}}
        write_run(experiment_dir, seed, models)
    return experiment_dir


# ----------------------------------------------------------------------------- parse_seeds


def test_a_count_is_the_registry_seed_and_the_next_integers():
    assert seeds.parse_seeds("3", first=42) == (42, 43, 44)
    assert seeds.parse_seeds(" 2 ", first=7) == (7, 8)


def test_a_list_is_taken_as_given():
    assert seeds.parse_seeds("42,45, 7", first=0) == (42, 45, 7)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1", "at least 2 seeds"),
        ("0", "at least 2 seeds"),
        ("42,", "at least 2 seeds"),
        ("42,42", "seed 42 is given twice"),
        ("all", "number of seeds"),
        ("3.5", "number of seeds"),
        ("-1,2", "number of seeds"),
        ("", "number of seeds"),
        ("\uff13", "number of seeds"),  # a full-width digit: str.isdigit says yes, int() would not do
    ],
)
def test_bad_seeds_are_a_parameter_error(text, says):
    with pytest.raises(ParameterError, match=says):
        seeds.parse_seeds(text, first=42)


def test_the_book_sweep_is_the_registry_entry():
    entry = registry.section("seed_sweeps")["book"]
    sweep = seeds.book_sweep()
    assert (sweep.experiment, sweep.count) == (entry["experiment"], entry["seeds"])
    first = registry.resolve(sweep.experiment, "smoke").seed
    assert sweep.seeds("smoke") == tuple(range(first, first + entry["seeds"]))


# ----------------------------------------------------------------------------- the spread


def test_spread_of_known_values(three_seeds):
    result = seeds.aggregate(three_seeds, [42, 43, 44])
    accuracy = result.spread("CNN", "accuracy")
    assert accuracy.mean == pytest.approx(0.82)
    assert accuracy.sd == pytest.approx(0.02)
    assert (accuracy.low, accuracy.high) == (pytest.approx(0.80), pytest.approx(0.84))
    assert accuracy.values == {42: 0.80, 43: 0.82, 44: 0.84}
    # AUC is undefined (null) at seed 43: the spread is over the other two, SD |0.92 - 0.90| / sqrt(2).
    auc = result.spread("CNN", "auc")
    assert auc.values == {42: pytest.approx(0.90), 44: pytest.approx(0.92)}
    assert auc.sd == pytest.approx(0.02 / math.sqrt(2))
    # Only the summary metrics a run has; "n" and "per_class" are no metrics.
    assert [s.metric for s in result.spreads] == ["accuracy", "auc"]
    assert (result.experiment, result.profile, result.seeds) == (EXPERIMENT, "smoke", (42, 43, 44))


def test_seeds_json_and_figure_are_written_and_read_back(three_seeds):
    result = seeds.aggregate(three_seeds, [42, 44], failed={43: "ValueError: boom"})
    seeds_file, figure = seeds.write_aggregate(result, three_seeds)
    assert seeds_file == three_seeds / "seeds.json"
    assert figure == three_seeds / "figures" / "seed_spread.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads(seeds_file.read_text())
    assert record["seeds"] == [42, 44]
    assert record["failed"] == {"43": "ValueError: boom"}
    assert record["folders"] == {"42": "seeds/42", "44": "seeds/44"}
    accuracy = record["models"]["CNN"]["accuracy"]
    assert accuracy["mean"] == pytest.approx(0.82)
    assert accuracy["sd"] == pytest.approx(0.04 / math.sqrt(2))
    assert (accuracy["min"], accuracy["max"], accuracy["n"]) == (0.80, 0.84, 2)
    assert accuracy["values"] == {"42": 0.80, "44": 0.84}
    assert record["noise"]["threshold"] == pytest.approx(1.959964 * math.sqrt(2) * 0.04 / math.sqrt(2), rel=1e-6)
    back = seeds.read_aggregate(seeds_file)
    assert back == result


def test_one_seed_has_no_sd(three_seeds):
    result = seeds.aggregate(three_seeds, [42])
    assert result.spread("CNN", "accuracy").sd is None
    with pytest.raises(DataError, match="no accuracy at 2 seeds"):
        result.noise()
    assert seeds.read_aggregate(seeds.write_aggregate(result, three_seeds)[0]).seeds == (42,)


def test_a_run_recording_another_seed_is_refused(three_seeds):
    write_run(three_seeds, 45, {"CNN": {"accuracy": estimate(0.8)}})
    record_path = three_seeds / "seeds" / "45" / "metrics.json"
    record = json.loads(record_path.read_text())
    record["seed"] = 44
    record_path.write_text(json.dumps(record))
    with pytest.raises(DataError, match="records seed 44, not 45"):
        seeds.aggregate(three_seeds, [42, 45])


def test_runs_of_different_profiles_are_refused(three_seeds):
    write_run(three_seeds, 45, {"CNN": {"accuracy": estimate(0.8)}}, profile="default")
    with pytest.raises(DataError, match="differ in profile"):
        seeds.aggregate(three_seeds, [42, 45])


def test_an_unreadable_seeds_json_is_a_data_error(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="seeds.json: cannot read"):
        seeds.read_aggregate(path)
    path.write_text(json.dumps({"experiment": "x"}))
    with pytest.raises(DataError, match="not a seed sweep's record"):
        seeds.read_aggregate(path)


# ----------------------------------------------------------------------------- the noise and the sentence


def test_sd_interval_is_the_chi_square_interval():
    low, high = seeds.sd_interval(0.02, dof=2, confidence=0.95)
    assert low == pytest.approx(0.02 * math.sqrt(2 / CHI2_2_HIGH))  # 0.010413
    assert high == pytest.approx(0.02 * math.sqrt(2 / CHI2_2_LOW))  # 0.12569
    with pytest.raises(DataError):
        seeds.sd_interval(0.02, dof=0)


def test_sentence_for_a_known_sd(three_seeds):
    result = seeds.aggregate(three_seeds, [42, 43, 44])
    noise = result.noise()
    assert noise.sd.value == pytest.approx(0.02)
    assert noise.dof == 2
    assert noise.z == pytest.approx(1.959964, abs=1e-6)
    # 1.96 * sqrt(2) * 0.02 = 0.0554; at s's interval ends 0.010413 and 0.12569: 0.0289 and 0.3484.
    assert noise.threshold == pytest.approx(0.055437, abs=1e-6)
    sentence = seeds.difference_sentence(result)
    assert "3 seeds: 42, 43 and 44" in sentence
    assert "the CNN model's test accuracy has a seed SD of s = 0.020" in sentence
    assert "s·√2 = 0.028" in sentence
    assert "below 1.96·√2·s = 0.055 between two single runs can be training noise" in sentence
    assert "95% chi-square interval is 0.010–0.126 (2 degrees of freedom)" in sentence
    assert "threshold between 0.029 and 0.348" in sentence
    assert "`smoke` profile" in sentence


def test_several_models_pool_their_variances(tmp_path):
    # CNN: 0.80/0.82/0.84 (SD 0.02); VGG16: 0.70/0.73/0.76 (SD 0.03). Pooled: sqrt((2·0.02² + 2·0.03²) / 4).
    experiment_dir = tmp_path / EXPERIMENT
    for seed, accuracy in ACCURACY.items():
        other = 0.70 + 1.5 * (accuracy - 0.80)
        models = {"CNN": {"accuracy": estimate(accuracy)}, "VGG16": {"accuracy": estimate(other)}}
        write_run(experiment_dir, seed, models)
    noise = seeds.aggregate(experiment_dir, [42, 43, 44]).noise()
    assert noise.sd.value == pytest.approx(math.sqrt(0.00065))
    assert noise.dof == 4
    assert noise.per_model == {"CNN": pytest.approx(0.02), "VGG16": pytest.approx(0.03)}
    sentence = seeds.difference_sentence(seeds.aggregate(experiment_dir, [42, 43, 44]))
    assert "pooled over 2 models (from 0.020 for CNN to 0.030 for VGG16)" in sentence
    assert "s = 0.025" in sentence


def test_no_spread_is_said_so(tmp_path):
    experiment_dir = tmp_path / EXPERIMENT
    for seed in (1, 2):
        write_run(experiment_dir, seed, {"CNN": {"accuracy": estimate(0.5)}})
    sentence = seeds.difference_sentence(seeds.aggregate(experiment_dir, [1, 2]))
    assert "was the same at every seed" in sentence
    assert "cannot rule it out" in sentence


# ----------------------------------------------------------------------------- the book


def test_the_section_renders_table_figure_and_sentence(three_seeds):
    result = seeds.aggregate(three_seeds, [42, 43, 44], failed={45: "ValueError: boom"})
    section = seeds.seed_section(result, "figures/multi-organ-seed_spread.png")
    assert section.startswith("## Seed spread\n")
    assert "| model | metric | mean ± SD | min–max | seed 42 | seed 43 | seed 44 |" in section
    assert "| CNN | accuracy | 0.820 ± 0.020 | 0.800–0.840 | 0.800 | 0.820 | 0.840 |" in section
    assert "| CNN | auc | 0.910 ± 0.014 | 0.900–0.920 | 0.900 | – | 0.920 |" in section
    assert "```{figure} figures/multi-organ-seed_spread.png\n" in section
    assert "The run of seed 45 failed and is left out (seed 45: ValueError: boom)." in section
    assert section.endswith(seeds.difference_sentence(result))
    assert "{figure}" not in seeds.seed_section(result, None)


def page_with_headings(path: Path, headings: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(f"## {heading}\n\ntext") for heading in headings]
    nbformat.write(notebook, path)
    return path


def test_book_puts_the_section_before_recording_the_run(three_seeds, tmp_path):
    seeds.write_aggregate(seeds.aggregate(three_seeds, [42, 43, 44]), three_seeds)
    pages = tmp_path / "pages"
    pages.mkdir()
    page = nbformat.read(page_with_headings(tmp_path / "p.ipynb", ["Title", "Evaluation", "Recording the run"]), 4)
    book.with_seed_section(page, three_seeds, pages)
    sources = [cell.source for cell in page.cells]
    assert sources[2].startswith("## Seed spread")
    assert sources[3].startswith("## Recording the run")
    assert "```{figure} figures/multi-organ-seed_spread.png" in sources[2]
    assert (pages / "figures" / "multi-organ-seed_spread.png").read_bytes() == (
        three_seeds / "figures" / "seed_spread.png"
    ).read_bytes()


def test_book_appends_the_section_without_that_heading_and_skips_a_run_without_seeds(three_seeds, tmp_path):
    seeds.write_aggregate(seeds.aggregate(three_seeds, [42, 43]), three_seeds)
    page = nbformat.read(page_with_headings(tmp_path / "p.ipynb", ["Title", "Evaluation"]), 4)
    book.with_seed_section(page, three_seeds, tmp_path)
    assert page.cells[-1].source.startswith("## Seed spread")
    assert page.cells[-1].metadata["tags"] == [book.SEED_SECTION_TAG]
    plain = nbformat.read(page_with_headings(tmp_path / "q.ipynb", ["Title"]), 4)
    book.with_seed_section(plain, tmp_path / "no-such-run", tmp_path)
    assert len(plain.cells) == 1


def test_overview_sentence_reads_the_book_sweep(tmp_path):
    assert seeds.overview_sentence(tmp_path) is None
    experiment_dir = tmp_path / seeds.book_sweep().experiment
    for seed, accuracy in ACCURACY.items():
        write_run(experiment_dir, seed, {"CNN": {"accuracy": estimate(accuracy)}})
    seeds.write_aggregate(seeds.aggregate(experiment_dir, [42, 43, 44]), experiment_dir)
    sentence = seeds.overview_sentence(tmp_path)
    assert sentence is not None and "s = 0.020" in sentence
    (experiment_dir / "seeds.json").write_text("[]")
    with pytest.warns(UserWarning, match="leaves out the seed spread"):
        assert seeds.overview_sentence(tmp_path) is None


# ----------------------------------------------------------------------------- running a sweep (stand-in runs)


class FakeRuns:
    """Stands in for runner.run_experiment: writes <results_dir>/<id>/ as a finished run does, or fails."""

    def __init__(self, fail: set[int]):
        self.fail, self.calls = fail, []

    def __call__(self, experiment_id, profile, data_dir, overrides, results_dir, progress=None):
        seed = overrides["seed"]
        self.calls.append(seed)
        target = Path(results_dir) / experiment_id
        progress.started(experiment_id, profile)
        if seed in self.fail:
            (target / "failed").mkdir(parents=True, exist_ok=True)
            (target / "failed" / f"{experiment_id}.ipynb").write_text("{}")
            progress.ended(experiment_id, False, 1.0, "ValueError: boom")
            return runner.RunOutcome(
                experiment_id, False, target, 1.0, "ValueError: boom", target / "failed" / f"{experiment_id}.ipynb"
            )
        target.mkdir(parents=True, exist_ok=True)
        executed = nbformat.v4.new_notebook()
        executed.cells = [
            nbformat.v4.new_code_cell('profile = "smoke"\noutput_dir = "staging"', metadata={"tags": ["parameters"]})
        ]
        executed.metadata["papermill"] = {"parameters": {"profile": profile, "output_dir": "staging"}}
        nbformat.write(executed, target / f"{experiment_id}.ipynb")
        params = registry.resolve(experiment_id, profile, dict(overrides), data_dir)
        parameters = params.as_dict()
        run_key.write(run_key.of_this_run(params), target)  # as the notebook's RunRecorder does
        record = {
            "experiment": experiment_id,
            "profile": profile,
            "seed": seed,
            "parameters": parameters,
            "wall_time_s": 2.5,
            "models": {"CNN": {"accuracy": estimate(ACCURACY[seed])}},
        }
        (target / "metrics.json").write_text(json.dumps(record))
        progress.ended(experiment_id, True, 2.5)
        return runner.RunOutcome(experiment_id, True, target, 2.5, notebook=target / f"{experiment_id}.ipynb")


def test_a_sweep_runs_each_seed_into_its_folder_and_leaves_out_a_failed_one(tmp_path, monkeypatch):
    fake = FakeRuns(fail={43})
    monkeypatch.setattr(runner, "run_experiment", fake)
    sweep = seeds.run_seeds(EXPERIMENT, (42, 43, 44), "smoke", results_dir=tmp_path)
    experiment_dir = tmp_path / EXPERIMENT
    assert [o.ok for o in sweep.outcomes] == [True, False, True]
    assert sweep.failed == [43]
    assert [o.experiment for o in sweep.outcomes] == [f"{EXPERIMENT} seed {s}" for s in (42, 43, 44)]
    assert sweep.outcomes[1].notebook == experiment_dir / "seeds" / "43" / "failed" / f"{EXPERIMENT}.ipynb"
    assert sweep.outcomes[1].notebook.exists()
    assert (experiment_dir / "seeds" / "42" / "metrics.json").exists()
    # The executed notebook names the seed's folder (outside the project: <id>/seeds/<seed>), not the staging one.
    executed = nbformat.read(experiment_dir / "seeds" / "42" / f"{EXPERIMENT}.ipynb", 4)
    assert executed.metadata["papermill"]["parameters"] == {"profile": "smoke", "output_dir": f"{EXPERIMENT}/seeds/42"}
    assert executed.cells[0].source == f'profile = "smoke"\noutput_dir = "{EXPERIMENT}/seeds/42"'
    assert sorted(p.name for p in (experiment_dir / "seeds").iterdir()) == ["42", "43", "44"]  # no staging left
    assert sweep.aggregate.seeds == (42, 44)
    assert sweep.aggregate.failed == {43: "ValueError: boom"}
    assert sweep.aggregate.spread("CNN", "accuracy").mean == pytest.approx(0.82)
    assert sweep.seeds_file == experiment_dir / "seeds.json" and sweep.figure.exists()
    # Again: 42 and 44 are reused, 43 runs again (its folder holds only a failure).
    fake.fail = set()
    again = seeds.run_seeds(EXPERIMENT, (42, 43, 44), "smoke", results_dir=tmp_path)
    assert fake.calls == [42, 43, 44, 43]
    assert [bool(o.extra.get("reused")) for o in again.outcomes] == [True, False, True]
    assert again.outcomes[0].wall_time_s == 2.5
    assert again.aggregate.seeds == (42, 43, 44)
    # The failure of the earlier run of 43 stays in its folder, beside the finished run.
    assert (experiment_dir / "seeds" / "43" / "failed" / f"{EXPERIMENT}.ipynb").exists()
    # force runs every seed; other parameters do not reuse a run either.
    seeds.run_seeds(EXPERIMENT, (42, 43), "smoke", results_dir=tmp_path, force=True)
    assert fake.calls[-2:] == [42, 43]
    seed_42 = experiment_dir / "seeds" / "42"
    assert "parameter epochs" in run_key.stale_reason(seed_42, EXPERIMENT, "smoke", None, {"seed": 42, "epochs": 3})
    assert "profile smoke, not default" in run_key.stale_reason(seed_42, EXPERIMENT, "default", None, {"seed": 42})
    assert "parameter seed 42 -> 43" in run_key.stale_reason(seed_42, EXPERIMENT, "smoke", None, {"seed": 43})
    assert run_key.stale_reason(seed_42, EXPERIMENT, "smoke", None, {"seed": 42}) is None


def test_the_experiments_own_run_of_a_seed_is_copied_not_run_again(tmp_path, monkeypatch):
    fake = FakeRuns(fail=set())
    monkeypatch.setattr(runner, "run_experiment", fake)
    lines = RunProgress(io.StringIO(), live=False)
    fake(EXPERIMENT, "smoke", None, {"seed": 42}, tmp_path, lines)  # the experiment's run, as camstudy book makes it
    experiment_dir = tmp_path / EXPERIMENT
    (experiment_dir / "failed").mkdir()
    sweep = seeds.run_seeds(EXPERIMENT, (42, 43), "smoke", results_dir=tmp_path)
    assert fake.calls == [42, 43]  # the first call made the main run; the sweep ran only 43
    assert [bool(o.extra.get("reused")) for o in sweep.outcomes] == [True, False]
    copied = experiment_dir / "seeds" / "42"
    assert run_key.stale_reason(copied, EXPERIMENT, "smoke", None, {"seed": 42}) is None
    assert not (copied / "failed").exists() and not (copied / "seeds").exists()
    executed = nbformat.read(copied / f"{EXPERIMENT}.ipynb", 4)
    assert executed.metadata["papermill"]["parameters"]["output_dir"] == f"{EXPERIMENT}/seeds/42"
    assert sweep.aggregate.seeds == (42, 43)
    # Another parameter than the main run's: seed 42 runs.
    seeds.run_seeds(EXPERIMENT, (42, 43), "smoke", overrides={"epochs": 2}, results_dir=tmp_path)
    assert fake.calls[2:] == [42, 43]


def test_a_sweep_with_no_finished_seed_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "run_experiment", FakeRuns(fail={1, 2}))
    sweep = seeds.run_seeds(EXPERIMENT, (1, 2), "smoke", results_dir=tmp_path)
    assert sweep.aggregate is None and sweep.failed == [1, 2]
    assert not (tmp_path / EXPERIMENT / "seeds.json").exists()
    assert "no seed run finished" in seeds.describe(sweep)


@pytest.mark.parametrize(
    ("sweep_seeds", "overrides", "says"),
    [
        ((42,), {}, "at least 2 different seeds"),
        ((42, 42), {}, "at least 2 different seeds"),
        ((42, 43), {"seed": 7}, "not -p seed"),
        ((42, 43), {"epochs": "many"}, "epochs"),
    ],
)
def test_a_bad_sweep_is_refused_before_anything_runs(tmp_path, monkeypatch, sweep_seeds, overrides, says):
    fake = FakeRuns(fail=set())
    monkeypatch.setattr(runner, "run_experiment", fake)
    with pytest.raises(ParameterError, match=says):
        seeds.run_seeds(EXPERIMENT, sweep_seeds, "smoke", overrides=overrides, results_dir=tmp_path)
    assert fake.calls == []
