"""Terminal output: the live progress bar of a run and the closing table, with rich."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class EpochProgress:
    """A rich progress bar over the epochs of one run, showing its latest losses and accuracies."""

    def __init__(self, console: Console, description: str):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            console=console,
        )
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
