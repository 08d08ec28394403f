"""The HTML report's figures as inline SVG text (matplotlib): the metric against each swept key,
every run's curves overlaid, and a compact grid of per-run curves. Epoch axes tick whole epochs.

SVG rather than PNG: it stays sharp at any zoom, its text is text (searchable, selectable), and
a figure of a few hundred short curves is smaller than the same figure as a crisp PNG.
"""

from __future__ import annotations

import io
import itertools
import math

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless CI machine and over ssh
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator  # noqa: E402

from dlrun.report import pareto  # noqa: E402
from dlrun.report.plots import is_numeric, log_scale  # noqa: E402

# Sensitivity: one line per setting of the other swept keys up to this many; past it the lines
# would hide each other, so one line averages over them.
MAX_SENSITIVITY_LINES = 6
# A numeric key with at most this many values gets a tick at each value, written whole, so the
# reader sees the values that were swept rather than a round-number axis.
MAX_VALUE_TICKS = 8
# Up to this many values of the colour key get a legend entry each; more get a colour bar.
MAX_LEGEND_VALUES = 10
# The per-run grid: four panels a row fit a laptop screen at a readable size.
GRID_COLUMNS = 4
# Runs drawn in the per-run grid, in the table's order: past this the page grows by ~10 kB a run
# and the grid no longer helps to find anything the table and the overlay do not show.
MAX_GRID_RUNS = 200

_figure_ids = itertools.count()


def value_text(value) -> str:
    """A setting as the user wrote it: 0.001, 3e-05, 8, [64, 64]; never rounded, no trailing .0."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def to_svg(figure) -> str:
    """The figure as an <svg> element to inline in HTML. Text stays text (crisp and small), and
    each figure salts its ids differently: two SVGs on one page must not share a clip-path id."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"figure{next(_figure_ids)}"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def metrics_of(frame: pd.DataFrame) -> list[str]:
    """best_val_loss, and best_val_accuracy when the runs classify."""
    accuracy = "best_val_accuracy" in frame and frame["best_val_accuracy"].notna().any()
    return ["best_val_loss", *(["best_val_accuracy"] if accuracy else [])]


def epoch_axis(axis) -> None:
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epoch 2, never 1.25
    axis.set_xlabel("epoch")


def _positive_log(axis, values) -> None:
    """Log y when the values are positive and span decades (a diverged run beside good ones)."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if len(values) and log_scale(values[np.isfinite(values)]):
        axis.set_yscale("log")


def _positions(values: pd.Series) -> tuple[dict, list, bool]:
    """Map each value of a swept key to an x position: the number itself (log for lr-like keys)
    or, for words and lists, its place in sorted order. Returns (position of each value text,
    the values in order, log)."""
    unique = list(dict.fromkeys(values.dropna()))
    if is_numeric(pd.Series(unique)):
        unique.sort(key=float)
        return {value_text(v): float(v) for v in unique}, unique, log_scale([float(v) for v in unique])
    unique.sort(key=str)
    return {value_text(v): float(i) for i, v in enumerate(unique)}, unique, False


def _value_axis(axis, key: str, positions: dict, ordered: list, log: bool) -> None:
    if log:
        axis.set_xscale("log")
    if len(ordered) <= MAX_VALUE_TICKS or not is_numeric(pd.Series(ordered)):
        axis.xaxis.set_major_locator(FixedLocator([positions[value_text(v)] for v in ordered]))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([value_text(v) for v in ordered])
    axis.set_xlabel(key)


def _lines(runs: pd.DataFrame, key: str, varying: list) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by the other swept keys (not the seed: runs differing only in it are one
    line's spread), or all as one line when that would make too many lines."""
    others = [k for k in varying if k not in (key, "seed") and runs[k].astype(str).nunique() > 1]
    if not others:
        return [("", runs)]
    groups = list(runs.groupby(others, dropna=False, sort=False))
    if len(groups) > MAX_SENSITIVITY_LINES:
        return [(f"mean over {', '.join(others)}", runs)]
    return [
        (", ".join(f"{k}={value_text(v)}" for k, v in zip(others, values)), group) for values, group in groups
    ]


def sensitivity_svg(frame: pd.DataFrame, key: str, varying: list) -> str:
    """Each headline metric against `key`: a faint dot per run, the mean joined with a bar of
    one standard deviation over the runs that differ only in their seed."""
    runs = frame[frame[key].notna()]
    positions, ordered, log = _positions(runs[key])
    metrics = metrics_of(frame)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.3), squeeze=False)
    lines = _lines(runs, key, varying)
    for axis, metric in zip(axes[0], metrics):
        for index, (label, group) in enumerate(lines):
            colour = plt.cm.tab10(index % 10)
            x = group[key].map(value_text).map(positions)
            y = pd.to_numeric(group[metric], errors="coerce")
            axis.scatter(x, y, s=12, color=colour, alpha=0.35, linewidths=0)
            stats = y.groupby(x).agg(["mean", "std"]).sort_index()
            axis.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["std"].fillna(0),
                color=colour,
                marker="o",
                markersize=4,
                capsize=3,
                linewidth=1.3,
                label=label or None,
            )
        _value_axis(axis, key, positions, ordered, log)
        if metric.endswith("loss"):
            _positive_log(axis, runs[metric])
        axis.set_ylabel(metric.replace("_", " "))
        axis.grid(alpha=0.25)
    if len(lines) > 1 or lines[0][0]:
        axes[0][-1].legend(fontsize=7, frameon=False)
    figure.suptitle(f"against {key}", fontsize=10)
    return to_svg(figure)


def _colours(values: pd.Series, key: str, figure, axis) -> list:
    """A colour per run from its value of `key` (viridis along numbers, log for lr-like keys;
    tab10 for words), with a legend naming each value whole, or a colour bar when many."""
    positions, ordered, log = _positions(values)
    texts = values.map(value_text)
    if is_numeric(pd.Series(ordered)):
        scaled = {t: (math.log10(p) if log else p) for t, p in positions.items()}
        low, high = min(scaled.values()), max(scaled.values())
        cmap = plt.cm.viridis
        # 0.9: viridis ends in a pale yellow that vanishes on white
        colour_of = {
            t: cmap(0.5 if high == low else 0.9 * (s - low) / (high - low)) for t, s in scaled.items()
        }
        if len(ordered) > MAX_LEGEND_VALUES:
            mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, high / 0.9 if high else 1))
            figure.colorbar(mappable, ax=axis, label=f"log10 {key}" if log else key)
            return [colour_of.get(t, "grey") for t in texts]
    else:
        colour_of = {value_text(v): plt.cm.tab10(i % 10) for i, v in enumerate(ordered)}
    handles = [Line2D([], [], color=colour_of[value_text(v)], label=value_text(v)) for v in ordered]
    axis.legend(
        handles=handles,
        title=key,
        fontsize=7,
        title_fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
    )
    return [colour_of.get(t, "grey") for t in texts]


def overlay_svg(frame: pd.DataFrame, curves: dict, key: str) -> str:
    """Every run's validation loss (and accuracy when recorded), coloured by `key`; `curves`
    maps a row's run name to its metrics."""
    runs = frame[frame["run"].isin(curves) & frame[key].notna()]
    drawn = [curves[run] for run in runs["run"]]
    accuracy = any("val_accuracy" in m and m["val_accuracy"].notna().any() for m in drawn)
    quantities = ["val_loss", *(["val_accuracy"] if accuracy else [])]
    figure, axes = plt.subplots(1, len(quantities), figsize=(5 * len(quantities) + 1, 3.4), squeeze=False)
    colours = _colours(runs[key], key, figure, axes[0][-1])
    for axis, column in zip(axes[0], quantities):
        for run, colour in zip(runs["run"], colours):
            metrics = curves[run]
            if column in metrics:
                axis.plot(metrics["epoch"], metrics[column], color=colour, linewidth=1, alpha=0.8)
        epoch_axis(axis)
        axis.set_ylabel(column.replace("val_", "validation "))
        axis.grid(alpha=0.25)
    _positive_log(axes[0][0], pd.concat([m["val_loss"] for m in drawn if "val_loss" in m]))
    return to_svg(figure)


def _run_panel(axis, metrics: pd.DataFrame, row: pd.Series, varying: list) -> None:
    for column, style, colour in (("train_loss", "-", "C0"), ("val_loss", "--", "C1")):
        if column in metrics:
            axis.plot(metrics["epoch"], metrics[column], style, color=colour, linewidth=1.1)
    best = row.get("best_epoch")
    if isinstance(best, (int, float)) and not math.isnan(best):
        axis.axvline(best, color="grey", linestyle=":", linewidth=1)
    _positive_log(axis, pd.concat([metrics[c] for c in ("train_loss", "val_loss") if c in metrics]))
    epoch_axis(axis)
    axis.set_xlabel("")
    axis.tick_params(labelsize=6)
    settings = " ".join(f"{k}={value_text(row[k])}" for k in varying if pd.notna(row[k]))
    axis.set_title(f"{row['run']}  {row['diagnosis']}\n{settings}", fontsize=7, loc="left")


def grid_svg(frame: pd.DataFrame, curves: dict, varying: list) -> str:
    """Train and validation loss of each run (the first MAX_GRID_RUNS, in the frame's order)
    in a grid GRID_COLUMNS wide, the best epoch dotted; '' when no run has curves."""
    rows = frame[frame["run"].isin(curves)].head(MAX_GRID_RUNS)
    if rows.empty:
        return ""
    columns = min(GRID_COLUMNS, len(rows))
    count = math.ceil(len(rows) / columns)
    figure, axes = plt.subplots(count, columns, figsize=(2.9 * columns, 2.05 * count + 0.4), squeeze=False)
    for axis, (_, row) in zip(axes.flat, rows.iterrows()):
        _run_panel(axis, curves[row["run"]], row, varying)
    for axis in axes.flat[len(rows) :]:
        axis.set_visible(False)
    figure.legend(
        handles=[
            Line2D([], [], color="C0", label="train loss"),
            Line2D([], [], color="C1", linestyle="--", label="validation loss"),
            Line2D([], [], color="grey", linestyle=":", label="best epoch"),
        ],
        loc="upper center",
        ncol=3,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1 + 0.12 / count),
    )
    figure.subplots_adjust(hspace=0.75, wspace=0.3)
    return to_svg(figure)


def search_svg(series: pd.DataFrame, metric: str, title: str) -> str:
    """The best value so far against trials and trial-epochs (report/search.py) as SVG."""
    from dlrun.report import search

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    search.draw(axes, series, metric, title)
    return to_svg(figure)


def pareto_svg(columns: list, trials: pd.DataFrame, title: str) -> str:
    """The trials against the first two metrics, the Pareto front joined (report/pareto.py)."""
    figure, axis = plt.subplots(figsize=(5.5, 4))
    pareto.draw(axis, columns, trials)
    axis.set_title(title, fontsize=9)
    return to_svg(figure)


def population_svgs(population) -> tuple[str, str]:
    """A PBT sweep's schedules (a panel per perturbed key) and its lineage (report/lineage.py)."""
    from dlrun.report import lineage

    keys = population.keys
    tables = [population.value_table(name) for name in population.members]
    log_keys = {
        key
        for key in keys
        if all(is_numeric(t[key]) for t in tables) and log_scale(pd.concat([t[key] for t in tables]))
    }
    figure, axes = plt.subplots(len(keys), 1, figsize=(7, 1.2 + 1.8 * len(keys)), sharex=True, squeeze=False)
    lineage.draw_schedules(list(axes[:, 0]), population, log_keys)
    epoch_axis(axes[-1, 0])
    schedules = to_svg(figure)
    figure, axis = plt.subplots(figsize=(7, 0.8 + 0.28 * len(population.members)))
    lineage.draw_lineage(axis, population)
    epoch_axis(axis)
    return schedules, to_svg(figure)
