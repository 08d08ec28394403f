"""Terminal output of one run: its live progress bar and its closing table, with rich (a sweep's
bars are in dlrun/sweep/progress.py)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlrun.training.callbacks import EpochCallback


def progress_bar(console: Console, field: str) -> Progress:
    """A bar with its count, a free-text task field (latest numbers, notes) and elapsed time.

    Both texts are rich markup: a description or note that holds a user's text is escaped."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
        TimeElapsedColumn(),
        console=console,
    )


class EpochProgress(EpochCallback):
    """A rich progress bar over the epochs of one run, showing its latest losses and accuracies."""

    def __init__(self, console: Console, description: str):
        self.progress = progress_bar(console, "metrics")
        self.description = description

    def on_start(self, group, first_epoch: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            escape(self.description),
            total=group.epochs,
            completed=first_epoch - 1,
            metrics="compiled, training...",
        )

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        row = next((row for row in rows if row is not None), None)
        if row is None:
            return
        text = f"loss {row['train_loss']:.4f} val {row['val_loss']:.4f}"
        if not math.isnan(row.get("val_accuracy", math.nan)):
            text += f" acc {row['train_accuracy']:.2%} val {row['val_accuracy']:.2%}"
        if "val_psnr" in row:
            text += f" PSNR {row['train_psnr']:.2f} val {row['val_psnr']:.2f} dB"
        self.progress.update(self.task, completed=epoch, metrics=text)

    def on_end(self, group) -> None:
        self.progress.stop()


def summary_table(summary: dict, run_dir) -> Table:
    """Return a two-column table of a finished run's summary."""
    table = Table(title=escape(f"run {summary['status']}: {run_dir}"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    keys = (
        "status",
        "epochs_run",
        "best_epoch",
        "best_val_loss",
        "best_val_accuracy",
        "test_loss",
        "test_accuracy",
        "test_psnr",
        "test_psnr_noisy_input",
        "params",
        "train_time_s",
        "compile_time_s",
    )
    for key in keys:
        value = summary.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # e.g. no accuracy for a regression
        if isinstance(value, float):
            value = (
                f"{value:.2%}"
                if "accuracy" in key
                else f"{value:.2f} dB"
                if "psnr" in key
                else f"{value:.4g}"
            )
        table.add_row(key, escape(str(value)))
    return table
