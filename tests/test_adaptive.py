"""Adaptive sweeps end to end: the real command on the spirals, the study it leaves in SQLite or
in a real PostgreSQL server, resumed after kill -9, shared by two sweeps at once."""

import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app

SPACE = [
    "data=spirals",
    "model.hidden=[32,32]",
    "batch_size=32",
    "optim=momentum",
    "lr=interval(1e-4,1)",
    "optim.momentum=interval(0.5,0.95)",
]
TPE = ["--search", "tpe", "--search-seed", "3"]


def dlrun(*args):
    return CliRunner().invoke(app, list(args))


def command(*args):
    return [sys.executable, "-m", "dlrun", "sweep", *SPACE, *args]


def load(out: Path, url: str | None = None, name: str | None = None):
    return optuna.load_study(study_name=name or out.name, storage=url or f"sqlite:///{out / 'study.db'}")


def assert_study_mirrors_folders(study, out: Path, metric="best_val_accuracy") -> list:
    """Every trial of the folder is one Optuna trial with its params, curve, state and value."""
    trials = [t for t in study.trials if t.user_attrs.get("sweep_folder") == str(out.resolve())]
    for trial in trials:
        run = out / trial.user_attrs["run_dir"]
        summary = json.loads((run / "summary.json").read_text())
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["lr"] == trial.params["lr"]
        assert config["optim"]["momentum"] == trial.params["optim.momentum"]
        curve = pd.read_csv(run / "metrics.csv")
        assert trial.intermediate_values == dict(zip(curve.epoch, curve.val_accuracy))
        expected = {"completed": "COMPLETE", "pruned": "PRUNED", "diverged": "COMPLETE"}
        assert trial.state.name == expected[summary["status"]], (run, summary["status"])
        if summary["status"] == "pruned":
            assert summary["pruned_epoch"] == max(trial.intermediate_values) == summary["epochs_run"]
        elif math.isfinite(summary[metric]):
            assert trial.value == summary[metric]
    return trials


def test_tpe_with_hyperband_is_seeded_prunes_mirrors_its_folders_and_continues(tmp_path):
    args = [*SPACE, "epochs=4", *TPE, "--trials", "6", "--batch", "3", "--pruner", "hyperband"]
    first = dlrun("sweep", *args, "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.output
    index = pd.read_csv(tmp_path / "a" / "trials.csv")
    assert len(index) == 6 and set(index.status) <= {"completed", "pruned", "diverged"}
    assert "pruned" in set(index.status)
    trials = assert_study_mirrors_folders(load(tmp_path / "a"), tmp_path / "a")
    assert sorted(t.user_attrs["run_dir"] for t in trials) == sorted(index.trial)
    # the same command and seed elsewhere: the same trials
    second = dlrun("sweep", *args, "--out", str(tmp_path / "b"))
    assert second.exit_code == 0, second.output
    assert pd.read_csv(tmp_path / "b" / "trials.csv")[["lr", "status"]].equals(index[["lr", "status"]])
    # run again into its folder: nothing is asked or trained
    again = dlrun("sweep", *args, "--out", str(tmp_path / "a"))
    assert again.exit_code == 0 and "6 of 6 trials already finished" in again.output
    assert len(load(tmp_path / "a").trials) == 6


def snapshot(out: Path) -> dict:
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_kill_9_mid_sweep_then_the_same_command_ends_with_exactly_the_trials(tmp_path):
    """Killed while its second batch trains: the finished trials stay as they were, the
    unfinished ones resume, and the study holds each trial once."""
    out = tmp_path / "s"
    args = command(
        "data.n_samples=20000", "epochs=6", *TPE, "--trials", "4", "--batch", "2", "--out", str(out)
    )
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300

    def completed():
        return [
            p.parent
            for p in out.glob("trial-*/summary.json")
            if json.loads(p.read_text())["status"] in ("completed", "pruned", "diverged")
        ]

    while time.time() < deadline and not (
        len(completed()) >= 2 and len([p for p in out.glob("trial-*/metrics.csv")]) > len(completed())
    ):
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = completed()
    assert len(done) == 2, "the kill came too late to land in the second batch"
    before = {run: snapshot(run) for run in done}
    finished = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    index = pd.read_csv(out / "trials.csv")
    assert len(index) == 4 and set(index.status) <= {"completed", "diverged"}
    for run, files in before.items():
        assert snapshot(run) == files
    study = load(out)
    assert len(study.trials) == 4 and all(t.state.is_finished() for t in study.trials)
    assert_study_mirrors_folders(study, out)
    for trial in index.trial:
        assert list(pd.read_csv(out / trial / "metrics.csv").epoch) == list(range(1, 7))


@pytest.fixture
def postgres():
    """A real PostgreSQL server from the pgserver wheel, on a socket in a temporary folder.

    As root, pgserver runs the server as its own user, which must reach the folder: pytest's
    tmp_path is private to root, so the folder is a world-readable one of its own.
    """
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="dlrun-pg-"))
    folder.chmod(0o755)
    server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_sweeps_share_one_postgresql_study_and_run_no_trial_twice(tmp_path, postgres):
    storage = ["--storage", postgres, "--study", "shared"]
    args = ["epochs=2", *TPE, "--trials", "6", "--batch", "2", *storage]
    processes = [
        subprocess.Popen(
            command(*args, "--out", str(tmp_path / name)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    study = load(tmp_path, postgres, "shared")
    assert len(study.trials) >= 6 and all(t.state.is_finished() for t in study.trials)
    counted = [t for t in study.trials if "dlrun:surplus" not in t.system_attrs]
    assert len(counted) == 6  # a trial asked beyond the budget by a race is marked, not run
    folders = [
        out / t.user_attrs["run_dir"]
        for out in (tmp_path / "a", tmp_path / "b")
        for t in assert_study_mirrors_folders(study, out)
    ]
    assert len(folders) == 6 and all((folder / "summary.json").exists() for folder in folders)
    assert len({t.number for t in counted}) == 6
    ran = [len(list((tmp_path / name).glob("trial-*"))) for name in ("a", "b")]
    assert sum(ran) == 6 and min(ran) >= 1, ran  # both sweeps trained trials


def test_a_group_never_prunes_a_trial_better_than_one_it_lets_go_on(tmp_path):
    # the 8 trials reach epoch 1 together; judged in the order asked, the first went on even
    # when worse than those judged after it, some of which were pruned
    out = tmp_path / "s"
    result = dlrun(
        "sweep",
        *SPACE,
        "epochs=3",
        *TPE,
        "--trials",
        "8",
        "--batch",
        "8",
        "--pruner",
        "sha",
        "--min-epochs",
        "1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    trials = load(out).trials
    stopped_at_1 = [
        t.intermediate_values[1]
        for t in trials
        if t.state.name == "PRUNED" and max(t.intermediate_values) == 1
    ]
    went_on = [t.intermediate_values[1] for t in trials if 2 in t.intermediate_values]
    assert len(stopped_at_1) >= 4 and went_on
    assert min(went_on) >= max(stopped_at_1)


@pytest.mark.slow
def test_the_study_fills_in_while_the_sweep_runs(tmp_path):
    """Read from another process (this one) while the sweep trains, as optuna-dashboard reads
    it: the running trials' curves grow epoch by epoch, and a trial the pruner stops is PRUNED
    while the rest of its group still trains."""
    out = tmp_path / "s"
    args = command(
        "data.n_samples=8000",
        "epochs=6",
        *TPE,
        "--trials",
        "8",
        "--batch",
        "8",
        "--pruner",
        "sha",
        "--min-epochs",
        "1",
        "--out",
        str(out),
    )
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen_growing, seen_pruned_early = set(), False
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        if (out / "study.db").exists():
            try:
                trials = load(out).trials
            except Exception:  # the sweep is still creating the study's tables
                trials = []
            running = [t for t in trials if t.state.name == "RUNNING"]
            seen_growing |= {len(t.intermediate_values) for t in running if t.intermediate_values}
            seen_pruned_early |= bool(running) and any(t.state.name == "PRUNED" for t in trials)
        time.sleep(0.2)
    assert process.wait(timeout=60) == 0, process.stderr.read()
    assert len(seen_growing) >= 2, seen_growing  # curves seen at two lengths or more mid-run
    assert seen_pruned_early
    assert_study_mirrors_folders(load(out), out)
