"""Comparison tables over run folders: one row per run, its varying hyperparameters, headline
numbers, and a diagnosis with evidence and advice (dlrun/diagnose.py).

Reads only the files of the run-folder contract (dlrun/results.py), never JAX, so it is quick:
a folder that is partial, corrupt or foreign becomes a row with a warning, never a crash.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dlrun import diagnose, results

try:  # libyaml's loader is ~10x faster; 2,000 config.yaml files must load in well under a second
    from yaml import CSafeLoader as YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as YamlLoader

RUN_FILES = (results.SUMMARY_FILE, results.METRICS_FILE, results.CONFIG_FILE)
# Config keys that say how a run was bookkept, not what was trained: never columns.
IGNORED_KEYS = frozenset({"name", "eval_batch_size"})
HEADLINE = ["status", "epochs_run", "best_epoch", "train_loss", "val_loss", "best_val_loss",
            "train_accuracy", "val_accuracy", "best_val_accuracy", "test_accuracy", "gap",
            "time_s", "diagnosis", "flags", "advice", "evidence"]


@dataclass
class Report:
    """The rows (a DataFrame), which hyperparameters vary, the constant ones, and warnings."""

    rows: pd.DataFrame
    varying: list
    constant: dict
    warnings: list = field(default_factory=list)


def find_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Return run folders under `paths` (a folder holding any run file) and warnings."""
    found, warnings = [], []
    for path in paths:
        path = Path(path)
        if not path.exists():
            warnings.append(f"{path}: no such folder")
            continue
        candidates = {p.parent for name in RUN_FILES for p in path.rglob(name)}
        if any((path / name).exists() for name in RUN_FILES):
            candidates.add(path)
        if not candidates:
            warnings.append(f"{path}: no run folders here (no summary.json, metrics.csv or config.yaml)")
        found.extend(sorted(candidates))
    return list(dict.fromkeys(found)), warnings


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


def _read_config(run_dir: Path, summary: dict, warnings: list) -> dict:
    """The run's config: from summary.json when it carries it (JSON is ~20x quicker), else YAML."""
    if isinstance(summary.get("config"), dict):
        return flatten(summary["config"])
    try:
        return flatten(yaml.load((run_dir / results.CONFIG_FILE).read_text(), Loader=YamlLoader) or {})
    except FileNotFoundError:
        warnings.append(f"{run_dir}: no config.yaml")
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
        warnings.append(f"{run_dir}: config.yaml is not readable YAML")
    return {}


def read_metrics(path: Path) -> pd.DataFrame:
    """Read a metrics.csv with the csv module: for these small files pandas' parser costs ~2 ms
    of setup, 2,000 runs 4 s. Cells that are not numbers become NaN. Raises ValueError if ragged."""
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream))
    if not rows:
        return pd.DataFrame()
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise ValueError(f"{path}: rows of unequal length")

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return math.nan

    columns = list(zip(*body)) if body else [()] * len(header)
    return pd.DataFrame({name: np.array([number(v) for v in values], dtype=float)
                         for name, values in zip(header, columns)})


def _read(run_dir: Path, warnings: list) -> tuple[dict, dict, pd.DataFrame]:
    """Read one folder's config, summary and metrics; anything unreadable becomes a warning."""
    summary, metrics = {}, pd.DataFrame()
    try:
        summary = json.loads((run_dir / results.SUMMARY_FILE).read_text())
        summary = summary if isinstance(summary, dict) else {}
    except FileNotFoundError:
        warnings.append(f"{run_dir}: no summary.json (partial run)")
    except (json.JSONDecodeError, UnicodeDecodeError):
        warnings.append(f"{run_dir}: summary.json is corrupt")
        summary = {"status": "corrupt"}
    config = _read_config(run_dir, summary, warnings)
    try:
        metrics = read_metrics(run_dir / results.METRICS_FILE)
    except FileNotFoundError:
        pass
    except (ValueError, csv.Error, UnicodeDecodeError):
        warnings.append(f"{run_dir}: metrics.csv is corrupt")
    return config, summary, metrics


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_row(run_dir: Path, config: dict, summary: dict, metrics: pd.DataFrame,
            thresholds: diagnose.Thresholds) -> dict:
    """One report row: headline numbers from the summary and curves, and the diagnosis."""
    last = metrics.iloc[-1] if len(metrics) else pd.Series(dtype=float)
    row = {name: _number(last.get(name)) for name in
           ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
    for name in ("epochs_run", "best_epoch", "best_val_loss", "best_val_accuracy", "test_loss",
                 "test_accuracy"):
        row[name] = _number(summary.get(name))
    if math.isnan(row["epochs_run"]):
        row["epochs_run"] = float(len(metrics))
    classification = summary.get("task", "classification") == "classification"
    row["gap"] = (row["train_accuracy"] - row["val_accuracy"] if classification
                  else row["val_loss"] - row["train_loss"])
    row["time_s"] = _number(summary.get("train_time_s"))
    row["status"] = summary.get("status", "unknown")
    diagnosis = diagnose.diagnose(metrics, summary, thresholds)
    row.update(diagnosis=diagnosis.label, flags=list(diagnosis.flags), advice=diagnosis.advice,
               evidence=diagnosis.evidence, folder=str(run_dir))
    return row


def build_report(paths: list[Path], thresholds: diagnose.Thresholds = diagnose.DEFAULT_THRESHOLDS
                 ) -> Report:
    """Collect every run under `paths` into a Report (rows in folder order)."""
    run_dirs, warnings = find_runs(paths)
    rows, configs = [], []
    for run_dir in run_dirs:
        config, summary, metrics = _read(run_dir, warnings)
        rows.append(run_row(run_dir, config, summary, metrics, thresholds))
        configs.append({k: v for k, v in config.items() if k not in IGNORED_KEYS})
    params = pd.DataFrame(configs)
    varying = [c for c in params.columns if params[c].astype(str).nunique(dropna=False) > 1]
    constant = {c: params[c].iloc[0] for c in params.columns if c not in varying} if len(params) else {}
    frame = pd.concat([params[varying].reset_index(drop=True),
                       pd.DataFrame(rows, columns=[*HEADLINE, "test_loss", "folder"])], axis=1)
    frame.insert(0, "run", _short_names(run_dirs))
    return Report(frame, varying, constant, warnings)


def _short_names(run_dirs: list[Path]) -> list[str]:
    """Folder names relative to their common parent, so rows read `trial-003`, not a long path."""
    if not run_dirs:
        return []
    parts = [p.resolve().parts for p in run_dirs]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) or p[-1] for p in parts]


def select(report: Report, *, where: str | None = None, sort: str | None = None,
           top: int | None = None) -> pd.DataFrame:
    """Filter with a pandas expression, sort (accuracies and times descending as told, losses
    ascending), keep the first `top`. Raises ValueError naming a bad column or expression."""
    frame = report.rows
    if where:
        try:
            frame = frame.query(where, engine="python")
        except Exception as error:
            raise ValueError(f"bad --filter '{where}': {error}{_filter_hint(where, frame)}") from None
    if sort:
        if sort not in frame.columns:
            raise ValueError(f"unknown --sort column '{sort}' (choose from: {', '.join(frame.columns)})")
        frame = frame.sort_values(sort, ascending="loss" in sort or sort in ("gap", "time_s"),
                                  na_position="last")
    return frame.head(top) if top else frame


def _filter_hint(where: str, frame: pd.DataFrame) -> str:
    """How to fix a filter: pandas reads `optim.lr` as attribute lr of a variable optim."""
    unquoted = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"", "", where)
    dotted = re.search(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", unquoted)
    if dotted:
        return f"; wrap dotted column names in backticks, e.g. `{dotted.group()}` > 0.1"
    return f" (columns: {', '.join(frame.columns)})"


def group_by(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean and std of the numeric columns over the runs sharing `key` (e.g. seeds per lr)."""
    if key not in frame.columns:
        raise ValueError(f"unknown --group-by column '{key}' (choose from: {', '.join(frame.columns)})")
    numeric = [c for c in ("best_val_loss", "best_val_accuracy", "test_accuracy", "test_loss", "gap",
                           "epochs_run", "time_s") if c in frame and frame[c].notna().any()]
    grouped = frame.groupby(key, dropna=False)
    table = grouped[numeric].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "runs", grouped.size())
    table.insert(1, "diagnosis", grouped["diagnosis"].agg(lambda s: s.mode().iat[0]))
    return table.reset_index()
