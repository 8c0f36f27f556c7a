"""Tests of common.experiments.session: the first step of every notebook."""

import keras
import pytest

from common.config.params import IqothParams
from common.errors import ParameterError
from common.experiments import session


def test_start_resolves_seeds_and_opens_the_recorder(tmp_path):
    started = session.start("iqoth", "smoke", {"epochs": 2}, output_dir=tmp_path / "run")
    assert isinstance(started.params, IqothParams) and started.params.epochs == 2
    assert started.recorder.output_dir == tmp_path / "run" and (tmp_path / "run" / "figures").is_dir()
    assert started.runtime.record["replicas"] == 1
    assert keras.mixed_precision.global_policy().name == "float32"
    table = started.parameters_table().data
    assert table.loc["epochs", "value"] == "2" and "label_map" not in table.index


def test_the_parameter_table_says_where_each_paper_setting_comes_from(tmp_path):
    started = session.start("resnet50-gradcam", "smoke", output_dir=tmp_path / "run")
    table = started.parameters_table().data
    assert table.loc["batch_size", ["value", "paper profile", "source"]].tolist() == ["8", "32", "the paper"]
    assert table.loc["learning_rate", "source"] == "chosen here"
    assert "not given" in table.loc["learning_rate", "where / why"]
    assert table.loc["profile", "source"] == ""  # the run's own fields have no paper value
    assert "differs from the paper profile" in started.provenance().summary()


def test_start_refuses_an_unknown_parameter_before_writing_anything(tmp_path):
    with pytest.raises(ParameterError, match="Unknown parameter 'epoch'"):
        session.start("iqoth", "smoke", {"epoch": 2}, output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_parameter_table_shows_folders_without_machine_paths(tmp_path):
    data = tmp_path / "my-scans"
    boxes = tmp_path / "voc-boxes"
    for folder in (data, boxes):
        folder.mkdir()
    started = session.start("iqoth", "smoke", {"annotations": str(boxes)}, data, output_dir=tmp_path / "run")
    table = started.parameters_table().data
    assert table.loc["data_dir", "value"] == "my-scans" and table.loc["annotations", "value"] == "voc-boxes"
    assert str(tmp_path) not in table.to_string()
    assert started.params.data_dir == str(data)  # the run itself keeps the full path
