"""A run or sweep folder followed while another process writes it: what `dlrun watch` reads.

Each refresh stats the files it follows and reads only those whose (inode, mtime, size)
changed, and of a metrics.csv only the rows added since (results.read_metrics_tail). A trial
that settled (completed, diverged, pruned: never trained again) is not looked at again, so a
1,000-trial sweep costs a stat or two per unfinished trial a refresh. A file caught unreadable
(half written by a writer that does not rename, or foreign) keeps what was read of it before
and is read again on the next refresh.

Nothing is written to tell a sweep's end, so it is read from what the sweep leaves (`ended`):
no trial is running and no process holds a claim there (no `.dlrun.lock` note in the folder or
an unsettled trial's), its trials.csv, which a sweep rewrites as its last act, is newer than
every trial's summary.json, and every trial the sweep will run has settled: the plan's, or the
`budget` an adaptive search records in sweep.yaml. Interrupted trials end it too: the sweep was
stopped, and the same command continues it. A run folder has ended once its status is not
`running` and nobody holds it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from dlrun import results
from dlrun.claims import noted_as_held
from dlrun.config.schema import own_fields
from dlrun.objectives import direction, metric_names
from dlrun.report import diagnose
from dlrun.report.build import RUN_FILES, flatten
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

# Never trained again once reached (dlrun/sweep/folder.py's FINAL_STATUSES; the sweep floor is
# above this one): such a trial's files are read one last time, then left alone.
SETTLED = ("completed", "diverged", "pruned")
# Ended for the process that trained it; `dlrun sweep` run again would train these once more.
STOPPED = ("failed", "interrupted")


def _stat_key(path: Path) -> tuple | None:
    """What tells a file changed without reading it; None when it is absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


@dataclass
class LiveTrial:
    """One trial (or the run) as read so far: its summary, its curves, its provisional label."""

    name: str
    group: str = ""
    params: dict = field(default_factory=dict)  # the swept settings, as the plan names them
    summary: dict = field(default_factory=dict)
    tail: results.MetricsTail = field(default_factory=results.MetricsTail)
    problem: str = ""  # what could not be read at the last refresh
    diagnosis: str = ""  # blank until the curves are long enough for a label
    seen: dict = field(default_factory=dict)  # file name -> its stat key when last read

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "pending"))

    @property
    def epochs_run(self) -> int:
        return len(self.tail.rows)

    @property
    def epochs(self) -> int | None:
        """The epochs it is set to train (its config's), None before its config is known."""
        planned = (self.summary.get("config") or {}).get("epochs")
        return planned if isinstance(planned, int) and not isinstance(planned, bool) else None

    def curve(self, column: str) -> list[float]:
        if column not in self.tail.header:
            return []
        at = self.tail.header.index(column)
        return [row[at] for row in self.tail.rows]

    def best(self, metric: str, maximise: bool) -> float:
        """The trial's `metric` (best_val_accuracy...): its summary's once it ended, else the
        best of its curve so far; NaN when it has none."""
        value = self.summary.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        finite = [v for v in self.curve(metric.removeprefix("best_")) if math.isfinite(v)]
        return (max(finite) if maximise else min(finite)) if finite else math.nan


@dataclass
class Watched:
    """What a refresh saw: the folder, the sweep's record, its trials in order, and whether
    (and how) it has ended: None, `finished` or `stopped` (trials interrupted)."""

    folder: Path
    kind: str  # sweep or run
    trials: list
    search: str = ""  # grid, random, tpe... (blank for a run)
    metric: str = "best_val_accuracy"
    budget: int | None = None  # trials the sweep will run, when it says
    space: list = field(default_factory=list)  # the swept keys
    started: float | None = None  # epoch seconds
    finished: float | None = None  # when the last trial ended (epoch seconds)
    now: float = 0.0
    ended: str | None = None

    @property
    def maximise(self) -> bool:
        return direction(self.metric) == "maximize"


class LiveFolder:
    """A run or sweep folder, read again by each `refresh()` only where its files changed."""

    def __init__(self, folder: Path, thresholds: Thresholds = DEFAULT_THRESHOLDS):
        self.folder, self.thresholds = Path(folder), thresholds
        self.kind = "sweep" if (self.folder / results.SWEEP_FILE).exists() else "run"
        self.record: dict = {}
        self.trials: dict[str, LiveTrial] = {}
        self.seen: dict = {}  # the sweep folder's own files (and itself) -> stat key

    def refresh(self, now: float | None = None) -> Watched:
        """Read what changed since the last refresh and return what the folder shows now."""
        if self.kind == "run":
            trial = self.trials.setdefault(self.folder.name, LiveTrial(self.folder.name))
            self._update(trial, self.folder)
        else:
            self._read_record()
            self._find_trials()
            for trial in self.trials.values():
                if trial.status not in SETTLED or not trial.seen:
                    self._update(trial, self.folder / trial.name)
        trials = sorted(self.trials.values(), key=lambda trial: trial.name)
        plan = self.record.get("plan") if isinstance(self.record.get("plan"), dict) else {}
        metric = self.record.get("metric") or plan.get("metric") or _default_metric(trials)
        metric = metric_names(metric)[0]  # a Pareto search's bests are shown by its first metric
        watched = Watched(
            self.folder,
            self.kind,
            trials,
            search=str(self.record.get("search") or plan.get("mode") or ""),
            metric=str(metric),
            budget=self._budget(plan),
            space=list(plan.get("space") or {}),
            started=self._started(trials),
            finished=max(
                filter(None, (_seconds(t.summary.get("finished_at")) for t in trials)), default=None
            ),
            now=time.time() if now is None else now,
        )
        watched.ended = self._end(watched)
        return watched

    def _read_record(self) -> None:
        """sweep.yaml, again when it changed (an adaptive search adds its id and study)."""
        path = self.folder / results.SWEEP_FILE
        key = _stat_key(path)
        if key == self.seen.get(path):
            return
        try:
            record = yaml.load(path.read_text(encoding="utf-8"), Loader=results._YamlLoader)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return  # caught half written: read again next time
        if isinstance(record, dict):
            self.record, self.seen[path] = record, key

    def _find_trials(self) -> None:
        """The plan's trials (a grid's are known before they start) and the trial folders the
        sweep made, listed again only when the folder's entries changed."""
        plan = self.record.get("plan") if isinstance(self.record.get("plan"), dict) else {}
        groups = {
            trial: str(group.get("id", ""))
            for group in plan.get("groups") or []
            if isinstance(group, dict)
            for trial in group.get("trials") or []
        }
        for planned in plan.get("trials") or []:
            if isinstance(planned, dict) and "id" in planned and planned["id"] not in self.trials:
                params = planned.get("params") or {}
                self.trials[planned["id"]] = LiveTrial(
                    str(planned["id"]), groups.get(planned["id"], ""), params
                )
        key = _stat_key(self.folder)
        if key == self.seen.get(self.folder):
            return
        self.seen[self.folder] = key
        for entry in os.scandir(self.folder):
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in self.trials:
                if any(os.path.exists(os.path.join(entry.path, name)) for name in RUN_FILES):
                    self.trials[entry.name] = LiveTrial(entry.name)
                else:
                    self.seen.pop(self.folder, None)  # a trial folder about to get its files: look again

    def _update(self, trial: LiveTrial, run_dir: Path) -> None:
        """Read the trial's summary and the new rows of its curves where they changed."""
        changed = False
        for name, read in (
            (results.SUMMARY_FILE, self._read_summary),
            (results.METRICS_FILE, self._read_tail),
        ):
            key = _stat_key(run_dir / name)
            if key is None or key == trial.seen.get(name):
                continue
            changed = True
            trial.problem = read(trial, run_dir)
            if trial.problem:
                trial.seen.pop(name, None)  # read again next time
            else:
                trial.seen[name] = key
        if changed:
            self._diagnose(trial)

    def _read_summary(self, trial: LiveTrial, run_dir: Path) -> str:
        try:
            trial.summary = results.read_summary(run_dir)
        except (ValueError, OSError) as error:
            return f"{results.SUMMARY_FILE}: {error}"
        config = trial.summary.get("config")
        if isinstance(config, dict):
            trial.params = {**trial.params, **_swept(flatten(own_fields(config)), self._space())}
        return ""

    def _read_tail(self, trial: LiveTrial, run_dir: Path) -> str:
        try:
            trial.tail = results.read_metrics_tail(run_dir, trial.tail)
        except (ValueError, OSError) as error:
            return f"{results.METRICS_FILE}: {error}"
        return ""

    def _diagnose(self, trial: LiveTrial) -> None:
        """The label as soon as the curves allow one (provisional while the trial trains)."""
        if trial.epochs_run < 2:
            trial.diagnosis = ""
            return
        label = diagnose.diagnose(trial.tail.columns(), trial.summary, self.thresholds).label
        trial.diagnosis = "" if label == "insufficient_data" else label

    def _space(self) -> list:
        plan = self.record.get("plan") if isinstance(self.record.get("plan"), dict) else {}
        return list(plan.get("space") or {})

    def _budget(self, plan: dict) -> int | None:
        if self.kind == "run":
            return 1
        budget = self.record.get("budget")
        if isinstance(budget, int) and not isinstance(budget, bool):
            return budget
        mode = plan.get("mode")
        return len(plan.get("trials") or []) if mode in ("grid", "random") else None

    def _started(self, trials: list) -> float | None:
        stamps = [self.record.get("created_at")] + [t.summary.get("started_at") for t in trials]
        seconds = [_seconds(stamp) for stamp in stamps if stamp]
        seconds = [s for s in seconds if s is not None]
        return min(seconds) if seconds else None

    def _end(self, watched: Watched) -> str | None:
        """None while the folder may still change; else `finished` or `stopped` (see above)."""
        trials = watched.trials
        if not trials or any(t.status == "running" for t in trials):
            return None
        unsettled = [t for t in trials if t.status not in SETTLED]
        held = [self.folder] + ([self.folder / t.name for t in unsettled] if self.kind == "sweep" else [])
        if any(noted_as_held(folder) for folder in held):  # a kill -9's stale note does not count
            return None
        if self.kind == "run":
            return "finished" if trials[0].status in SETTLED else "stopped"
        index = _stat_key(self.folder / results.INDEX_FILE)
        if index is None or any(t.seen.get(results.SUMMARY_FILE, (0, 0))[1] > index[1] for t in trials):
            return None
        if any(t.status == "interrupted" for t in trials):
            return "stopped"
        settled = sum(t.status in (*SETTLED, "failed") for t in trials)
        if watched.budget is None or settled >= watched.budget:
            return "finished"
        return None


def _swept(flat: dict, space: list) -> dict:
    """The swept keys' values in a flattened config; a config group's choice is its `name`."""
    values = {}
    for key in space:
        if key in flat:
            values[key] = flat[key]
        elif f"{key}.name" in flat:
            values[key] = flat[f"{key}.name"]
    return values


def _default_metric(trials: list) -> str:
    """Without a recorded metric: the validation accuracy where the curves have one."""
    return "best_val_accuracy" if any("val_accuracy" in t.tail.header for t in trials) else "best_val_loss"


def _seconds(stamp) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None
