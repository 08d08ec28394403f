"""`logger=`: a real sweep followed into TensorBoard and MLflow while it trains, read back with
their own readers (EventAccumulator, MlflowClient) mid-run and at the end; killed with -9 and
run again; its loggers broken mid-run; and the same output as `dlrun export`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app

EPOCHS = 60  # ~0.1 s each on a busy 2-core CPU: seconds of training to read and kill it in
SWEEP = [
    "sweep",
    "data=moons",
    "data.n_samples=20000",  # enough steps per epoch that the run lasts while it is read
    "model.hidden=[64,64]",
    "batch_size=32",
    f"epochs={EPOCHS}",
    "lr=0.1,0.01",
]
TRIALS = ("trial-000", "trial-001")
WAIT_S = 120


def dlrun_process(*args, cwd, env=None):
    environment = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "dlrun", *map(str, args)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=WAIT_S)
    return process.returncode, stderr


def tensorboard_steps(folder: Path, tag: str = "epoch/train_loss") -> list[int]:
    """The steps of one scalar, as TensorBoard's own reader loads the folder's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not folder.is_dir():  # the trial has not begun
        return []
    # 0 keeps every point: by default the reader keeps a sample of 10 per tag
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags()["tensors"]:
        return []
    return [event.step for event in accumulator.Tensors(tag)]


def mlflow_client(uri):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store without it
    return MlflowClient(uri)


def mlflow_by_folder(uri) -> tuple:
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name("dlrun")
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, {run.data.tags["dlrun.run_dir"]: run for run in found}


def mlflow_steps(client, run, key: str = "train_loss") -> list[int]:
    return sorted(point.step for point in client.get_metric_history(run.info.run_id, key))


def wait_for(condition, process, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}: {process.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {what} in {WAIT_S} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def killed_and_continued(tmp_path_factory):
    """A sweep into TensorBoard and MLflow, read while it trains, killed with -9 once both hold
    epochs, then the same command again to the end. Returns (sweep folder, tracking URI,
    what was read mid-run)."""
    root = tmp_path_factory.mktemp("loggers")
    out, uri = root / "study", (root / "mlruns").as_uri()
    command = [*SWEEP, "--out", out, "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={uri}"]
    process = dlrun_process(*command, cwd=root)
    try:
        wait_for(lambda: len(tensorboard_steps(out / TRIALS[0])) >= 3, process, "epochs in TensorBoard")
        wait_for(lambda: _mlflow_epochs(uri, out / TRIALS[0]) >= 3, process, "epochs in MLflow")
        assert process.poll() is None  # still training while both were read
        client, runs = mlflow_by_folder(uri)
        mid_run = {
            "tensorboard": tensorboard_steps(out / TRIALS[0]),
            "mlflow": mlflow_steps(client, runs[str((out / TRIALS[0]).resolve())]),
        }
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=WAIT_S)
    again = dlrun_process(*command, cwd=root)
    code, stderr = finished(again)
    assert code == 0, stderr
    assert "warning" not in stderr, stderr
    return out, uri, mid_run


def _mlflow_epochs(uri, trial: Path) -> int:
    client, runs = mlflow_by_folder(uri)
    run = runs.get(str(trial.resolve()))
    return 0 if run is None else len(mlflow_steps(client, run))


@pytest.mark.slow
def test_mid_run_each_tracker_holds_the_first_epochs_once(killed_and_continued):
    _, _, mid_run = killed_and_continued
    for tracker, steps in mid_run.items():
        assert steps == list(range(1, len(steps) + 1)), tracker  # a prefix, nothing twice


@pytest.mark.slow
def test_after_kill_9_and_the_same_command_every_epoch_is_there_once(killed_and_continued):
    out, uri, _ = killed_and_continued
    client, runs = mlflow_by_folder(uri)
    assert len(runs) == len(TRIALS) + 1  # the trials and the sweep's parent run, no second copy
    parent = runs[str(out.resolve())]
    for name in TRIALS:
        trial = out / name
        assert tensorboard_steps(trial) == list(range(1, EPOCHS + 1))
        assert tensorboard_steps(trial, "gradients/grad_norm") == list(range(1, EPOCHS + 1))
        run = runs[str(trial.resolve())]
        for key in ("train_loss", "val_accuracy", "grad_norm"):
            assert mlflow_steps(client, run, key) == list(range(1, EPOCHS + 1)), key
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["dlrun.status"] == "completed" and run.info.status == "FINISHED"
        assert run.data.tags["dlrun.diagnosis"]
        assert float(run.data.params["lr"]) in (0.1, 0.01)
    assert parent.info.status == "FINISHED"


def _events(folder: Path) -> list:
    """(step, wall time, summary) of every event in the folder's run event file."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    (path,) = [p for p in folder.glob("events.out.tfevents.*") if not p.name.endswith("-experiment")]
    return [
        (event.step, event.wall_time, event.summary.SerializeToString())
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("summary")
    ]


@pytest.mark.slow
def test_the_live_loggers_wrote_what_dlrun_export_writes(killed_and_continued, tmp_path):
    out, uri, _ = killed_and_continued
    runner = CliRunner()
    exported_uri = (tmp_path / "mlruns").as_uri()
    for target in (["tensorboard", tmp_path / "tb"], ["mlflow", exported_uri]):
        result = runner.invoke(app, ["export", str(out), "--to", *map(str, target)])
        assert result.exit_code == 0, result.output
    for name in TRIALS:
        assert _events(out / name) == _events(tmp_path / "tb" / out.name / name)
    live_client, live = mlflow_by_folder(uri)
    export_client, exported = mlflow_by_folder(exported_uri)
    assert sorted(live) == sorted(exported)
    for folder, run in live.items():
        twin = exported[folder]
        assert run.data.params == twin.data.params
        assert run.info.status == twin.info.status
        for tag in ("dlrun.status", "dlrun.diagnosis", "dlrun.flags", "mlflow.runName"):
            assert run.data.tags.get(tag) == twin.data.tags.get(tag), tag
        assert sorted(run.data.metrics) == sorted(twin.data.metrics)
        for key in run.data.metrics:
            history = [
                (p.step, p.value, p.timestamp) for p in live_client.get_metric_history(run.info.run_id, key)
            ]
            twins = [
                (p.step, p.value, p.timestamp)
                for p in export_client.get_metric_history(twin.info.run_id, key)
            ]
            assert sorted(history) == sorted(twins), key


@pytest.mark.slow
def test_a_logger_that_fails_mid_run_warns_once_and_training_goes_on(tmp_path):
    out, store = tmp_path / "study", tmp_path / "mlruns"
    command = [
        *SWEEP,
        "--out",
        out,
        "logger=[tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri={store.as_uri()}",
    ]
    process = dlrun_process(*command, cwd=tmp_path)
    try:
        wait_for(lambda: _mlflow_epochs(store.as_uri(), out / TRIALS[0]) >= 2, process, "epochs in MLflow")
        # the tracking store and an event file become something no tracker can write to
        for trial_file in (out / TRIALS[0]).glob("events.out.tfevents.*"):
            trial_file.unlink()
            trial_file.mkdir()
        subprocess.run(["rm", "-rf", str(store)], check=True)
        store.write_text("not a tracking store\n")
        code, stderr = finished(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert sorted(line.split()[1] for line in warnings) == ["logger=mlflow", "logger=tensorboard"], stderr
    assert all("dlrun export" in line and "Traceback" not in stderr for line in warnings)
    for name in TRIALS:  # the run folders are whole: every epoch, the final summary
        lines = (out / name / "metrics.csv").read_text().splitlines()
        assert len(lines) == EPOCHS + 1
        assert '"status": "completed"' in (out / name / "summary.json").read_text()


def test_an_unreachable_tracking_server_is_one_warning_and_the_run_completes(tmp_path):
    process = dlrun_process(
        "train",
        "data=moons",
        "model.hidden=[8]",
        "epochs=2",
        "--out",
        tmp_path / "run",
        "logger=mlflow",
        "logger.mlflow.tracking_uri=http://127.0.0.1:9",  # the discard port: nothing answers
        cwd=tmp_path,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
    )
    code, stderr = finished(process)
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "logger=mlflow failed" in warnings[0], stderr
    assert '"status": "completed"' in (tmp_path / "run" / "summary.json").read_text()


@pytest.mark.parametrize(
    "args, named",
    [
        (["logger=wandb"], "unknown logger 'wandb'"),
        (["logger=[tensorboard,wandb]"], "unknown logger 'wandb'"),
        (["logger=tensorboard,mlflow"], "a logger is not swept"),
        (["logger.mlflow.tracking_uri=file:///x"], "which is not chosen"),
        (["logger=mlflow", "logger.mlflow.uri=file:///x"], "has no field 'uri'"),
    ],
)
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_bad_logger_values_are_one_line_and_exit_2(command, args, named, tmp_path):
    result = CliRunner().invoke(app, [command, "data=moons", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and named in result.output, result.output
    assert "csv, mlflow, tensorboard" in result.output or "fields:" in result.output
    assert not (tmp_path / "x").exists()


def test_a_logger_is_no_part_of_the_trial_or_its_identity(tmp_path):
    """The same sweep with and without a logger is one plan: its trials, groups and folders."""
    from dlrun.config.loggers import split_loggers
    from dlrun.sweep.plan import make_plan

    overrides = ["data=moons", "lr=0.1,0.01"]
    given, loggers = split_loggers([*overrides, "logger=[csv,tensorboard]"])
    assert given == overrides and loggers.names == ["tensorboard"]  # csv: the run folder, always
    assert make_plan(given).to_dict() == make_plan(overrides).to_dict()
