"""Comparison tables over run folders: one row per run, its varying hyperparameters, headline
numbers, and a diagnosis with evidence and advice (diagnose.py).

Reads run folders only through the readers of the run-folder contract (dlrun/results.py) and
never imports JAX, so it is quick: a folder that is partial, corrupt or foreign becomes a row
with a warning, never a crash.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dlrun import results
from dlrun.config.schema import own_fields
from dlrun.report import diagnose, query
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

RUN_FILES = (results.SUMMARY_FILE, results.METRICS_FILE, results.CONFIG_FILE)
# `report --plot` draws into this folder beside the runs: PNGs, not a foreign folder to warn about.
PLOTS_FOLDER = "report"
# Config keys that say how a run was bookkept, not what was trained: never columns.
IGNORED_KEYS = frozenset({"name", "eval_batch_size"})
HEADLINE = [
    "status",
    "epochs_run",
    "best_epoch",
    "train_loss",
    "val_loss",
    "best_val_loss",
    "train_accuracy",
    "val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    # the image tasks' (dlrun/models/tasks.py): the output's PSNR, and denoise's noisy input's
    "test_psnr",
    "test_psnr_noisy_input",
    "gap",
    "time_s",
    "params",  # the parameter count: a cost a Pareto search trades accuracy against
    "pruned_epoch",
    "diagnosis",
    "flags",
    "advice",
    "evidence",
]
# A checkpoint stores every parameter in at least 2 bytes (bfloat16, the narrowest float JAX
# trains in), so a smaller file was cut short. Only sizes are checked: loading 2,000 runs'
# weights would make the report take minutes.
MIN_CHECKPOINT_BYTES_PER_PARAM = 2
# The label of a run whose metrics.csv is missing or unreadable: its curves are unknown, not short.
NO_CURVES = "no_curves"
NO_CURVES_ADVICE = "the diagnosis reads the curves in metrics.csv: see the warning about this run"
CORRUPT_SUMMARY = {"status": "corrupt"}


@dataclass
class Report:
    """The rows (a DataFrame), which hyperparameters vary, the constant ones, warnings, the
    curves that were read (metrics.csv as a DataFrame, keyed by the row's `folder`) and the
    folders whose settings are unknown (their config was unreadable)."""

    rows: pd.DataFrame
    varying: list
    constant: dict
    warnings: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)
    unknown_settings: set = field(default_factory=set)


@dataclass
class _RunFiles:
    """What could be read of one run folder; None where a file was missing or unreadable."""

    config: dict | None
    summary: dict
    metrics: pd.DataFrame | None
    metrics_problem: str = ""


def find_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Return run folders under `paths` (a folder holding any run file) and warnings, one for
    each path without runs and each foreign folder found beside the runs."""
    found, warnings = [], []
    for path in map(Path, paths):
        if not path.exists():
            warnings.append(f"{path}: no such folder")
            continue
        runs, foreign = _scan(path)
        if not runs:
            warnings.append(f"{path}: no run folders here (no summary.json, metrics.csv or config.yaml)")
        warnings.extend(
            f"{folder}: not a run folder (no summary.json, metrics.csv or config.yaml), skipped"
            for folder in (foreign if runs else [])
        )
        found.extend(runs)
    return list(dict.fromkeys(found)), warnings


def _scan(root: Path) -> tuple[list[Path], list[Path]]:
    """Run folders under `root`, and foreign ones: folders holding files that are neither a run,
    inside a run (checkpoints/) nor above one (a sweep folder)."""
    runs, others = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]  # .git, caches
        here = Path(folder)
        if any(name in files for name in RUN_FILES):
            runs.append(here)
        elif files and here.name != PLOTS_FOLDER:
            others.append(here)
    run_set = set(runs)
    above = {parent for run in runs for parent in run.parents}
    foreign = [
        folder for folder in others if folder not in above and not run_set.intersection(folder.parents)
    ]
    return sorted(runs), sorted(foreign)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}; lists become their text, e.g. '[512, 256]'."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value) if isinstance(value, list) else value
    return flat


def settings_of(config: dict) -> dict:
    """A config's settings as the report's columns name them (flattened, bookkeeping left out)."""
    return _settings(flatten(own_fields(config)))


def _settings(flat: dict) -> dict:
    return {key: value for key, value in flat.items() if key not in IGNORED_KEYS}


def _read_config(run_dir: Path, summary: dict, warnings: list) -> dict | None:
    """The run's settings, flattened, or None when unreadable: from summary.json when it carries
    them (JSON is ~20x quicker to parse), else config.yaml."""
    if isinstance(summary.get("config"), dict):
        path = run_dir / results.CONFIG_FILE
        if not path.is_file() or path.stat().st_size == 0:  # a stat, not a parse: stays quick
            warnings.append(
                f"{run_dir}: config.yaml is missing or empty (the config is read from summary.json)"
            )
        return flatten(own_fields(summary["config"]))
    try:
        return flatten(own_fields(results.read_config(run_dir)))
    except FileNotFoundError:
        problem = "no config.yaml, and summary.json carries no config"
    except ValueError as error:
        problem = str(error)
    except OSError as error:
        problem = f"config.yaml cannot be read ({error.strerror})"
    warnings.append(f"{run_dir}: {problem}; its settings are unknown")
    return None


def _read_metrics(run_dir: Path) -> tuple[pd.DataFrame | None, str]:
    """The run's curves, or None and what is wrong with its metrics.csv."""
    try:
        return results.read_metrics(run_dir), ""
    except FileNotFoundError:
        return None, "no metrics.csv"
    except ValueError as error:
        return None, str(error)
    except OSError as error:
        return None, f"metrics.csv cannot be read ({error.strerror})"


def _read_summary(run_dir: Path, warnings: list) -> dict:
    """The run's summary; {} when absent and CORRUPT_SUMMARY when unreadable, with a warning."""
    try:
        return results.read_summary(run_dir)
    except FileNotFoundError:
        warnings.append(f"{run_dir}: no summary.json (partial run)")
        return {}
    except ValueError as error:
        problem = str(error)
    except OSError as error:
        problem = f"summary.json cannot be read ({error.strerror})"
    warnings.append(f"{run_dir}: {problem}")
    return dict(CORRUPT_SUMMARY)


def _check_checkpoints(run_dir: Path, summary: dict, warnings: list) -> None:
    """Warn about a checkpoint too small to hold the run's parameters (see the constant)."""
    params = summary.get("params")
    known = isinstance(params, int) and not isinstance(params, bool) and params > 0
    least = params * MIN_CHECKPOINT_BYTES_PER_PARAM if known else 1
    for name in (results.BEST_CHECKPOINT, results.LAST_CHECKPOINT):
        try:
            size = (run_dir / name).stat().st_size
        except OSError:
            continue  # absent: the run may have stopped before its first checkpoint
        if size < least:
            needed = f" for {params} parameters" if known else ""
            warnings.append(f"{run_dir}: {name.as_posix()} is truncated ({size} bytes{needed})")


def _read(run_dir: Path, warnings: list) -> _RunFiles:
    """Read one folder's summary, config and metrics; anything unreadable becomes a warning."""
    summary = _read_summary(run_dir, warnings)
    config = _read_config(run_dir, summary, warnings)
    metrics, problem = _read_metrics(run_dir)
    if problem:
        warnings.append(f"{run_dir}: {problem}")
    _check_checkpoints(run_dir, summary, warnings)
    return _RunFiles(config, summary, metrics, problem)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_row(
    run_dir: Path,
    summary: dict,
    metrics: pd.DataFrame | None,
    thresholds: Thresholds,
    metrics_problem: str = "",
) -> dict:
    """One report row: headline numbers from the summary and curves, and the diagnosis. Without
    curves (`metrics` None), what the summary knows is shown and the label is NO_CURVES."""
    curves = metrics if metrics is not None else pd.DataFrame()
    last = curves.iloc[-1] if len(curves) else pd.Series(dtype=float)
    row = {
        name: _number(last.get(name)) for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
    }
    for name in (
        "epochs_run",
        "best_epoch",
        "best_val_loss",
        "best_val_accuracy",
        "test_loss",
        "test_accuracy",
        "test_psnr",
        "test_psnr_noisy_input",
    ):
        row[name] = _number(summary.get(name))
    if math.isnan(row["epochs_run"]) and metrics is not None:
        row["epochs_run"] = float(len(metrics))
    classification = summary.get("task", "classification") == "classification"
    row["gap"] = (
        row["train_accuracy"] - row["val_accuracy"] if classification else row["val_loss"] - row["train_loss"]
    )
    row["time_s"] = _number(summary.get("train_time_s"))
    row["params"] = _number(summary.get("params"))
    row["status"] = summary.get("status", "unknown")
    row["pruned_epoch"] = _number(summary.get("pruned_epoch"))  # NaN unless the search pruned it
    diagnosis = diagnose.diagnose(metrics, summary, thresholds)
    label, evidence, advice = diagnosis.label, diagnosis.evidence, diagnosis.advice
    if metrics is None and label == "insufficient_data":  # unknown curves are not short ones
        label, evidence, advice = NO_CURVES, metrics_problem or "no curves", NO_CURVES_ADVICE
    row.update(
        diagnosis=label, flags=list(diagnosis.flags), advice=advice, evidence=evidence, folder=str(run_dir)
    )
    return row


def build_report(paths: list[Path], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Report:
    """Collect every run under `paths` into a Report (rows in folder order)."""
    run_dirs, warnings = find_runs(paths)
    rows, configs, curves = [], [], {}
    for run_dir in run_dirs:
        run = _read(run_dir, warnings)
        rows.append(run_row(run_dir, run.summary, run.metrics, thresholds, run.metrics_problem))
        configs.append(None if run.config is None else _settings(run.config))
        if run.metrics is not None:
            curves[str(run_dir)] = run.metrics
    varying, constant, params = split_settings(configs)
    frame = pd.concat([params, pd.DataFrame(rows, columns=[*HEADLINE, "test_loss", "folder"])], axis=1)
    frame.insert(0, "run", _short_names(run_dirs))
    unknown = {str(run_dir) for run_dir, config in zip(run_dirs, configs) if config is None}
    return Report(frame, varying, constant, warnings, curves, unknown)


def split_settings(configs: list[dict | None]) -> tuple[list, dict, pd.DataFrame]:
    """(varying keys, constant settings, the varying columns with one row per run), judged over
    the runs whose config was read (not None): a run whose settings are unknown must not make
    every setting of the others look varied. Its cells stay blank."""
    read = [i for i, config in enumerate(configs) if config is not None]
    params = pd.DataFrame([configs[i] for i in read], index=read)
    varying = [c for c in params.columns if params[c].astype(str).nunique(dropna=False) > 1]
    constant = {c: params[c].iloc[0] for c in params.columns if c not in varying} if read else {}
    shown = params[varying]
    if len(read) < len(configs):  # object dtype keeps integers integers beside the blanks
        shown = shown.astype(object).reindex(range(len(configs)))
    return varying, constant, shown.reset_index(drop=True)


def _short_names(run_dirs: list[Path]) -> list[str]:
    """Folder names relative to their common parent, so rows read `trial-003`, not a long path."""
    if not run_dirs:
        return []
    parts = [p.resolve().parts for p in run_dirs]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) or p[-1] for p in parts]


def select(
    report: Report, *, where: str | None = None, sort: str | None = None, top: int | None = None
) -> pd.DataFrame:
    """Filter with a condition over the columns (grammar: query.py), sort (accuracies and times
    descending as told, losses ascending), keep the first `top`. Raises ValueError naming a bad
    column or expression."""
    frame = report.rows
    if where:
        frame = query.filter_rows(frame, where)
    if sort:
        if sort not in frame.columns:
            choices = query.name_list(frame.columns)
            raise ValueError(f"unknown --sort column '{sort}' (choose from: {choices})")
        ascending = "loss" in sort or sort in ("gap", "time_s")
        try:
            frame = frame.sort_values(sort, ascending=ascending, na_position="last")
        except TypeError:  # numbers beside text (16 and '[16]'): order them as they are printed
            frame = frame.sort_values(
                sort, ascending=ascending, na_position="last", key=lambda column: column.map(_as_text)
            )
    return frame.head(top) if top else frame


def _as_text(value):
    missing = value is None or isinstance(value, float) and math.isnan(value)
    return value if missing else str(value)  # a blank stays blank, so it still sorts last


def group_by(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean and std of the numeric columns over the runs sharing `key` (e.g. seeds per lr)."""
    if key not in frame.columns or _holds_lists(frame[key]):
        keys = [c for c in frame.columns if not _holds_lists(frame[c])]
        what = (
            f"--group-by column '{key}' holds lists, which cannot be grouped"
            if key in frame.columns
            else f"unknown --group-by column '{key}'"
        )
        raise ValueError(f"{what} (choose from: {query.name_list(keys)})")
    numeric = [
        c
        for c in (
            "best_val_loss",
            "best_val_accuracy",
            "test_accuracy",
            "test_psnr",
            "test_loss",
            "gap",
            "epochs_run",
            "time_s",
        )
        if c in frame and frame[c].notna().any()
    ]
    grouped = frame.groupby(key, dropna=False)
    table = grouped[numeric].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "runs", grouped.size())
    table.insert(1, "diagnosis", grouped["diagnosis"].agg(lambda s: s.mode().iat[0]))
    return table.reset_index()


def _holds_lists(column: pd.Series) -> bool:
    """Whether a cell of `column` is a list (flags): pandas cannot hash one into a group's key."""
    return bool(column.map(lambda value: isinstance(value, list)).any())
