"""Run folders as TensorBoard event files, with the HParams plugin's data: after the fact
(`dlrun export`) or while the runs train (`logger=tensorboard`, LiveTensorBoard), built by
the same functions, so both write the same events.

    DIR/events.out.tfevents.*.dlrun-experiment   the experiment: hparams and metrics to tabulate
    DIR/<sweep>/<trial>/events.out.tfevents.*    one run: per-epoch scalars, its hparams, status

Written with TensorBoard's own TF-free pieces (its event-file writer and the protobuf builders of
the scalar and hparams plugins), so the extra is `tensorboard` alone: no TensorFlow, no PyTorch
and no second writer (tensorboardX) whose `add_hparams` would put each run's hparams into a
new timestamped subfolder, so a second export would add runs instead of replacing them.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter

from dlrun.export import runs as exported

EVENTS_PREFIX = "events.out.tfevents."
# The suffix of the experiment's event file in DIR, so that an export replaces that file only.
EXPERIMENT_SUFFIX = ".dlrun-experiment"
# TensorBoard groups charts by the tag's first path component: gradient norms and unit
# statistics under their own headings, the curves under `epoch/`.
GRADIENT_SECTION, UNITS_SECTION, EPOCH_SECTION = "gradients", "units", "epoch"
UNIT_COLUMNS = ("dead_fraction", "saturated_fraction")
# The headline numbers are scalars under this section, logged once at the last epoch: the
# hparams plugin shows a metric as the last value of its scalar tag in the session's folder.
SUMMARY_SECTION = "summary"
# HParams has no `interrupted`: a run stopped by the user is neither a success nor a failure.
SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "diverged": api_pb2.STATUS_FAILURE,
    "failed": api_pb2.STATUS_FAILURE,
    "running": api_pb2.STATUS_RUNNING,
}


def scalar_tag(column: str) -> str:
    """The TensorBoard tag of a metrics.csv column, e.g. `gradients/grad_norm_output`."""
    if column.startswith("grad_"):
        return f"{GRADIENT_SECTION}/{column}"
    return f"{UNITS_SECTION if column in UNIT_COLUMNS else EPOCH_SECTION}/{column}"


def export_tensorboard(collected: exported.Collected, logdir: Path) -> str:
    """Write one event file per run under `logdir` and the experiment's at its top, each
    replacing the one an earlier export wrote. Returns the log folder."""
    logdir = Path(logdir).resolve()
    report = collected.report
    values = exported.hparams(collected)
    metrics = [name for name in exported.HEADLINE_METRICS if report.rows[name].notna().any()]
    for (_, row), run_hparams in zip(report.rows.iterrows(), values):
        run_dir = Path(row["folder"])
        name = exported.run_name(collected.root, run_dir)
        curves = report.curves.get(str(run_dir))
        events = _run_events(name, run_dir, row, curves, run_hparams)
        _replace_events(logdir / name, events)
    _write_experiment(logdir, values, metrics)
    return str(logdir)


def _write_experiment(folder: Path, values: list[dict], metrics: list[str]) -> None:
    _replace_events(folder, [_event(_experiment(values, metrics), 0, time.time())], EXPERIMENT_SUFFIX)


class LiveTensorBoard:
    """`logger=tensorboard`: each run's event file in its own folder, appended to as epochs
    arrive, and the experiment's in the root, so `tensorboard --logdir runs/` shows them live.

    The first time this process sees a run it writes the run's file afresh from its folder
    (what `dlrun export` writes for it so far): after a kill -9 the file may hold a torn last
    record, or epochs the folder does not, and a second copy of a point must never appear."""

    name = "tensorboard"

    def __init__(self):
        self.runs: dict[Path, tuple[Path, int, bool]] = {}  # run -> (file, rows written, ended)

    def begin(self, root: Path, hparams: list[dict]) -> None:
        """The experiment at the start, so the hparams view fills in as the runs end."""
        self.root = root
        _write_experiment(root, hparams, list(exported.HEADLINE_METRICS))

    def update(self, run: exported.RunState) -> None:
        start, times = exported.epoch_times(run.run_dir, run.curves)
        known = self.runs.get(run.run_dir)
        ended = run.row is not None
        if known is None or (known[2] and not ended) or run.epochs < known[1]:
            # new to this process, or continued after its end, or its curves rewritten
            events = [_start_event(run.name, run.hparams, start), *_epoch_events(run.curves, times, 0)]
            events += self._ends(run, times, start) if ended else []
            self.runs[run.run_dir] = (_replace_events(run.run_dir, events), run.epochs, ended)
            return
        path, written, was_ended = known
        events = _epoch_events(run.curves, times, written)
        events += self._ends(run, times, start) if ended and not was_ended else []
        if events:
            _append_events(path, events)
        self.runs[run.run_dir] = (path, run.epochs, ended)

    @staticmethod
    def _ends(run: exported.RunState, times: list, start: float) -> list:
        last = int(run.curves["epoch"].iloc[-1]) if run.epochs else 0
        return _end_events(run.row, last, times[-1] if run.epochs else start)

    def end(self, collected: exported.Collected | None) -> None:
        """The experiment again, as `dlrun export` writes it from the runs' report."""
        if collected is not None:
            rows = collected.report.rows
            metrics = [name for name in exported.HEADLINE_METRICS if rows[name].notna().any()]
            _write_experiment(self.root, exported.hparams(collected), metrics)


def _append_events(path: Path, events: list) -> None:
    """Append whole records to an event file; TensorBoard's reader follows a growing file."""
    with open(path, "ab") as stream:
        writer = RecordWriter(stream)
        for event in events:
            writer.write(event.SerializeToString())
        stream.flush()


def _run_events(name, run_dir, row, curves, run_hparams) -> list:
    """A run's events: session start (its hparams), the per-epoch scalars, the headline
    numbers at the last epoch, the session end (its status)."""
    epochs = list(curves["epoch"]) if curves is not None and "epoch" in curves else []
    start, times = exported.epoch_times(run_dir, curves)
    return [
        _start_event(name, run_hparams, start),
        *_epoch_events(curves, times, 0),
        *_end_events(row, int(epochs[-1]) if epochs else 0, times[-1] if epochs else start),
    ]


def _start_event(name: str, run_hparams: dict, start: float) -> event_pb2.Event:
    return _event(summary_v2.hparams_pb(run_hparams, trial_id=name, start_time_secs=start), 0, start)


def _epoch_events(curves, times: list, first: int) -> list:
    """The scalars of rows `first`.. of metrics.csv (step = epoch, at the time it ended)."""
    events = []
    if curves is None or "epoch" not in curves:
        return events
    for index in range(first, len(curves)):
        epoch = int(curves["epoch"].iloc[index])
        for column in curves.columns.drop("epoch"):
            value = float(curves[column].iloc[index])
            if not math.isnan(value):  # an empty cell: this statistic is not kept for the run
                events.append(_event(scalar_pb(scalar_tag(column), value), epoch, times[index]))
    return events


def _end_events(row, last: int, end_time: float) -> list:
    """The headline numbers at the last epoch and the session end (the run's status)."""
    events = [
        _event(scalar_pb(f"{SUMMARY_SECTION}/{metric}", value), last, end_time)
        for metric, value in exported.headline(row).items()
    ]
    end = plugin_data_pb2.SessionEndInfo(
        status=SESSION_STATUS.get(row["status"], api_pb2.STATUS_UNKNOWN), end_time_secs=end_time
    )
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
    events.append(_event(_plugin_summary(metadata.SESSION_END_INFO_TAG, data), last, end_time))
    return events


def _experiment(values: list[dict], metrics: list[str]) -> summary_pb2.Summary:
    """The experiment: each varying setting with the values it took (so the parallel
    coordinates view has its axes), and the headline numbers as metrics."""
    keys = sorted({key for run in values for key in run})
    hparams = [
        summary_v2.HParam(key, summary_v2.Discrete(sorted({run[key] for run in values if key in run})))
        for key in keys
    ]
    return summary_v2.hparams_config_pb(
        hparams,
        [summary_v2.Metric(f"{SUMMARY_SECTION}/{name}", display_name=name) for name in metrics],
        time_created_secs=time.time(),
    )


def _plugin_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    """An hparams plugin summary, as `summary_v2` builds its own (it has no public builder for
    the session end)."""
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


def _event(summary: summary_pb2.Summary, step: int, wall_time: float) -> event_pb2.Event:
    return event_pb2.Event(summary=summary, step=step, wall_time=wall_time)


def _replace_events(folder: Path, events: list, suffix: str = "") -> Path:
    """Write `events` as the one dlrun event file in `folder`, removing the file an earlier
    export wrote there (TensorBoard reads every event file in a folder, so a second file
    would double each point). Written in a temporary folder first: an export that fails midway
    leaves the earlier file whole. Only files directly in `folder` with this suffix go, so the
    experiment's file and the runs' folders below do not replace each other. Returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".dlrun-export-") as scratch:
        writer = EventFileWriter(scratch, filename_suffix=suffix)
        for event in events:
            writer.add_event(event)
        writer.close()
        (written,) = Path(scratch).iterdir()
        for old in folder.glob(f"{EVENTS_PREFIX}*"):
            if (
                old.is_file()
                and old.name.endswith(suffix)
                and (suffix or not old.name.endswith(EXPERIMENT_SUFFIX))
            ):
                old.unlink()
        os.replace(written, folder / written.name)
    return folder / written.name
