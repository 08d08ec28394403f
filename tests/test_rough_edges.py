"""Rough edges of the CLI that are no one-line refusal of bad input (tests/test_bad_input.py has
those): a disk that fills up mid-run, rich markup in a user's names, a sweep that lists a value
twice, plot curves drawn for only some runs, a corrupt checkpoint inside a sweep.

Each test runs the real command (`python -m dlrun`) in a fresh folder, on the tiny xor data.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

import pytest
from conftest import needs_mnist

from dlrun import results
from dlrun.report.terminal import setting_texts
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
        # both: the metrics row and the checkpoint of an epoch are two writes, and a limit
        # set between them would leave no finished epoch to keep
        lambda: (run / results.METRICS_FILE).exists() and (run / results.LAST_CHECKPOINT).exists(),
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


TPE = ["--search", "tpe", "--trials"]
HUGE = "99999999999999999999999"  # past 64 bits
INT64 = "-9223372036854775808 to 9223372036854775807 (a 64-bit integer)"
SEEDS = "0 to 4294967295 (the 32 bits of a seed that jax.random keeps)"


def test_an_adaptive_search_without_a_pruner_says_no_pruning(tmp_path):
    result = dlrun(tmp_path, "sweep", *TINY, "epochs=1", "lr=interval(0.01,0.1)", *TPE, "1", "--out", "s")
    assert result.returncode == 0, result.stderr
    assert "best_val_accuracy, no pruning: lr=interval(0.01,0.1)" in result.stderr, result.stderr
    assert "none pruner" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", f"seed={HUGE}"], f"seed={HUGE} is out of range: seed takes {SEEDS}"),
        # jax.random.PRNGKey(2**32) is PRNGKey(0): a seed past 32 bits would repeat another
        (["train", "seed=4294967296"], f"seed=4294967296 is out of range: seed takes {SEEDS}"),
        (["train", f"batch_size={10**30}"], f"batch_size={10**30} is out of range: batch_size takes {INT64}"),
        (["train", f"model.hidden=[8,{HUGE}]"], f"model.hidden=[8, {HUGE}] is out of range"),
        (["train", f"lr={10**400}"], "is out of range: lr takes a float from -1.8e308 to 1.8e308"),
        (["sweep", f"seed=0,{2**63}"], f"seed={2**63} is out of range: seed takes {SEEDS} (trial 1: "),
        (
            ["sweep", f"seed=interval(0,{HUGE})", *TPE, "2"],
            f"seed=interval(0,{HUGE}): the end 99999999999999991611392 cannot run: "
            f"seed=99999999999999991611392 is out of range: seed takes {SEEDS}",
        ),
        (
            ["sweep", "lr=interval(0.01,0.1)", "--trials", HUGE],
            f"--trials {HUGE} is out of range: --trials takes 1 to 9223372036854775807",
        ),
        (
            ["sweep", "lr=interval(0.01,0.1)", *TPE, "2", "--search-seed", "4294967296"],
            "--search-seed 4294967296 is out of range: --search-seed takes 0 to 4294967295",
        ),
    ],
    ids=["seed", "seed-33-bits", "batch", "width", "float", "grid", "tpe", "trials", "search-seed"],
)
def test_an_integer_too_large_for_its_field_is_refused_in_one_line(tmp_path, args, message):
    command, *rest = args
    result = dlrun(tmp_path, command, *TINY, "epochs=1", *rest, "--out", "out")
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = lines_of(result.stderr)
    assert line.startswith("error: ") and message in line, line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_categorical_choice_that_cannot_run_is_refused_before_the_first_ask(tmp_path):
    result = dlrun(tmp_path, "sweep", *TINY, "activation=choice(relu,1,0.5)", *TPE, "4", "--out", "s")
    assert result.returncode == 2, result.stderr
    assert lines_of(result.stderr) == [
        "error: activation=choice(relu,1,0.5): the choice 1 cannot run: unknown activation '1' "
        "(choose from: elu, gelu, identity, leaky_relu, maxout, prelu, relu, sigmoid, silu, "
        "softplus, tanh)"
    ], result.stderr
    assert list(tmp_path.iterdir()) == []  # no study, no sweep.yaml


@needs_mnist
def test_a_batch_larger_than_the_training_set_trains_one_batch_per_epoch(tmp_path):
    result = dlrun(
        tmp_path, "train", "model=mlp", "model.hidden=[32]", "data.per_class=10", "epochs=4", "--out", "r"
    )
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stderr)[0] == (
        "warning: batch_size 128 exceeds the 100 training examples: each epoch is one batch of 100"
    )
    run = tmp_path / "r"
    assert results.read_config(run)["batch_size"] == 100  # what trained, not what was asked
    losses = results.read_metrics(run)["train_loss"]
    assert len(losses) == 4 and losses.iloc[-1] < losses.iloc[0], losses


def test_trials_whose_batches_exceed_the_data_train_together_on_one_batch(tmp_path):
    args = [*TINY, "data.subset=100", "batch_size=128,256", "epochs=2", "--out", "s"]
    result = dlrun(tmp_path, "sweep", *args)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in lines_of(result.stderr) if line.startswith("warning:")]
    assert warnings == [
        f"warning: batch_size {size} exceeds the 100 training examples: each epoch is one batch of 100"
        for size in (128, 256)
    ], result.stderr
    for trial in ("trial-000", "trial-001"):
        summary = results.read_summary(tmp_path / "s" / trial)
        assert summary["status"] == "completed" and summary["group_size"] == 2, summary
        assert results.read_config(tmp_path / "s" / trial)["batch_size"] == 100


def test_the_sweep_end_table_shows_searched_values_whole_as_the_report_does(tmp_path):
    args = [*TINY, "epochs=1", "lr=interval(0.001,0.1)", "model.dropout=interval(0,0.5)", *TPE, "2"]
    result = subprocess.run(
        [sys.executable, "-m", "dlrun", "sweep", *args, "--out", "s"],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    trained = [results.read_config(tmp_path / "s" / f"trial-00{n}")["lr"] for n in range(2)]
    for text in setting_texts(trained):  # how `dlrun report` writes each lr
        assert re.search(rf"│ +{re.escape(text)} │", result.stdout), (text, result.stdout)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at tmp_path/disk: a real file system that fills up (ENOSPC), as RLIMIT_FSIZE
    only imitates. Mounting needs root; elsewhere the test is skipped."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_a_full_file_system_fails_the_run_in_one_line_and_the_same_command_continues(tmp_path, small_disk):
    stats = os.statvfs(small_disk)
    # room for the run's files and a few dozen epochs of metrics, not for its 400 epochs
    filler = small_disk / "filler"
    filler.write_bytes(b"0" * (stats.f_bavail * stats.f_frsize - 40 * 1024))
    command = ["train", *TINY, "epochs=400", "--out", "disk/run"]
    full = dlrun(tmp_path, *command)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    assert lines_of(full.stderr)[-1] == "run failed: cannot write disk/run: No space left on device"
    run = small_disk / "run"
    kept = finished_epoch(run)  # the last checkpoint that was written whole
    assert 1 <= kept < 400 and len(results.read_metrics(run)) == kept
    assert not [path for path in run.rglob("*.tmp")]

    filler.unlink()  # space is back
    again = dlrun(tmp_path, *command)
    assert again.returncode == 0, again.stderr
    assert lines_of(again.stderr)[0] == f"continuing the failed run in disk/run from epoch {kept + 1}"
    assert results.read_summary(run)["status"] == "completed"
    assert len(results.read_metrics(run)) == 400
