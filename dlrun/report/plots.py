"""Learning curves and sensitivity plots as PNG files, with matplotlib (no display needed)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless CI machine and over ssh
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlrun import results  # noqa: E402

# A numeric hyperparameter spanning more than this ratio is shown on a log axis (lr, L2, eps).
LOG_AXIS_SPAN = 50.0


def _save(figure, path: Path) -> Path:
    """Write the figure as a PNG atomically, so an interrupted report leaves no half image."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    results.atomic_write_bytes(path, buffer.getvalue())
    return path


def run_curves(metrics: pd.DataFrame, best_epoch, title: str, path: Path) -> Path:
    """Train vs validation loss (and accuracy when recorded) over epochs, best epoch marked."""
    has_accuracy = "val_accuracy" in metrics and metrics["val_accuracy"].notna().any()
    figure, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5.5, 3.6))
    axes = np.atleast_1d(axes)
    pairs = [("loss", axes[0])] + ([("accuracy", axes[1])] if has_accuracy else [])
    for quantity, axis in pairs:
        for split, style in (("train", "-"), ("val", "--")):
            column = f"{split}_{quantity}"
            if column in metrics:
                axis.plot(metrics["epoch"], metrics[column], style, label=split)
        if best_epoch and not (isinstance(best_epoch, float) and math.isnan(best_epoch)):
            axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {int(best_epoch)}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(quantity)
        axis.legend()
    axes[0].set_title(title, fontsize=9)
    return _save(figure, path)


def is_numeric(values: pd.Series) -> bool:
    return pd.to_numeric(values, errors="coerce").notna().all()


def log_scale(values) -> bool:
    values = np.asarray(values, dtype=float)
    return bool((values > 0).all() and values.max() / values.min() > LOG_AXIS_SPAN)


def sweep_curves(curves: dict, hue: pd.Series, key: str, path: Path) -> Path:
    """Validation loss of every run overlaid, coloured by hyperparameter `key`."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    if is_numeric(hue):
        values = pd.to_numeric(hue).to_numpy(dtype=float)
        log = log_scale(values)
        scaled = np.log10(values) if log else values
        low, high = scaled.min(), scaled.max()
        colour = lambda v: plt.cm.viridis(0.5 if high == low else (v - low) / (high - low))
        colours = [colour(v) for v in scaled]
        mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(low, high))
        figure.colorbar(mappable, ax=axis, label=f"log10 {key}" if log else key)
    else:
        names = sorted(set(hue.astype(str)))
        palette = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
        colours = [palette[str(v)] for v in hue]
        for name, c in palette.items():
            axis.plot([], [], color=c, label=name)
        axis.legend(title=key, fontsize=8)
    for (run, metrics), c in zip(curves.items(), colours):
        if "val_loss" in metrics:
            axis.plot(metrics["epoch"], metrics["val_loss"], color=c, alpha=0.8, linewidth=1)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation loss")
    axis.set_yscale("log")
    axis.set_title(f"validation loss by {key}")
    return _save(figure, path)


def sensitivity(frame: pd.DataFrame, key: str, metric: str, path: Path) -> Path:
    """A final metric against a numeric hyperparameter, one dot per run, means joined."""
    x = pd.to_numeric(frame[key], errors="coerce")
    y = pd.to_numeric(frame[metric], errors="coerce")
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.scatter(x, y, alpha=0.7)
    means = pd.DataFrame({"x": x, "y": y}).groupby("x")["y"].mean()
    axis.plot(means.index, means.values, color="black", linewidth=1)
    if log_scale(x.dropna()):
        axis.set_xscale("log")
    axis.set_xlabel(key)
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} against {key}")
    return _save(figure, path)


# Per-run figures are drawn for at most this many rows: a 2,000-run report stays quick.
MAX_RUN_PLOTS = 12


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def curves_note(frame: pd.DataFrame) -> str | None:
    """The line that says write_plots drew the per-run curves of only some of `frame`'s runs."""
    if len(frame) <= MAX_RUN_PLOTS:
        return None
    return f"curves of the first {MAX_RUN_PLOTS} of {len(frame)} runs; use --filter/--top to choose"


def write_plots(frame: pd.DataFrame, varying: list, folder: Path, curves: dict) -> list[Path]:
    """Draw the report's figures into `folder`; return their paths.

    `curves` maps a row's `folder` to its metrics (Report.curves: only what the report could
    read, so a damaged run is left out rather than read again). Per run (the first
    MAX_RUN_PLOTS rows): train vs validation curves. Over the runs: curves coloured by the first
    varying hyperparameter, and each numeric varying hyperparameter against the best
    validation metric.
    """
    by_run = {row["run"]: curves[row["folder"]] for _, row in frame.iterrows() if row["folder"] in curves}
    written = []
    for _, row in frame.head(MAX_RUN_PLOTS).iterrows():
        if row["run"] in by_run and "epoch" in by_run[row["run"]]:
            title = f"{row['run']}: {row['diagnosis']}"
            written.append(
                run_curves(
                    by_run[row["run"]],
                    row["best_epoch"],
                    title,
                    folder / f"curves_{_safe_name(row['run'])}.png",
                )
            )
    usable = [key for key in varying if frame[key].nunique() > 1]
    # runs whose setting is unknown (an unreadable config) have no colour to be drawn in
    shown = frame[frame["run"].isin(by_run) & frame[usable[0]].notna()] if usable else frame.head(0)
    if len(shown) > 1:
        written.append(
            sweep_curves(
                {r: by_run[r] for r in shown["run"]}, shown[usable[0]], usable[0], folder / "sweep_curves.png"
            )
        )
    metric = "best_val_accuracy" if frame["best_val_accuracy"].notna().any() else "best_val_loss"
    for key in usable:
        known = frame[frame[key].notna()]
        if key != "seed" and is_numeric(known[key]):  # a seed is not a knob to tune
            written.append(sensitivity(known, key, metric, folder / f"sensitivity_{_safe_name(key)}.png"))
    return written


def search_plot(frame: pd.DataFrame, records: list[dict], folder: Path) -> list[Path]:
    """Draw `search_progress.png` (report/search.py) into `folder` for a random or adaptive
    search over the runs of `frame`; [] for a grid or plain runs."""
    from dlrun.report import search

    found = search.progress(frame, records)
    if found is None:
        return []
    kind, metric, series = found
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    search.draw(axes, series, metric, f"{kind} search: the best so far")
    return [_save(figure, folder / "search_progress.png")]
