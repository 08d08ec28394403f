"""Rough edges of the CLI that are no one-line refusal of bad input (tests/test_bad_input.py has
those): a disk that fills up mid-run, rich markup in a user's names, a sweep that lists a value
twice, plot curves drawn for only some runs, a corrupt checkpoint inside a sweep.

Each test runs the real command (`python -m dlrun`) in a fresh folder, on the tiny xor data.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest

from dlrun import results
from dlrun.sweep.plan import make_plan
from dlrun.training.resume import finished_epoch

TINY = ["data=xor", "model.hidden=[8]"]


def environment() -> dict:
    # wide, so that rich wraps no line a test reads
    return {**os.environ, "COLUMNS": "200"}


def dlrun(tmp, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        cwd=tmp,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def with_disk_full_once(tmp, args, ready) -> subprocess.CompletedProcess:
    """Start `dlrun *args`; once `ready()` holds, let it write no byte more to any file.

    Root writes through any mode bits, so a read-only folder would not stop these tests (they
    run as root); a file size limit of 0 (RLIMIT_FSIZE) stops root too: every write then fails
    with EFBIG, as writes fail on a full disk."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dlrun", *args],
        cwd=tmp,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote no epoch in 120 s"
        time.sleep(0.02)
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (0, 0))
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_whole(run_dir) -> None:
    """Every file of the run reads back (each write was atomic); no temporary file is left."""
    assert results.read_config(run_dir)["data"]["name"] == "xor"
    assert len(results.read_metrics(run_dir)) >= 1
    assert results.read_summary(run_dir)["status"] == "running"  # `failed` could not be written
    assert finished_epoch(run_dir) >= 1
    assert not [path for path in run_dir.rglob("*.tmp")]


needs_prlimit = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="Linux's prlimit")


@needs_prlimit
def test_a_disk_that_fills_mid_run_fails_the_run_in_one_line_and_keeps_its_files(tmp_path):
    run = tmp_path / "run"
    result = with_disk_full_once(
        tmp_path,
        ["train", *TINY, "epochs=100000", "--out", "run"],
        lambda: (run / results.METRICS_FILE).exists(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # a failed run, not bad input
    assert "Traceback" not in output
    assert lines_of(result.stderr)[-1] == "run failed: cannot write run: File too large", output
    assert_whole(run)


@needs_prlimit
def test_a_resume_that_fills_the_disk_says_the_folder_could_not_be_put_back(tmp_path):
    run = tmp_path / "run"
    assert dlrun(tmp_path, "train", *TINY, "epochs=1", "--out", "run").returncode == 0
    metrics = run / results.METRICS_FILE
    result = with_disk_full_once(
        tmp_path,
        ["train", "--resume", "run", "epochs=100000"],
        lambda: len(metrics.read_text().splitlines()) > 2,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert lines_of(result.stderr)[-1] == (
        "run failed: cannot write run: File too large; putting run back failed too (cannot "
        "write run: File too large): each file there is whole, some of them from this attempt"
    ), output
    assert_whole(run)


def test_markup_in_a_run_name_is_shown_as_written(tmp_path):
    trained = dlrun(tmp_path, "train", *TINY, "epochs=1", "name='[red]abc'")
    assert trained.returncode == 0, trained.stderr
    assert "-> runs/[red]abc/" in trained.stderr  # the header line
    assert "runs/abc" not in trained.stderr, trained.stderr  # the closing table's title neither
    (run,) = (tmp_path / "runs" / "[red]abc").iterdir()
    shutil.copytree(run, tmp_path / "runs" / "[bold]other" / "run")  # a second run to name
    report = dlrun(tmp_path, "report", "runs/")
    assert report.returncode == 0, report.stderr
    assert f"[red]abc/{run.name}" in report.stdout, report.stdout
    assert "[bold]other/run" in report.stdout, report.stdout


def test_a_sweep_that_lists_a_value_twice_plans_it_once_and_says_so(tmp_path):
    result = dlrun(tmp_path, "sweep", *TINY, "lr=0.1,0.1,0.01", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stderr) == [
        "warning: lr=0.1,0.1,0.01 lists 0.1 twice: the duplicate trial is dropped"
    ]
    assert "2 trials (grid)" in result.stdout
    # numbered after the drop: the same command names the same folders, with no gap
    plan = make_plan([*TINY, "lr=0.1,0.1,0.01", "seed=0,1"])
    assert [(trial.id, trial.params) for trial in plan.trials] == [
        ("trial-000", {"lr": "0.1", "seed": "0"}),
        ("trial-001", {"lr": "0.1", "seed": "1"}),
        ("trial-002", {"lr": "0.01", "seed": "0"}),
        ("trial-003", {"lr": "0.01", "seed": "1"}),
    ]


def test_report_plot_says_it_drew_the_curves_of_only_the_first_runs(tmp_path):
    for number in range(13):
        run = tmp_path / "runs" / f"run-{number:02d}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"lr: {0.001 * (number + 1)}\n")
        (run / "summary.json").write_text(json.dumps({"status": "completed", "best_epoch": 2}))
        (run / "metrics.csv").write_text("epoch,train_loss,val_loss\n1,0.5,0.6\n2,0.4,0.5\n")
    result = dlrun(tmp_path, "report", "runs", "--plot")
    assert result.returncode == 0, result.stderr
    assert "note: curves of the first 12 of 13 runs; use --filter/--top to choose" in lines_of(
        result.stderr
    ), result.stderr


def test_a_corrupt_checkpoint_in_a_sweep_is_said_before_the_trial_trains_again(tmp_path):
    sweep = [*TINY, "epochs=2", "lr=0.1,0.01", "--out", "s"]
    assert dlrun(tmp_path, "sweep", *sweep).returncode == 0
    trial = tmp_path / "s" / "trial-001"
    summary = json.loads((trial / results.SUMMARY_FILE).read_text())
    (trial / results.SUMMARY_FILE).write_text(json.dumps({**summary, "status": "interrupted"}))
    (trial / results.LAST_CHECKPOINT).write_bytes(b"not a checkpoint")
    result = dlrun(tmp_path, "sweep", *sweep)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in lines_of(result.stderr) if line.startswith("warning:")]
    assert warnings == [
        "warning: s/trial-001/checkpoints/last.msgpack cannot be read (ExtraData); "
        "trial-001 is trained again from scratch"
    ], result.stderr
    retrained = results.read_summary(trial)
    assert retrained["status"] == "completed" and retrained["epochs_run"] == 2
