"""Running sweeps: vectorised groups match lone runs, isolate failures, resume after Ctrl-C; the
plan's groups are what runs, in this process or in worker processes."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pandas as pd
from typer.testing import CliRunner

from dlrun import results
from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.sweep import executor, folder
from dlrun.sweep.plan import make_plan
from dlrun.training import group

MOONS = ["data=moons", "model.hidden=[16]", "epochs=6", "schedule=constant"]
CURVES = ["train_loss", "val_loss", "val_accuracy"]


def sweep(tmp_path, overrides, **options):
    plan = make_plan(overrides, **options)
    out = tmp_path / "sweep"
    folder.prepare_folder(out, plan, "test")
    return plan, out, executor.run_plan(plan, out)


def alone(tmp_path, overrides, name="alone"):
    summary = group.train_and_evaluate(compose_config(overrides), tmp_path / name)
    return summary, results.read_metrics(tmp_path / name)


def test_a_trial_in_a_group_matches_the_same_config_trained_alone(tmp_path):
    plan, out, index = sweep(
        tmp_path,
        [*MOONS, "lr=0.003,0.03", "seed=0,1", "model.dropout=0,0.1", "init=he_normal,glorot_uniform"],
    )
    assert len(plan.groups) == 1 and len(plan.trials) == 16
    trial = next(
        t
        for t in plan.trials
        if t.params == {"lr": "0.03", "seed": "1", "model.dropout": "0.1", "init": "glorot_uniform"}
    )
    summary, metrics = alone(tmp_path, trial.overrides)
    grouped = results.read_metrics(out / trial.id)
    pd.testing.assert_frame_equal(grouped[CURVES], metrics[CURVES], rtol=1e-4, atol=1e-5)
    grouped_summary = results.read_summary(out / trial.id)
    assert abs(grouped_summary["test_accuracy"] - summary["test_accuracy"]) <= 0.003
    assert grouped_summary["group_size"] == 16
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/best.msgpack"):
        assert (out / trial.id / name).exists()


def test_a_diverging_trial_is_frozen_while_its_siblings_go_on(tmp_path):
    overrides = [*MOONS, "optim=sgd", "loss=mse", "lr=1e5,0.05"]
    plan, out, index = sweep(tmp_path, overrides)
    statuses = dict(zip(index.lr.astype(str), index.status))
    assert statuses == {"100000.0": "diverged", "0.05": "completed"}
    healthy = next(t for t in plan.trials if t.params["lr"] == "0.05")
    _, metrics = alone(tmp_path, healthy.overrides)
    pd.testing.assert_frame_equal(
        results.read_metrics(out / healthy.id)[CURVES], metrics[CURVES], rtol=1e-4, atol=1e-5
    )


def test_early_stopping_works_per_trial_inside_a_group(tmp_path):
    overrides = [
        "data=spirals",
        "data.n_samples=300",
        "data.val_size=100",
        "data.noise=0.3",
        "model.hidden=[128,128]",
        "batch_size=16",
        "epochs=40",
        "early_stopping.patience=3",
        "lr=0.02,0.0001",
    ]
    plan, out, index = sweep(tmp_path, overrides)
    runs = {t.params["lr"]: results.read_summary(out / t.id) for t in plan.trials}
    assert runs["0.02"].get("early_stopped") and runs["0.02"]["epochs_run"] < 40
    assert runs["0.0001"]["epochs_run"] > runs["0.02"]["epochs_run"]


def test_a_failing_group_does_not_stop_the_others(tmp_path, monkeypatch):
    plan = make_plan([*MOONS, "batch_size=32,64"])
    original = group.GroupRun.compile

    def broken_for_batch_32(self):
        if self.program.batch_size == 32:
            raise RuntimeError("simulated compiler crash")
        original(self)

    monkeypatch.setattr(group.GroupRun, "compile", broken_for_batch_32)
    out = tmp_path / "sweep"
    index = executor.run_plan(plan, out)
    assert sorted(index.status) == ["completed", "failed"]
    failed = index[index.status == "failed"].trial.iloc[0]
    assert "simulated compiler crash" in (out / failed / "error.txt").read_text()
    ((group_id, error),) = index.attrs[executor.FAILED_GROUPS].items()  # what exits 1 (test_orphans)
    assert group_id == index[index.status == "failed"].group.iloc[0] and "simulated" in error


def test_rerunning_a_sweep_skips_finished_trials(tmp_path):
    plan, out, _ = sweep(tmp_path, [*MOONS, "lr=0.01,0.02"])
    stamps = [(out / t.id / "summary.json").stat().st_mtime_ns for t in plan.trials]
    index = executor.run_plan(plan, out)
    assert list(index.status) == ["completed", "completed"]
    assert [(out / t.id / "summary.json").stat().st_mtime_ns for t in plan.trials] == stamps


def set_status(run_dir, status):
    summary = results.read_summary(run_dir)
    results.atomic_write_text(run_dir / results.SUMMARY_FILE, json.dumps({**summary, "status": status}))


def test_jobs_are_the_plans_groups_split_only_by_the_epoch_they_resume_from(tmp_path):
    plan, out, _ = sweep(tmp_path, [*MOONS, "epochs=2", "lr=0.01,0.02,0.03,0.04"], max_group=2)
    assert [[t.id for t in g.trials] for g in plan.groups] == [
        ["trial-000", "trial-001"],
        ["trial-002", "trial-003"],
    ]
    assert executor.jobs_for(plan, out) == []  # all finished
    set_status(out / "trial-000", "interrupted")  # what a stop after epoch 2 of more leaves
    for trial in ("trial-001", "trial-003"):
        (out / trial / results.SUMMARY_FILE).unlink()  # no epoch finished: starts afresh
    jobs = executor.jobs_for(plan, out)
    assert [(job.id, [os.path.basename(d) for d in job.run_dirs], job.resume) for job in jobs] == [
        ("g000@2", ["trial-000"], True),
        ("g000@0", ["trial-001"], False),
        ("g001", ["trial-003"], False),
    ]
    assert pickle.loads(pickle.dumps(jobs[0])) == jobs[0]  # a worker process can take it
    # planning leaves the folders alone (another process may be training them): a trial that
    # starts afresh is emptied by its job, once the job holds its folder
    assert (out / "trial-001" / results.METRICS_FILE).exists()
    summaries, error = executor.run_group_job(jobs[1])
    assert error is None and [s["status"] for s in summaries] == ["completed"]
    assert list(results.read_metrics(out / "trial-001").epoch) == [1, 2]


def test_the_cli_plans_once_and_runs_the_plans_groups(tmp_path, monkeypatch):
    from dlrun.sweep import plan as planning

    calls = {"make_plan": 0, "compose": 0}

    def counted(name, function):
        def call(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return call

    from dlrun.sweep import run as running  # the sweep's library call plans with its own name

    monkeypatch.setattr(running, "make_plan", counted("make_plan", planning.make_plan))
    monkeypatch.setattr(planning, "compose_config", counted("compose", planning.compose_config))
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        app, ["sweep", *MOONS, "epochs=1", "seed=range(5)", "--max-group", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert calls == {"make_plan": 1, "compose": 1}  # one Hydra composition: only seed varies
    planned = folder.read_sweep_record(out)["plan"]["groups"]
    index = pd.read_csv(out / folder.INDEX_FILE)
    assert {g["id"]: g["trials"] for g in planned} == {
        group: list(rows.trial) for group, rows in index.groupby("group")
    }
    assert [results.read_summary(out / t)["group_size"] for t in index.trial] == [2, 2, 2, 2, 1]


def test_worker_processes_run_the_same_jobs_as_this_process(tmp_path):
    plan = make_plan([*MOONS, "epochs=1", "batch_size=32,64"])
    outcomes = {}
    for name, runner in (
        ("here", executor.InProcessExecutor()),
        ("workers", executor.WorkerProcessExecutor(2)),
    ):
        jobs = executor.jobs_for(plan, tmp_path / name)
        outcomes[name] = {
            job.id: (error, [s["status"] for s in summaries]) for job, summaries, error in runner.run(jobs)
        }
    assert (
        outcomes["here"]
        == outcomes["workers"]
        == {"g000": (None, ["completed"]), "g001": (None, ["completed"])}
    )
    for trial in plan.trials:
        here, there = (results.read_metrics(tmp_path / name / trial.id) for name in ("here", "workers"))
        pd.testing.assert_frame_equal(here[CURVES], there[CURVES], rtol=1e-4, atol=1e-5)


def test_cli_sweep_dry_run_shows_the_groups():
    result = CliRunner().invoke(app, ["sweep", *MOONS, "lr=0.1,0.01", "batch_size=32,64", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 trials (grid) in 2 groups" in result.output


def test_cli_sweep_bad_spec_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "lr=interval(0.1,1)", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "--trials" in result.output
    assert not (tmp_path / "s").exists()


def test_ctrl_c_then_the_same_command_finishes_the_sweep(tmp_path):
    """The real command: interrupted in its first group, re-run, every trial ends completed."""
    out = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "dlrun",
        "sweep",
        "data=moons",
        "data.n_samples=20000",
        "model.hidden=[64,64]",
        "batch_size=16,32",
        "lr=0.01,0.001",
        "epochs=8",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    deadline = time.time() + 180
    while not list(out.glob("trial-*/metrics.csv")) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    index = pd.read_csv(out / "trials.csv")
    assert set(index.status) <= {"interrupted", "pending"} and "interrupted" in set(index.status)
    interrupted = index[index.status == "interrupted"].trial.iloc[0]
    assert json.loads((out / interrupted / "summary.json").read_text())["epochs_run"] < 8
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    index = pd.read_csv(out / "trials.csv")
    assert list(index.status) == ["completed"] * 4
    assert list(pd.read_csv(out / interrupted / "metrics.csv").epoch) == list(range(1, 9))
