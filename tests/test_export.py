"""`dlrun export`: a real tiny sweep into TensorBoard and MLflow, read back with their own readers."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FLOAT32_RTOL
from typer.testing import CliRunner

from dlrun.cli import app

runner = CliRunner()
TRIALS = 4  # lr x seed


def dlrun(*args):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "lr-study"
    result = dlrun(
        "sweep", "data=moons", "model.hidden=[8]", "epochs=3", "lr=0.1,0.01", "seed=0,1", "--out", out
    )
    assert result.exit_code == 0, result.output
    return out


def trials(sweep):
    return sorted(sweep.glob("trial-*"))


def tensorboard_runs(logdir):
    """{run name: EventAccumulator} for every folder under `logdir` holding event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for folder, _, files in os.walk(logdir):
        if any(name.startswith("events.out.tfevents.") for name in files):
            accumulator = EventAccumulator(folder)
            accumulator.Reload()
            found[os.path.relpath(folder, logdir)] = accumulator
    return found


def tensor_values(accumulator, tag):
    from tensorboard.util import tensor_util

    return {
        event.step: float(tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)
    }


def test_tensorboard_holds_each_run_once_with_its_curves_and_hparams(sweep, tmp_path):
    from tensorboard.plugins.hparams import api_pb2, metadata

    logdir = tmp_path / "tb"
    for _ in range(2):  # the second export must replace, not add
        result = dlrun("export", sweep, "--to", "tensorboard", logdir)
        assert result.exit_code == 0, result.output
        assert f"exported {TRIALS} runs to tensorboard" in result.output
        assert len(list(logdir.rglob("events.out.tfevents.*"))) == TRIALS + 1
    found = tensorboard_runs(logdir)
    assert sorted(found) == [".", *(f"lr-study/{trial.name}" for trial in trials(sweep))]
    for trial in trials(sweep):
        accumulator = found[f"lr-study/{trial.name}"]
        curves = pd.read_csv(trial / "metrics.csv")
        for column, tag in (
            ("val_loss", "epoch/val_loss"),
            ("train_accuracy", "epoch/train_accuracy"),
            ("grad_norm", "gradients/grad_norm"),
            ("grad_norm_output", "gradients/grad_norm_output"),
        ):
            values = tensor_values(accumulator, tag)
            assert list(values) == list(curves["epoch"])  # one point per epoch, not two
            np.testing.assert_allclose(list(values.values()), curves[column], rtol=FLOAT32_RTOL)
        content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        config = pd.read_csv(sweep / "trials.csv").set_index("trial").loc[trial.name]
        assert start.hparams["lr"].number_value == pytest.approx(config["lr"])
        assert start.hparams["seed"].number_value == config["seed"]
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        assert end.status == api_pb2.STATUS_SUCCESS
        assert tensor_values(accumulator, "summary/best_val_loss")  # a metric of the hparams table
    experiment = metadata.parse_experiment_plugin_data(
        found["."].PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    )
    domains = {
        info.name: sorted(v.number_value for v in info.domain_discrete.values)
        for info in experiment.hparam_infos
    }
    assert domains == {"lr": [0.01, 0.1], "seed": [0.0, 1.0]}
    assert "summary/best_val_accuracy" in [m.name.tag for m in experiment.metric_infos]


def mlflow_runs(uri):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store without it
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dlrun")
    return client, client.search_runs([experiment.experiment_id])


def test_mlflow_has_a_parent_for_the_sweep_and_each_trial_once(sweep, tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    for _ in range(2):  # the second export must find and update the runs it made
        result = dlrun("export", sweep, "--to", "mlflow", uri)
        assert result.exit_code == 0, result.output
    client, found = mlflow_runs(uri)
    by_dir = {run.data.tags["dlrun.run_dir"]: run for run in found}
    assert len(found) == TRIALS + 1 == len(by_dir)
    parent = by_dir[str(sweep.resolve())]
    assert {key: value for key, value in parent.data.params.items()} == {
        "sweep.lr": "0.1,0.01",
        "sweep.seed": "0,1",
    }
    labels = pd.read_csv(sweep / "trials.csv").set_index("trial")
    for trial in trials(sweep):
        run = by_dir[str(trial.resolve())]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["dlrun.status"] == "completed" and run.info.status == "FINISHED"
        assert run.data.tags["dlrun.diagnosis"]  # the report's label, whatever it is
        assert float(run.data.params["lr"]) == pytest.approx(labels.loc[trial.name, "lr"])
        assert run.data.params["model.hidden"] == "[8]"
        curves = pd.read_csv(trial / "metrics.csv")
        for column in ("train_loss", "val_accuracy", "grad_norm"):
            history = client.get_metric_history(run.info.run_id, column)
            assert [point.step for point in history] == list(curves["epoch"])
            np.testing.assert_allclose([p.value for p in history], curves[column], rtol=FLOAT32_RTOL)
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["summary.json"]


def test_the_diagnosis_tag_is_the_reports_label(sweep, tmp_path):
    from dlrun.report.build import build_report

    uri = (tmp_path / "mlruns").as_uri()
    assert dlrun("export", sweep, "--to", "mlflow", uri).exit_code == 0
    _, found = mlflow_runs(uri)
    tags = {run.data.tags["dlrun.run_dir"]: run.data.tags.get("dlrun.diagnosis") for run in found}
    rows = build_report([sweep]).rows
    expected = {
        str(Path(folder).resolve()): label for folder, label in zip(rows["folder"], rows["diagnosis"])
    }
    assert {folder: tags[folder] for folder in expected} == expected


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--to", "wandb", "out"], "unknown --to 'wandb'"),
        (["--to", "tensorboard"], "needs a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(sweep, tmp_path, args, fragment):
    result = dlrun("export", sweep, *[tmp_path / a if a == "out" else a for a in args])
    assert result.exit_code == 2
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_runs_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = dlrun("export", tmp_path / "empty", "--to", "tensorboard", tmp_path / "tb")
    assert result.exit_code == 2 and "no runs found" in result.output
    assert not (tmp_path / "tb").exists()
