"""A sweep's worker processes end with it: killed (-9), stopped (SIGTERM to the whole process
group, as Slurm and systemd send it), and a failed group makes the sweep's exit status 1.

Real `dlrun sweep` processes, with `--jobs 2` where the workers are the subject; they and
multiprocessing's resource tracker are found as the sweep's children in /proc.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlrun import results
from dlrun.sweep.folder import trial_status

# tiny trials, each a few seconds of epochs: still training when the test strikes
BASE = [
    "sweep",
    "data=moons",
    "data.n_samples=4000",
    "model.hidden=[64,64]",
    "batch_size=32",
    "schedule=constant",
    "--max-group",
    "1",
]
JOBS = ("--jobs", "2")
GONE_WITHIN_S = 10


def command(out: Path, *overrides: str) -> list:
    return [sys.executable, "-m", "dlrun", *BASE, *overrides, "--out", str(out)]


@pytest.fixture
def start(tmp_path):
    """Start the sweep command in a session of its own: it leads a process group that the test
    can signal whole, and that teardown kills, strays included (an orphan keeps its group)."""
    started = []

    def start(out: Path, *overrides: str) -> subprocess.Popen:
        log = tmp_path / f"sweep-{len(started)}.log"
        # output to a file: an orphan holding a pipe would keep the test waiting for its end
        with open(log, "w") as stream:
            process = subprocess.Popen(
                command(out, *overrides),
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "COLUMNS": "120"},
            )
        process.log = log
        started.append(process)
        return process

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z...), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    return state(pid) not in (None, "Z")  # a zombie has ended; only its parent's wait is left


def children(pid: int) -> dict:
    """{pid: command line} of the process's live children."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if ppid == pid and alive(int(entry.name)):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def wait_for(condition, process: subprocess.Popen, what: str, limit_s: float = 180) -> None:
    deadline = time.time() + limit_s
    while not condition():
        assert process.poll() is None, f"ended before {what}: {process.log.read_text()}"
        assert time.time() < deadline, f"{what} never came"
        time.sleep(0.05)


def training(out: Path, *trials: str):
    return lambda: all((out / trial / results.METRICS_FILE).exists() for trial in trials)


def workers_and_tracker(pid: int) -> dict:
    found = children(pid)
    kinds = sorted("resource_tracker" if "resource_tracker" in line else "worker" for line in found.values())
    assert kinds == ["resource_tracker", "worker", "worker"], found
    return found


def assert_all_gone(pids, within_s: float = GONE_WITHIN_S) -> None:
    deadline = time.time() + within_s
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:  # the test's own strays: not left to train beside the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still alive {within_s} s on: {left}"


def assert_finished(out: Path, *overrides: str) -> None:
    """The same command again exits 0; every trial completed, trials.csv as its folder says."""
    again = subprocess.run(command(out, *overrides), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    index = pd.read_csv(out / "trials.csv")
    assert list(index.status) == ["completed"] * len(index)
    for row in index.itertuples():
        summary = results.read_summary(out / row.trial)
        assert trial_status(out / row.trial) == row.status
        assert summary["epochs_run"] == row.epochs_run == summary["config"]["epochs"]
        epochs = list(results.read_metrics(out / row.trial).epoch)
        assert epochs == list(range(1, row.epochs_run + 1))  # every epoch once


@pytest.mark.slow
def test_kill_9_of_the_sweep_ends_its_workers_and_the_same_command_finishes(tmp_path, start):
    out, overrides = tmp_path / "sweep", ("epochs=80", "seed=0,1", *JOBS)
    process = start(out, *overrides)
    wait_for(training(out, "trial-000", "trial-001"), process, "both workers training")
    strays = workers_and_tracker(process.pid)
    process.kill()
    process.wait(timeout=10)
    assert_all_gone(strays)
    assert_finished(out, *overrides)


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_busy_and_idle_workers(tmp_path, start):
    """A worker gets the scheduler's SIGTERM and then the sweep's own word: one stop, not two;
    an idle worker waits for the pool to end it (a vanished worker would break the pool)."""
    out, overrides = tmp_path / "sweep", ("epochs=1,150", *JOBS)
    process = start(out, *overrides)
    wait_for(
        lambda: trial_status(out / "trial-000") == "completed" and training(out, "trial-001")(),
        process,
        "one worker idle, one training",
    )
    strays = workers_and_tracker(process.pid)
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=GONE_WITHIN_S)
    output = process.log.read_text()
    assert process.returncode == 130, output
    assert "Traceback" not in output and "Error" not in output, output
    assert trial_status(out / "trial-001") == "interrupted"
    assert_all_gone(strays, 2)
    assert_finished(out, *overrides)


def test_a_failed_group_fails_the_sweep_after_the_other_groups_ran(tmp_path):
    out = tmp_path / "sweep"
    first = subprocess.run(
        command(out, "epochs=2", "seed=0,1"), capture_output=True, text=True, timeout=300, check=False
    )
    assert first.returncode == 0, first.stdout + first.stderr
    # trial-000 made unusable: its status says it can continue, its best checkpoint is garbage,
    # so its group fails as it restores; trial-001 is gone, so its group has to run again
    summary = out / "trial-000" / results.SUMMARY_FILE
    summary.write_text(summary.read_text().replace('"completed"', '"interrupted"'))
    (out / "trial-000" / results.BEST_CHECKPOINT).write_bytes(b"not a checkpoint")
    shutil.rmtree(out / "trial-001")
    again = subprocess.run(
        command(out, "epochs=2", "seed=0,1"), capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "group g000 failed" in again.stderr and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("error: 1 group failed: g000 ")
    index = pd.read_csv(out / "trials.csv")
    assert dict(zip(index.trial, index.status)) == {"trial-000": "failed", "trial-001": "completed"}
