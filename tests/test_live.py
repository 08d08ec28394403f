"""The folder a watch follows (dlrun/report/live.py, results.read_metrics_tail) and the screen it
draws (dlrun/report/live_view.py), on a real search's folder made to look mid-sweep again."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from dlrun import results
from dlrun.claims import LOCK_FILE, noted_as_held
from dlrun.cli import app
from dlrun.report.live import LiveFolder
from dlrun.report.live_view import sparkline, watch_view

SEARCH = [
    "data=spirals",
    "model.hidden=[32,32]",
    "batch_size=32",
    "optim=momentum",
    "lr=interval(1e-4,1)",
    "optim.momentum=interval(0.5,0.95)",
    "epochs=4",
    *("--search", "tpe", "--search-seed", "3", "--trials", "6", "--batch", "3", "--pruner", "hyperband"),
]


@pytest.fixture(scope="module")
def ended_search(tmp_path_factory):
    """A real tpe search with hyperband on the spirals (most of its 6 trials pruned), ended."""
    out = tmp_path_factory.mktemp("live") / "search"
    done = CliRunner().invoke(app, ["sweep", *SEARCH, "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture
def mid_sweep(ended_search, tmp_path):
    """The search copied and put back to mid-sweep: its best trial running (held, its
    summary's end dropped) and trials.csv written before that."""
    out = tmp_path / "search"
    shutil.copytree(ended_search, out)
    index = pd.read_csv(out / "trials.csv")
    best = index.sort_values("best_val_accuracy").trial.iloc[-1]
    summary = json.loads((out / best / "summary.json").read_text())
    for key in ("finished_at", "best_val_accuracy", "best_val_loss", "epochs_run"):
        summary.pop(key)
    os.utime(out / "trials.csv", ns=(0, 0))
    results.write_summary(out / best, {**summary, "status": "running"})
    (out / best / LOCK_FILE).write_text("{}")
    return out, best


def write_rows(run_dir, rows: int) -> None:
    results.write_metrics(run_dir, [{"epoch": e, "val_loss": 1 / e, "note": "x"} for e in range(1, rows + 1)])


def test_a_metrics_tail_reads_only_what_was_added_and_leaves_a_half_line(tmp_path):
    write_rows(tmp_path, 2)
    first = results.read_metrics_tail(tmp_path)
    assert first.header == ("epoch", "val_loss", "note") and len(first.rows) == 2
    assert first.rows[1][:2] == (2.0, 0.5) and first.offset == (tmp_path / "metrics.csv").stat().st_size
    with open(tmp_path / "metrics.csv", "a") as stream:  # a writer that appends, caught mid-line
        stream.write("3,0.33,x\n4,0.2")
    grown = results.read_metrics_tail(tmp_path, first)
    assert [row[0] for row in grown.rows] == [1.0, 2.0, 3.0]
    assert grown.columns()["val_loss"].tolist() == [1.0, 0.5, 0.33]
    with open(tmp_path / "metrics.csv", "a") as stream:
        stream.write("5,x\n")
    assert [row[:2] for row in results.read_metrics_tail(tmp_path, grown).rows[3:]] == [(4.0, 0.25)]


def test_a_metrics_file_rewritten_before_the_rows_read_is_read_whole(tmp_path):
    write_rows(tmp_path, 3)
    known = results.read_metrics_tail(tmp_path)
    results.write_metrics(tmp_path, [{"epoch": e, "val_loss": 9.0, "note": "y"} for e in range(1, 6)])
    again = results.read_metrics_tail(tmp_path, known)
    assert [row[1] for row in again.rows] == [9.0] * 5


def test_a_ragged_metrics_file_is_refused_with_its_reason(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,val_loss\n1,0.5,7\n")
    with pytest.raises(ValueError, match="rows of unequal length"):
        results.read_metrics_tail(tmp_path)


def test_the_ended_search_reads_as_finished_with_its_pruned_trials(ended_search):
    watched = LiveFolder(ended_search).refresh()
    statuses = [trial.status for trial in watched.trials]
    assert watched.ended == "finished" and watched.budget == 6 and len(statuses) == 6
    assert statuses == pd.read_csv(ended_search / "trials.csv").status.tolist()
    assert "pruned" in statuses and watched.search == "tpe"
    assert watched.space == ["lr", "optim.momentum"] and set(watched.trials[0].params) == set(watched.space)
    assert all(trial.epochs == 4 for trial in watched.trials)


def test_mid_sweep_it_is_not_ended_until_the_claim_goes_and_the_index_is_written(mid_sweep):
    out, best = mid_sweep
    reader = LiveFolder(out)
    running = {t.name: t for t in reader.refresh().trials}[best]
    assert running.status == "running" and running.epochs_run == 4
    assert running.diagnosis  # read from its 4 epochs, provisional
    summary = {**json.loads((out / best / "summary.json").read_text()), "status": "completed"}
    results.write_summary(out / best, summary)
    assert reader.refresh().ended is None  # the trial's claim is still held
    (out / best / LOCK_FILE).unlink()
    assert reader.refresh().ended is None  # trials.csv is older than the last summary
    pd.read_csv(out / "trials.csv").to_csv(out / "trials.csv", index=False)
    assert reader.refresh().ended == "finished"


def test_a_note_left_by_a_dead_process_of_this_host_holds_nothing(mid_sweep):
    out, best = mid_sweep
    summary = json.loads((out / best / "summary.json").read_text())
    results.write_summary(out / best, {**summary, "status": "completed"})
    (out / best / LOCK_FILE).unlink()
    pd.read_csv(out / "trials.csv").to_csv(out / "trials.csv", index=False)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    note = lambda pid, host: json.dumps({"pid": pid, "host": host, "command": "dlrun sweep"})  # noqa: E731
    (out / LOCK_FILE).write_text(note(os.getpid(), socket.gethostname()))
    assert noted_as_held(out) and LiveFolder(out).refresh().ended is None
    (out / LOCK_FILE).write_text(note(os.getpid(), "another-host"))
    assert noted_as_held(out)  # another machine's process cannot be asked
    (out / LOCK_FILE).write_text(note(int(gone.stdout), socket.gethostname()))
    assert not noted_as_held(out)  # as kill -9 leaves it
    assert LiveFolder(out).refresh().ended == "finished"


def test_an_interrupted_trial_ends_the_watch_as_stopped(mid_sweep):
    out, best = mid_sweep
    summary = json.loads((out / best / "summary.json").read_text())
    results.write_summary(out / best, {**summary, "status": "interrupted"})
    (out / best / LOCK_FILE).unlink()
    pd.read_csv(out / "trials.csv").to_csv(out / "trials.csv", index=False)
    assert LiveFolder(out).refresh().ended == "stopped"


def test_a_refresh_reads_only_files_that_changed(mid_sweep):
    out, best = mid_sweep
    reader = LiveFolder(out)
    reader.refresh()
    path = out / best / "metrics.csv"
    stat = path.stat()
    # same size and times, other bytes: a file whose stat did not change is not read again
    path.write_bytes(path.read_bytes().replace(b"1,", b"7,", 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.rename(path, out / best / "kept")  # the same inode back under its name
    os.rename(out / best / "kept", path)
    trial = {t.name: t for t in reader.refresh().trials}[best]
    assert trial.tail.rows[0][0] == 1.0
    summary = json.loads((out / best / "summary.json").read_text())
    results.write_summary(out / best, {**summary, "status": "completed"})
    assert {t.name: t for t in reader.refresh().trials}[best].status == "completed"


def test_a_half_written_summary_keeps_what_was_read_and_is_read_again(mid_sweep):
    out, best = mid_sweep
    reader = LiveFolder(out)
    reader.refresh()
    whole = (out / best / "summary.json").read_text()
    (out / best / "summary.json").write_text(whole[: len(whole) // 2])
    trial = {t.name: t for t in reader.refresh().trials}[best]
    assert trial.status == "running" and "summary.json" in trial.problem
    (out / best / "summary.json").write_text(whole)
    trial = {t.name: t for t in reader.refresh().trials}[best]
    assert trial.problem == "" and trial.status == "running"


def test_a_sparkline_scales_the_curve_and_samples_a_long_one():
    assert sparkline([1.0, 2.0, 3.0], 10) == "▁▅█"
    assert sparkline([2.0, float("nan"), 2.0], 10) == "▁ ▁"
    assert len(sparkline([float(i) for i in range(100)], 8)) == 8


def screen(watched, width: int) -> list[str]:
    console = Console(record=True, width=width)
    console.print(watch_view(watched, width, height=40))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_the_screen_fits_its_width_and_shows_the_running_best_and_pruned(mid_sweep, width):
    out, best = mid_sweep
    lines = screen(LiveFolder(out).refresh(now=2e9), width)
    text = "\n".join(lines)
    assert max(map(len, lines)) <= width
    assert lines[0].startswith("tpe sweep, training: ")
    statuses = pd.read_csv(out / "trials.csv").status
    done, pruned = (statuses == "completed").sum() - 1, (statuses == "pruned").sum()
    assert f"6 trials: 1 running, {done} completed, {pruned} pruned" in text.replace(" 0 completed,", "")
    assert f"best so far: {best} (running), val acc" in text and "lr=" in text
    assert "running: 1 trial" in text and "4/4" in text and "?" in text
    assert "provisional" in text and f"pruned ({pruned}, trial@epoch it stopped at)" in text
    assert "@1" in text and "q or Ctrl-C leaves" in text
    assert ("train loss" in text) == (width > 100)  # a wider terminal gets more


def test_the_screen_of_the_ended_search_says_so_without_an_estimate(ended_search):
    text = "\n".join(screen(LiveFolder(ended_search).refresh(), 80))
    spent = pd.read_csv(ended_search / "trials.csv").epochs_run.sum()
    assert "tpe sweep, ended" in text and "running:" not in text and "left" not in text
    assert f"trial-epochs: {spent} of at most 24" in text
