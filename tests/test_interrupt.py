"""Fault injection: the real `dlrun` command killed at several moments, then run again.

Each case starts `dlrun train` or `dlrun sweep` in a subprocess, waits for a moment (start-up
before any folder exists, compile after the folder is written, mid-training, between the groups
of a sweep), sends SIGINT, SIGTERM or SIGKILL, and checks what a user would see: exit 130 and no
traceback for the catchable signals, then the same command again finishes with every epoch
once and the same numbers as a run that was never interrupted.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_NNX_MODULE

from dlrun import results
from dlrun.training.resume import finished_epoch

TRAIN = [
    "train",
    "data=spirals",
    "data.n_samples=3000",
    "model.hidden=[32,32]",
    "batch_size=16",
    "epochs=8",
    "schedule=cosine",
    "model.dropout=0.1",
]
SWEEP = [
    "sweep",
    "data=spirals",
    "data.n_samples=2000",
    "model.hidden=[16]",
    "epochs=6",
    "lr=0.01,0.003",
    "batch_size=16,32",
]
# the sweep above with a module of the user's own (NNX), imported from the sweep's cwd
NETS = TINY_NNX_MODULE
USER_SWEEP = [
    *(arg for arg in SWEEP if not arg.startswith("model.")),
    "model=user",
    "model._target_=nets.Tiny",
    "+model.width=16",
]
CURVES = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr"]
CATCHABLE = (signal.SIGINT, signal.SIGTERM)


def start(args, out: Path, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dlrun", *args, "--out", str(out)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )


def finish(args, out: Path, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args, "--out", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def files(out: Path, name: str) -> list:
    return list(out.glob(name)) + list(out.glob(f"trial-*/{name}"))


# moment -> (condition on the output folder that says it has come, what must not exist yet)
MOMENTS = {
    "startup": (lambda out, started: time.time() - started > 0.5, results.CONFIG_FILE),
    "compile": (lambda out, started: bool(files(out, results.SUMMARY_FILE)), results.METRICS_FILE),
    "training": (lambda out, started: bool(files(out, results.METRICS_FILE)), None),
    "between_groups": (
        lambda out, started: any(
            results.read_summary(p.parent).get("status") == "completed"
            for p in files(out, results.SUMMARY_FILE)
            if _readable(p)
        ),
        None,
    ),
    # a trial's first checkpoint is on disk: what the command again must load and continue from
    "checkpointed": (
        lambda out, started: any(finished_epoch(p.parent) for p in files(out, results.METRICS_FILE)),
        None,
    ),
}


def _readable(path: Path) -> bool:
    try:
        results.read_summary(path.parent)
        return True
    except ValueError:
        return False


def interrupt(args, out: Path, moment: str, signum: int, cwd=None) -> str:
    """Start the command, signal it at the moment; return its output (asserting the moment held)."""
    process = start(args, out, cwd)
    started, (arrived, absent) = time.time(), MOMENTS[moment]
    while not arrived(out, started):
        assert process.poll() is None, f"finished before the moment '{moment}': {process.stdout.read()}"
        assert time.time() - started < 300, f"moment '{moment}' never came"
        time.sleep(0.01)
    if absent is not None:
        assert not files(out, absent), f"too late for '{moment}': {absent} already written"
    process.send_signal(signum)
    output, _ = process.communicate(timeout=300)
    if signum in CATCHABLE:
        assert process.returncode == 130, output
        assert "Traceback" not in output and "Error" not in output, output
    return output


def curves(run_dir: Path) -> pd.DataFrame:
    return results.read_metrics(run_dir)[CURVES]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The train and sweep runs, never interrupted."""
    root = tmp_path_factory.mktemp("reference")
    for args, name in ((TRAIN, "train"), (SWEEP, "sweep")):
        done = finish(args, root / name)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def assert_same_run(run_dir: Path, reference_dir: Path, epochs: int) -> None:
    summary = results.read_summary(run_dir)
    assert summary["status"] == "completed" and summary["epochs_run"] == epochs
    got, want = curves(run_dir), curves(reference_dir)
    assert list(got.epoch) == list(range(1, epochs + 1))  # every epoch once
    pd.testing.assert_frame_equal(got, want, rtol=1e-5, atol=1e-6)
    assert summary["test_accuracy"] == pytest.approx(
        results.read_summary(reference_dir)["test_accuracy"], abs=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
@pytest.mark.parametrize("moment", ["startup", "compile", "training"])
def test_train_killed_then_the_same_command_finishes_it(tmp_path, reference, moment, signum):
    out = tmp_path / "run"
    interrupt(TRAIN, out, moment, signum)
    if signum in CATCHABLE and (out / results.SUMMARY_FILE).exists():
        assert results.read_summary(out)["status"] == "interrupted"
    reached = finished_epoch(out)
    again = finish(TRAIN, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same_run(out, reference / "train", 8)
    if reached:  # continued from its checkpoint, not trained again from the start
        assert results.read_summary(out)["resumes"][0]["from_epoch"] == reached


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
@pytest.mark.parametrize("moment", ["startup", "compile", "training", "between_groups"])
def test_sweep_killed_then_the_same_command_finishes_it(tmp_path, reference, moment, signum):
    out = tmp_path / "sweep"
    interrupt(SWEEP, out, moment, signum)
    if signum in CATCHABLE:
        statuses = {results.read_summary(p.parent)["status"] for p in files(out, results.SUMMARY_FILE)}
        assert statuses <= {"interrupted", "completed"}
    before = {p.parent.name: p.read_bytes() for p in files(out, results.SUMMARY_FILE) if _readable(p)}
    reached = {name: finished_epoch(out / name) for name in before}
    again = finish(SWEEP, out)
    assert again.returncode == 0, again.stdout + again.stderr
    index = pd.read_csv(out / "trials.csv")
    assert list(index.status) == ["completed"] * 4
    for trial in index.trial:
        assert_same_run(out / trial, reference / "sweep" / trial, 6)
    for name, summary in before.items():  # finished trials untouched, the others continued
        if b'"completed"' in summary:
            assert (out / name / results.SUMMARY_FILE).read_bytes() == summary
        elif reached[name]:
            assert results.read_summary(out / name)["resumes"][0]["from_epoch"] == reached[name]


def test_resume_of_a_run_killed_before_its_first_epoch_starts_afresh(tmp_path):
    """kill -9 while compiling leaves a `running` folder with no checkpoint: it is resumable."""
    out = tmp_path / "run"
    interrupt(TRAIN, out, "compile", signal.SIGKILL)
    assert results.read_summary(out)["status"] == "running"
    resumed = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", "--resume", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "starting afresh" in resumed.stderr
    assert list(results.read_metrics(out).epoch) == list(range(1, 9))


@pytest.fixture(scope="module")
def user_project(tmp_path_factory):
    """A folder holding nets.py, and the user-module sweep run from it, never interrupted."""
    project = tmp_path_factory.mktemp("user-project")
    (project / "nets.py").write_text(NETS)
    done = finish(USER_SWEEP, project / "reference", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


@pytest.mark.slow
def test_a_user_module_sweep_killed_mid_training_then_the_same_command_finishes_it(user_project):
    out = user_project / "killed"
    interrupt(USER_SWEEP, out, "checkpointed", signal.SIGKILL, cwd=user_project)
    reached = {p.parent.name: finished_epoch(p.parent) for p in files(out, results.SUMMARY_FILE)}
    assert any(0 < epoch < 6 for epoch in reached.values()), reached  # some trial to continue
    again = finish(USER_SWEEP, out, cwd=user_project)
    assert again.returncode == 0, again.stdout + again.stderr
    index = pd.read_csv(out / "trials.csv")
    assert list(index.status) == ["completed"] * 4
    for trial in index.trial:  # every epoch once, the numbers of the run never killed
        assert_same_run(out / trial, user_project / "reference" / trial, 6)
        assert results.read_summary(out / trial)["config"]["model"]["_target_"] == "nets.Tiny"
    for name, epoch in reached.items():  # continued from its checkpoint, not from the start
        if 0 < epoch < 6:
            assert results.read_summary(out / name)["resumes"][0]["from_epoch"] == epoch
