"""The progress bars and the closing table, rendered as a person sees them (80 columns)."""

import io
import math

from rich.console import Console

from dlrun.config.load import compose_config
from dlrun.sweep import executor, folder
from dlrun.sweep.plan import make_plan
from dlrun.sweep.progress import FolderEpochs, SweepProgress
from dlrun.training import group
from dlrun.training.progress import EpochProgress, summary_table

MOONS = ["data=moons", "data.n_samples=600", "data.val_size=100", "model.hidden=[8]", "epochs=3"]


def console() -> Console:
    return Console(file=io.StringIO(), width=80, force_terminal=False, color_system=None)


def test_the_epoch_bar_counts_the_epochs_and_shows_the_latest_numbers(tmp_path):
    screen = console()
    cfg = compose_config(MOONS)
    group.run_group([cfg], [tmp_path / "run"], callbacks=[EpochProgress(screen, "mlp")])
    text = screen.file.getvalue()
    assert "3/3" in text and "loss" in text and "val" in text and "acc" in text


def test_the_sweep_bars_count_trials_and_the_epochs_of_each_group(tmp_path):
    screen = console()
    plan = make_plan([*MOONS, "lr=0.1,0.01", "batch_size=16,32"])
    out = tmp_path / "sweep"
    folder.prepare_folder(out, plan, "test")
    executor.run_plan(plan, out, console=screen)
    text = screen.file.getvalue()
    assert "4/4" in text and "trials" in text and "epochs" in text and "live" in text


def test_the_summary_table_shows_accuracy_as_percent_and_leaves_out_what_is_not_there():
    classification = {
        "status": "completed",
        "epochs_run": 3,
        "best_val_accuracy": 0.95,
        "test_accuracy": 0.9375,
        "test_loss": 0.2,
    }
    regression = {
        "status": "completed",
        "epochs_run": 3,
        "best_val_accuracy": math.nan,
        "test_accuracy": None,
        "test_loss": 0.01,
    }
    for summary, present, absent in (
        (classification, ["95.00%", "93.75%"], []),
        (regression, ["0.01"], ["nan", "accuracy"]),
    ):
        screen = console()
        screen.print(summary_table(summary, "runs/x"))
        text = screen.file.getvalue()
        assert all(item in text for item in present) and not any(item in text for item in absent)
        assert max(len(line) for line in text.splitlines()) <= 80


def test_a_real_regression_runs_summary_has_no_accuracy_and_no_nan(tmp_path):
    cfg = compose_config(
        ["data=poly1d", "data.n_samples=300", "data.val_size=100", "model.hidden=[8]", "epochs=2"]
    )
    summary = group.train_and_evaluate(cfg, tmp_path / "run")
    screen = console()
    screen.print(summary_table(summary, tmp_path / "run"))
    text = screen.file.getvalue()
    assert "nan" not in text.lower() and "accuracy" not in text and "%" not in text
    assert "best_val_loss" in text and "test_loss" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_groups_trained_out_of_sight_are_counted_from_their_folders(tmp_path):
    """Worker processes (and Ray) report no epochs to this process: the trial-epochs bar
    counts the rows their folders' metrics.csv gain, and only as many as each trial has."""
    screen = console()
    plan = make_plan([*MOONS, "lr=0.1,0.01", "batch_size=16,32"])
    out = tmp_path / "sweep"
    folder.prepare_folder(out, plan, "test")
    executor.run_plan(plan, out, jobs=2, console=screen)
    text = screen.file.getvalue()
    assert "trial-epochs" in text and "12/12" in text and "4/4" in text

    sweep = SweepProgress(console(), 4, 0)
    jobs = [
        executor.GroupJob("g", [{"epochs": 3}] * 4, [str(out / f"trial-{i:03d}") for i in range(4)], False)
    ]
    watcher = FolderEpochs(sweep, jobs)
    assert sweep.progress.tasks[watcher.task].completed == 12
    metrics = out / "trial-001" / "metrics.csv"
    metrics.write_text("\n".join(metrics.read_text().splitlines()[:2]) + "\n")  # header + 1 row
    watcher.refresh()
    assert sweep.progress.tasks[watcher.task].completed == 10
    assert sweep.progress.tasks[watcher.task].total == 12
