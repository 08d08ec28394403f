"""Terminal output: the live progress bar of a run and the closing table, with rich."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def progress_bar(console: Console, field: str) -> Progress:
    """A bar with its count, a free-text task field (latest numbers, notes) and elapsed time."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(f"{{task.fields[{field}]}}"), TimeElapsedColumn(), console=console)


class EpochProgress:
    """A rich progress bar over the epochs of one run, showing its latest losses and accuracies."""

    def __init__(self, console: Console, description: str):
        self.progress = progress_bar(console, "metrics")
        self.description = description

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def start(self, total_epochs: int, completed: int) -> None:
        self.task = self.progress.add_task(self.description, total=total_epochs, completed=completed,
                                           metrics="compiled, training...")

    def update(self, epoch: int, rows: list) -> None:
        row = next((row for row in rows if row is not None), None)
        if row is None:
            return
        text = f"loss {row['train_loss']:.4f} val {row['val_loss']:.4f}"
        if not math.isnan(row.get("val_accuracy", math.nan)):
            text += f" acc {row['train_accuracy']:.2%} val {row['val_accuracy']:.2%}"
        self.progress.update(self.task, completed=epoch, metrics=text)


class SweepProgress:
    """Trials and epochs bars over a whole sweep; hands run_group an adapter per group."""

    def __init__(self, console: Console, total_trials: int, done: int):
        self.progress = progress_bar(console, "note")
        self.trials = self.progress.add_task("trials", total=total_trials, completed=done, note="")
        self.epochs = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def trials_done(self, count: int, note: str = "") -> None:
        self.progress.update(self.trials, advance=count, note=note)

    def group(self, group_id: str, size: int):
        sweep = self

        class GroupAdapter:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                pass

            def start(self, total_epochs, completed):
                if sweep.epochs is not None:
                    sweep.progress.remove_task(sweep.epochs)
                sweep.epochs = sweep.progress.add_task(f"{group_id} ({size} trials) epochs",
                                                       total=total_epochs, completed=completed,
                                                       note="compiled, training...")

            def update(self, epoch, rows):
                live = [row for row in rows if row is not None]
                note = f"{len(live)} live"
                if live:
                    note += f", best val loss {min(row['val_loss'] for row in live):.4f}"
                sweep.progress.update(sweep.epochs, completed=epoch, note=note)

        return GroupAdapter()


def summary_table(summary: dict, run_dir) -> Table:
    """Return a two-column table of a finished run's summary."""
    table = Table(title=f"run {summary['status']}: {run_dir}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    keys = ("status", "epochs_run", "best_epoch", "best_val_loss", "best_val_accuracy",
            "test_loss", "test_accuracy", "params", "train_time_s", "compile_time_s")
    for key in keys:
        value = summary.get(key)
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.2%}" if "accuracy" in key else f"{value:.4g}"
        table.add_row(key, str(value))
    return table
