"""--resume and --out on a folder that already holds a run: nothing lost, the truth recorded."""

import signal
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun import results
from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.interrupt import STOP
from dlrun.training import group
from dlrun.training.callbacks import EpochCallback

RUN = ["data=circles", "model.hidden=[16]", "epochs=3", "schedule=cosine"]


def dlrun(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = dlrun("train", *RUN, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def completed(finished, tmp_path) -> Path:
    """A private copy of a completed 3-epoch run."""
    copy = tmp_path / "run"
    for relative, data in files(finished).items():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_bytes(data)
    return copy


def test_an_override_that_changes_the_model_is_refused_and_nothing_changes(completed):
    before = files(completed)
    result = dlrun("train", "--resume", completed, "model.hidden=[32]", "epochs=4")
    assert result.exit_code == 2 and "model.hidden" in result.output and "[16] -> [32]" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert files(completed) == before


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_an_unreadable_checkpoint_is_refused_and_nothing_changes(completed, damage):
    checkpoint = completed / results.LAST_CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:100] if damage == "truncated" else b"")
    before = files(completed)
    result = dlrun("train", "--resume", completed, "epochs=5")
    assert result.exit_code == 2 and "last.msgpack cannot be read" in result.output
    assert files(completed) == before
    assert results.read_summary(completed)["status"] == "completed"


@pytest.mark.parametrize("damage", ["missing", "garbage", "binary"])
def test_an_unreadable_config_is_one_line(completed, damage):
    config = completed / results.CONFIG_FILE
    if damage == "missing":
        config.unlink()
    else:
        config.write_bytes(b"model: [unclosed\n" if damage == "garbage" else b"\x00\xff\xfe" * 50)
    before = files(completed)
    result = dlrun("train", "--resume", completed, "epochs=5")
    assert result.exit_code == 2 and "config.yaml" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert files(completed) == before


def test_a_resume_that_fails_while_training_leaves_the_folder_as_it_was(completed, monkeypatch):
    before = files(completed)

    def crash(self):  # a compiler crash, after the resume has already rewritten the folder
        raise RuntimeError("simulated compiler crash")

    monkeypatch.setattr(group.GroupRun, "compile", crash)
    result = dlrun("train", "--resume", completed, "epochs=5")
    assert result.exit_code == 1 and "left as it was" in result.output
    assert files(completed) == before


def test_extending_records_the_config_it_ran_with_and_restarts_the_schedule(completed, tmp_path):
    result = dlrun("train", "--resume", completed, "epochs=6")
    assert result.exit_code == 0, result.output
    assert "restarts at epoch 4" in result.output
    summary = results.read_summary(completed)
    assert summary["epochs_run"] == 6 and summary["config"]["epochs"] == 6
    assert summary["config"]["schedule"]["restarts"] == [3]
    (resume,) = summary["resumes"]
    assert resume["from_epoch"] == 3 and resume["changed"]["epochs"] == [3, 6]
    assert "epochs: 6" in (completed / results.CONFIG_FILE).read_text()
    lr = results.read_metrics(completed).lr.tolist()
    assert lr[3:] == pytest.approx(lr[:3])  # the added epochs run the schedule afresh
    # the recorded config reproduces the resumed run when trained from scratch
    again = tmp_path / "again"
    assert dlrun("train", *RUN, "epochs=6", "schedule.restarts=[3]", "--out", again).exit_code == 0
    columns = ["train_loss", "val_loss", "val_accuracy", "lr"]
    pd.testing.assert_frame_equal(
        results.read_metrics(again)[columns], results.read_metrics(completed)[columns], rtol=1e-5, atol=1e-6
    )


def test_fewer_epochs_than_already_run_is_refused(completed):
    before = files(completed)
    result = dlrun("train", "--resume", completed, "epochs=2")
    assert result.exit_code == 2 and "epochs=2 is below the 3 epochs" in result.output
    assert files(completed) == before


def test_a_completed_run_is_left_alone_by_the_same_command_or_a_plain_resume(completed):
    before = files(completed)
    for args in (["train", *RUN, "--out", completed], ["train", "--resume", completed]):
        result = dlrun(*args)
        assert result.exit_code == 0 and "nothing to do" in result.output
    assert files(completed) == before


def test_resume_with_another_out_is_refused(completed, tmp_path):
    result = dlrun("train", "--resume", completed, "--out", tmp_path / "elsewhere", "epochs=5")
    assert result.exit_code == 2 and "--out" in result.output
    assert not (tmp_path / "elsewhere").exists()


class StopAfter(EpochCallback):
    """Asks the group to stop after an epoch, as Ctrl-C would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch(self, group, done, rows):
        if done == self.epoch:
            STOP.signum = signal.SIGINT


def test_an_interrupted_run_continues_with_the_same_command(tmp_path):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert dlrun("train", *RUN, "epochs=5", "--out", straight).exit_code == 0
    (summary,) = group.run_group([compose_config([*RUN, "epochs=5"])], [cut], callbacks=[StopAfter(3)])
    assert summary["status"] == "interrupted" and summary["epochs_run"] == 3
    result = dlrun("train", *RUN, "epochs=5", "--out", cut)
    assert result.exit_code == 0 and "continuing the interrupted run" in result.output
    columns = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(
        results.read_metrics(cut)[columns], results.read_metrics(straight)[columns], rtol=1e-5, atol=1e-6
    )
    assert results.read_summary(cut)["resumes"][0]["from_epoch"] == 3


def with_legacy_fields(config: dict) -> dict:
    """The config as the flat schema before per-option schemas wrote it: every field everywhere."""
    legacy = {**config}
    legacy["model"] = {**config["model"], "pooling": "max", "conv_lowering": "auto"}
    legacy["data"] = {**config["data"], "classes": 3, "target_scaling": "standardize"}
    legacy["optim"] = {**config["optim"], "momentum": 0.9, "decay": 0.9, "weight_decay": 0.0}
    legacy["schedule"] = {
        k: v
        for k, v in {**config["schedule"], "warmup_epochs": 0.0, "decay_epochs": 1.0, "gamma": 0.1}.items()
        if k != "restarts"
    }
    return legacy


def test_a_folder_from_before_per_option_schemas_resumes_and_reports(completed):
    import yaml

    summary = results.read_summary(completed)
    legacy = with_legacy_fields(summary["config"])
    (completed / results.CONFIG_FILE).write_text(yaml.safe_dump(legacy))
    results.write_summary(completed, {**summary, "config": legacy})
    from dlrun.report.build import build_report

    settings = build_report([completed]).constant
    assert settings["model.hidden"] == "[16]" and settings["optim.b1"] == 0.9
    assert not {"model.pooling", "optim.momentum", "data.classes", "schedule.gamma"} & set(settings)
    result = dlrun("train", "--resume", completed, "epochs=4")
    assert result.exit_code == 0, result.output
    assert "pooling" not in (completed / results.CONFIG_FILE).read_text()
