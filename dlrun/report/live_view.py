"""The screen of `dlrun watch`: a pure function from what a refresh saw (live.py's Watched) to
a rich renderable that fits `width` columns and, given one, `height` lines.

From the top: the folder and how far it is; trials by status; trial-epochs spent against the
most the sweep can spend, elapsed time and an estimate of the time left; the best trial so far
with its settings; the running trials with their epoch, current and best validation metric, a
sparkline of that curve and their diagnosis so far; the pruned trials with the epoch each
stopped at. A wider terminal gets more settings and longer curves.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dlrun.report.live import SETTLED, STOPPED, Watched
from dlrun.report.terminal import HEADERS, fmt_metric, run_ids, setting_texts
from dlrun.results import STATUSES
from dlrun.text import plural

SPARKS = "▁▂▃▄▅▆▇█"
# A curve shorter than this reads as noise; longer than this, a wide terminal's room goes to
# the settings instead.
MIN_CURVE, MAX_CURVE = 6, 40
# Lines the screen spends above and below the running trials' rows (title, counts, epochs,
# best, the table's header and title, pruned, the notes), so that their rows fill the rest.
OTHER_LINES = 14
PROVISIONAL = "?"  # after a label read from a trial still training
# what a column of the table takes beside its text: a space each side and the divider
COLUMN_GAP = 3


def sparkline(values: list[float], width: int) -> str:
    """The curve in `width` block characters at most (evenly sampled when longer), scaled
    from its lowest to its highest finite value; a non-finite value is a blank."""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    scale = (len(SPARKS) - 1) / (high - low) if high > low else 0.0
    return "".join(SPARKS[round((v - low) * scale)] if math.isfinite(v) else " " for v in values)


def clock(seconds: float) -> str:
    """0:01:23 (hours:minutes:seconds)."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _short(key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return HEADERS.get(last, last)


def _planned(watched: Watched) -> tuple[int, int | None, int | None]:
    """(trial-epochs spent, the most the sweep can spend, the epochs still to train at most);
    None where a trial's epochs are not known yet (no trial has started)."""
    trials = watched.trials
    known = [t.epochs for t in trials if t.epochs is not None]
    typical = max(known) if known else None
    spent = sum(t.epochs_run for t in trials)
    if typical is None:
        return spent, None, None
    to_ask = max(0, (watched.budget or len(trials)) - len(trials))
    planned = [t.epochs or typical for t in trials]
    most = sum(planned) + to_ask * typical
    left = sum(
        max(0, p - t.epochs_run) for p, t in zip(planned, trials) if t.status not in (*SETTLED, *STOPPED)
    )
    return spent, most, left + to_ask * typical


def counts_line(watched: Watched) -> Text:
    """'32 trials: 2 running, 3 completed, 1 pruned, 26 to ask'."""
    by_status: dict[str, int] = {}
    for trial in watched.trials:
        by_status[trial.status] = by_status.get(trial.status, 0) + 1
    order = [*STATUSES, "pending", *sorted(set(by_status) - {*STATUSES, "pending"})]
    parts = [f"{by_status[s]} {'not started' if s == 'pending' else s}" for s in order if by_status.get(s)]
    to_ask = (watched.budget or 0) - len(watched.trials)
    if to_ask > 0:
        parts.append(f"{to_ask} to ask")
    total = watched.budget if watched.budget is not None else len(watched.trials)
    counted = plural(total, "trial") if watched.kind == "sweep" else "the run"
    return Text(f"{counted}: " + ", ".join(parts or ["none started yet"]))


def time_line(watched: Watched) -> Text:
    """Trial-epochs spent against the most, the elapsed time and the estimate of what is left."""
    spent, most, left = _planned(watched)
    line = f"trial-epochs: {spent}" + (f" of at most {most} ({spent / most:.0%})" if most else "")
    if watched.started is None:
        return Text(line)
    until = watched.finished if watched.ended and watched.finished else watched.now
    elapsed = max(0.0, until - watched.started)
    line += f"; elapsed {clock(elapsed)}"
    if watched.ended is None and left and spent and elapsed > 0:
        line += f", about {clock(left * elapsed / spent)} left (less if trials are pruned)"
    return Text(line)


def best_line(watched: Watched) -> Text:
    """The best trial so far by the sweep's metric, with its settings."""
    scored = [(t.best(watched.metric, watched.maximise), t) for t in watched.trials]
    scored = [(value, t) for value, t in scored if not math.isnan(value)]
    if not scored:
        return Text("best so far: no validation value yet", style="dim")
    value, trial = (max if watched.maximise else min)(scored, key=lambda pair: pair[0])
    settings = ", ".join(
        f"{key}={setting_texts([trial.params[key]])[0]}" for key in watched.space if key in trial.params
    )
    label = HEADERS.get(watched.metric, watched.metric)
    line = f"best so far: {trial.name} ({trial.status}), {label} {fmt_metric(watched.metric, value)}"
    return Text(line + (f" at {settings}" if settings else ""), style="bold")


def _row_cells(watched: Watched, trial, curve: str) -> dict:
    total = trial.epochs
    label = trial.diagnosis + (PROVISIONAL if trial.diagnosis and trial.status == "running" else "")
    values = trial.curve(curve)
    last = values[-1] if values else math.nan
    finite = [(v, epoch) for epoch, v in enumerate(values, 1) if math.isfinite(v)]
    best = (max if watched.maximise else min)(finite, key=lambda pair: pair[0]) if finite else (0, math.nan)
    return {
        "ep": f"{trial.epochs_run}/{total}" if total else str(trial.epochs_run),
        "now": fmt_metric(curve, last),
        "best": fmt_metric(watched.metric, trial.best(watched.metric, watched.maximise)),
        "diagnosis": label,
        "values": values,
        "best_epoch": best[1],
    }


def _extras(trials: list, cells: list) -> dict:
    """The columns a wide terminal adds, most telling first: the epoch of the best value so far, the
    last train loss (beside the validation curve: over- or underfitting), the seconds an epoch
    takes."""
    best_epoch = [fmt_metric("best_epoch", float(c["best_epoch"])) for c in cells]
    train = [fmt_metric("train_loss", (t.curve("train_loss") or [math.nan])[-1]) for t in trials]
    seconds = [fmt_metric("epoch_time_s", (t.curve("epoch_time_s") or [math.nan])[-1]) for t in trials]
    return {"best ep": best_epoch, "train loss": train, "s/epoch": seconds}


def running_table(watched: Watched, width: int, rows: int | None = None) -> Table | None:
    """The running trials (the first `rows` of them), as many settings and as long a curve
    as `width` leaves room for; None when none is running."""
    running = [t for t in watched.trials if t.status == "running"]
    if not running:
        return None
    shown = running[:rows] if rows else running
    curve = watched.metric.removeprefix("best_")
    header, ids = run_ids([t.name for t in shown]) if len(shown) > 1 else ("trial", [shown[0].name])
    cells = [_row_cells(watched, t, curve) for t in shown]
    settings = {key: setting_texts([t.params.get(key) for t in shown]) for key in watched.space}
    columns = {header: ids, **{_short(k): v for k, v in settings.items()}}
    fixed = {
        "ep": [c["ep"] for c in cells],
        HEADERS.get(curve, curve).replace("last ", ""): [c["now"] for c in cells],
        "best": [c["best"] for c in cells],
    }
    labels = [c["diagnosis"] for c in cells]
    span = lambda name, texts: max(len(name), *(len(x) for x in texts))  # noqa: E731
    used = sum(span(n, v) + COLUMN_GAP for n, v in {**columns, **fixed, "diagnosis": labels}.items())
    while len(columns) > 1 and used + MIN_CURVE > width:  # settings give way, the last first
        name, texts = columns.popitem()
        used -= span(name, texts) + COLUMN_GAP
    longest = max(MIN_CURVE, min(MAX_CURVE, max(len(c["values"]) for c in cells)))
    for name, texts in _extras(shown, cells).items():  # a wider terminal's: while they fit
        if used + span(name, texts) + COLUMN_GAP + longest + 1 > width:
            break
        fixed[name] = texts
        used += span(name, texts) + COLUMN_GAP
    curve_width = max(MIN_CURVE, min(longest, width - used - 1))
    fixed["curve"] = [sparkline(c["values"], curve_width) for c in cells]
    fixed["diagnosis"] = labels
    groups = sorted({t.group for t in shown if t.group})
    title = f"running: {plural(len(running), 'trial')}" + (f" ({', '.join(groups)})" if groups else "")
    table = Table(
        title=escape(title),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        pad_edge=False,
        title_justify="left",
    )
    for name, texts in {**columns, **fixed}.items():
        left = name in columns or name in ("curve", "diagnosis")
        width_needed = curve_width if name == "curve" else span(name, texts)
        table.add_column(
            escape(name), justify="left" if left else "right", no_wrap=True, min_width=width_needed
        )
    for index in range(len(shown)):
        table.add_row(*(escape(texts[index]) for texts in (*columns.values(), *fixed.values())))
    if len(shown) < len(running):
        table.caption = f"and {len(running) - len(shown)} more running"
    return table


def pruned_line(watched: Watched, width: int) -> Text | None:
    """'pruned: 003@1 004@1 ...' (each with the epoch it stopped at), in two lines at most."""
    pruned = [t for t in watched.trials if t.status == "pruned"]
    if not pruned:
        return None
    names = [t.name for t in pruned]
    _, ids = run_ids(names) if len(names) > 1 else ("", names)
    marks = [f"{i}@{t.summary.get('pruned_epoch', t.epochs_run)}" for i, t in zip(ids, pruned)]
    head = f"pruned ({len(pruned)}, trial@epoch it stopped at): "
    room, kept = 2 * width - len(head) - 12, []
    for mark in reversed(marks):  # the latest pruned are the news
        if sum(len(m) + 1 for m in kept) + len(mark) > room:
            break
        kept.insert(0, mark)
    more = f"… {len(marks) - len(kept)} earlier " if len(kept) < len(marks) else ""
    return Text(head + more + " ".join(kept))


def title_line(watched: Watched) -> Text:
    what = f"{watched.search} sweep" if watched.kind == "sweep" else "run"
    state = {None: "training", "finished": "ended", "stopped": "stopped before its end"}[watched.ended]
    style = {None: "bold cyan", "finished": "bold green", "stopped": "bold yellow"}[watched.ended]
    return Text(f"{what}, {state}: {watched.folder}", style=style)  # a long path wraps last


def notes(watched: Watched) -> list[Text]:
    lines = []
    if any(t.status == "running" and t.diagnosis for t in watched.trials):
        lines.append(Text(f"label{PROVISIONAL}: provisional, read from a trial still training", style="dim"))
    problems = [t for t in watched.trials if t.problem]
    if problems:
        lines.append(Text(f"being written, read again next time: {problems[0].name} ({problems[0].problem})"))
    if watched.ended == "stopped":
        lines.append(Text("the same command continues it", style="yellow"))
    elif watched.ended is None:
        lines.append(Text("q or Ctrl-C leaves the watch; the training goes on", style="dim"))
    return lines


def watch_view(watched: Watched, width: int = 80, height: int | None = None) -> Group:
    """The whole screen for one refresh (the final one once `watched.ended`)."""
    rows = max(1, height - OTHER_LINES) if height else None
    parts = [title_line(watched), counts_line(watched), time_line(watched), best_line(watched)]
    parts += [part for part in (running_table(watched, width, rows), pruned_line(watched, width)) if part]
    return Group(*parts, *notes(watched))
