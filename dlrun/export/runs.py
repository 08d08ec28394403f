"""The runs an export writes: one report over a folder, and what both trackers need from it
(dlrun/export/trackers.py picks the tracker)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.report.build import Report, build_report, split_settings

# The numbers a sweep is compared on: the hparams view's metrics. Accuracies are absent for
# regression runs; a metric no run has is left out.
HEADLINE_METRICS = ("best_val_loss", "best_val_accuracy", "test_loss", "test_accuracy", "epochs_run")


@dataclass
class Collected:
    """The report over the runs under `root`, and its warnings (partial or foreign folders)."""

    root: Path
    report: Report

    @property
    def folders(self) -> list[Path]:
        return [Path(folder) for folder in self.report.rows["folder"]]


def collect(path: Path) -> Collected:
    """The runs under `path`. Raises ConfigError when the folder is missing or holds no runs,
    before anything is written."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"no such folder: {path} (give a run or sweep folder)")
    report = build_report([path])
    if report.rows.empty:
        raise ConfigError(f"no runs found in {path} (no summary.json, metrics.csv or config.yaml)")
    return Collected(path.resolve(), report)


def run_name(root: Path, run_dir: Path) -> str:
    """The run's name in the tracker: its path from the folder above `root`, so that a sweep
    exported beside another keeps its own names (`lr-study/trial-003`, not `trial-003`)."""
    return Path(run_dir).resolve().relative_to(root.parent).as_posix()


def hparams(collected: Collected) -> list[dict]:
    """Per run, the settings that vary across the runs, each key with one type over all runs
    (bool, float or str: what both trackers can sort and plot). A run whose settings are
    unknown gets none."""
    report = collected.report
    columns = {key: _typed(report.rows[key]) for key in report.varying}
    unknown = report.unknown_settings
    return [
        {} if folder in unknown else {key: column[i] for key, column in columns.items()}
        for i, folder in enumerate(report.rows["folder"])
    ]


def _typed(column: pd.Series) -> list:
    """The column's values as all bools, all floats, or else all text; a missing value
    (a null setting, e.g. no clip_norm) is the text 'None', which forces text."""
    values = [
        None if _missing(value) else value.item() if isinstance(value, np.generic) else value
        for value in column
    ]
    if all(isinstance(value, bool) for value in values):
        return values
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return [float(value) for value in values]
    return [str(value) for value in values]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def headline(row: pd.Series) -> dict:
    """The run's finite headline numbers (HEADLINE_METRICS)."""
    return {
        name: float(row[name])
        for name in HEADLINE_METRICS
        if isinstance(row.get(name), (int, float)) and math.isfinite(row[name])
    }


def epoch_times(run_dir: Path, curves: pd.DataFrame | None) -> tuple[float, list[float]]:
    """(when the run started, when each epoch ended) in seconds since the Unix epoch: the start
    from summary.json plus the epochs' times, so both trackers draw the curves against the time
    they were trained. Without a start, now; without epoch times, the start for every epoch."""
    try:
        started = datetime.fromisoformat(results.read_summary(run_dir)["started_at"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        started = datetime.now().timestamp()
    if curves is None or "epoch_time_s" not in curves:
        return started, [started] * (0 if curves is None else len(curves))
    return started, list(started + curves["epoch_time_s"].fillna(0).cumsum())


@dataclass
class RunState:
    """A run folder as a live logger sees it after a change: its curves so far, its status,
    its hyperparameters, and once it ended the report's row (diagnosis, headline numbers)."""

    run_dir: Path
    name: str  # as the trackers name it: run_name(root, run_dir)
    curves: pd.DataFrame | None
    status: str
    hparams: dict
    row: pd.Series | None = None  # set once the run ended

    @property
    def epochs(self) -> int:
        return 0 if self.curves is None else len(self.curves)


def hparams_over(configs: list[dict | None]) -> list[dict]:
    """What `hparams` gives for runs with these settings (build.settings_of), before their
    report exists: a live logger's hparams for runs that have not all started."""
    varying, _, shown = split_settings(configs)
    columns = {key: _typed(shown[key]) for key in varying}
    return [
        {} if config is None else {key: column[i] for key, column in columns.items()}
        for i, config in enumerate(configs)
    ]
