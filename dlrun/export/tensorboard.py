"""Run folders as TensorBoard event files, with the HParams plugin's data.

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
    _replace_events(logdir, [_event(_experiment(values, metrics), 0, time.time())], EXPERIMENT_SUFFIX)
    return str(logdir)


def _run_events(name, run_dir, row, curves, run_hparams) -> list:
    """A run's events: session start (its hparams), the per-epoch scalars, the headline
    numbers at the last epoch, the session end (its status)."""
    epochs = list(curves["epoch"]) if curves is not None and "epoch" in curves else []
    start, times = exported.epoch_times(run_dir, curves)
    times = times if epochs else [start]
    events = [_event(summary_v2.hparams_pb(run_hparams, trial_id=name, start_time_secs=start), 0, start)]
    for index, epoch in enumerate(epochs):
        for column in curves.columns.drop("epoch"):
            value = float(curves[column].iloc[index])
            if not math.isnan(value):  # an empty cell: this statistic is not kept for the run
                events.append(_event(scalar_pb(scalar_tag(column), value), int(epoch), times[index]))
    last = int(epochs[-1]) if epochs else 0
    for metric, value in exported.headline(row).items():
        events.append(_event(scalar_pb(f"{SUMMARY_SECTION}/{metric}", value), last, times[-1]))
    end = plugin_data_pb2.SessionEndInfo(
        status=SESSION_STATUS.get(row["status"], api_pb2.STATUS_UNKNOWN), end_time_secs=times[-1]
    )
    events.append(
        _event(
            _plugin_summary(
                metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
            ),
            last,
            times[-1],
        )
    )
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


def _replace_events(folder: Path, events: list, suffix: str = "") -> None:
    """Write `events` as the one dlrun event file in `folder`, removing the file an earlier
    export wrote there (TensorBoard reads every event file in a folder, so a second file
    would double each point). Written in a temporary folder first: an export that fails midway
    leaves the earlier file whole. Only files directly in `folder` with this suffix go, so the
    experiment's file and the runs' folders below do not replace each other."""
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
