"""Run folders as MLflow runs: params (the config, flattened), per-epoch metrics (step = epoch),
tags for the status and the diagnosis, summary.json as an artifact. A sweep folder (one holding
sweep.yaml) becomes a parent run with its trials as children. Written after the fact
(`dlrun export`) or while the runs train (`logger=mlflow`, LiveMlflow), by the same functions.

Each MLflow run carries the tag RUN_DIR_TAG (the absolute run folder): an export finds the run
it wrote before by that tag and updates it, so exporting again never adds a copy.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.export import runs as exported
from dlrun.report.build import flatten, own_fields

RUN_DIR_TAG, STATUS_TAG, DIAGNOSIS_TAG = "dlrun.run_dir", "dlrun.status", "dlrun.diagnosis"
FLAGS_TAG, COMMAND_TAG = "dlrun.flags", "dlrun.command"
DEFAULT_STORE = "mlruns"  # a file store beside the command, as MLflow 2 made by default
# MLflow closes a run as one of these; a diverged run trained to the end but gave no model.
RUN_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
BATCH = 1000  # MLflow's limit on metrics per log_batch call (params and tags: 100)


def export_mlflow(collected: exported.Collected, uri: str | None, experiment: str) -> str:
    """Create or update one MLflow run per run folder (and one per sweep folder, their
    parent) in `experiment` at `uri`. Returns the tracking URI."""
    uri = uri or Path(DEFAULT_STORE).resolve().as_uri()
    with _file_store_allowed():
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, experiment)
        existing = _existing_runs(client, experiment_id)
        report = collected.report
        parents = {}
        for (_, row), run_hparams in zip(report.rows.iterrows(), exported.hparams(collected)):
            run_dir = Path(row["folder"]).resolve()
            sweep = _sweep_folder(run_dir, collected.root)
            if sweep is not None and sweep not in parents:
                parents[sweep] = _export_sweep(client, experiment_id, existing, sweep)
            tags = {
                DIAGNOSIS_TAG: row["diagnosis"],
                FLAGS_TAG: ",".join(row["flags"]),
                STATUS_TAG: row["status"],
                **({MLFLOW_PARENT_RUN_ID: parents[sweep]} if sweep else {}),
            }
            run_id = _find_or_create(
                client, experiment_id, existing, run_dir, exported.run_name(collected.root, run_dir), tags
            )
            _log_run(client, run_id, run_dir, report.curves.get(row["folder"]), row)
    return uri


@contextmanager
def _file_store_allowed():
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is set (it recommends
    SQLite, which needs the full `mlflow` package); dlrun's default is a file store so that
    `mlflow-skinny` is enough. Any other URI is MLflow's to judge."""
    saved = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def _experiment_id(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name)
    if found.lifecycle_stage != "active":
        raise ConfigError(
            f"MLflow experiment '{name}' is deleted; restore it or give --experiment another name"
        )
    return found.experiment_id


def _existing_runs(client: MlflowClient, experiment_id: str) -> dict:
    """{run folder: MLflow run} for the runs an earlier export wrote to this experiment."""
    found, token = {}, None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        found.update({run.data.tags[RUN_DIR_TAG]: run for run in page if RUN_DIR_TAG in run.data.tags})
        token = page.token
        if not token:
            return found


def _sweep_folder(run_dir: Path, root: Path) -> Path | None:
    """The nearest folder above `run_dir`, up to `root`, holding a sweep.yaml."""
    for folder in run_dir.parents:
        if (folder / results.SWEEP_FILE).is_file():
            return folder
        if folder == root or root not in folder.parents:
            return None
    return None


def _export_sweep(client: MlflowClient, experiment_id: str, existing: dict, sweep: Path) -> str:
    """The sweep's parent run: its space as params, its command as a tag. Returns its id."""
    try:
        record = results.read_sweep_record(sweep) or {}
    except ConfigError:  # an unreadable record: the trials are still worth exporting
        record = {}
    plan = record.get("plan", {})
    tags = {COMMAND_TAG: str(record.get("command", "")), STATUS_TAG: "sweep"}
    run_id = _find_or_create(client, experiment_id, existing, sweep, sweep.name, tags)
    space = {f"sweep.{key}": value for key, value in (plan.get("space") or {}).items()}
    _log_params(client, run_id, space)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _find_or_create(client, experiment_id, existing, folder: Path, name: str, tags: dict) -> str:
    """The id of the run for `folder`: the one an earlier export made (its tags updated), or
    a new one."""
    tags = {RUN_DIR_TAG: str(folder), MLFLOW_RUN_NAME: name, **tags}
    if str(folder) in existing:
        run_id = existing[str(folder)].info.run_id
        client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
        return run_id
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


def _log_run(client: MlflowClient, run_id: str, run_dir: Path, curves, row) -> None:
    """The run's config as params, its curves and headline numbers as metrics, summary.json as
    an artifact, and its status."""
    _log_params(client, run_id, _config(run_dir))
    points = _points(run_dir, curves, exported.headline(row))
    _log_points(client, run_id, points, _logged_steps(client, run_id, {point[0] for point in points}))
    _finish(client, run_id, run_dir, row["status"])


def _finish(client: MlflowClient, run_id: str, run_dir: Path, status: str) -> None:
    """summary.json as an artifact, and the run's status."""
    if (run_dir / results.SUMMARY_FILE).is_file():
        client.log_artifact(run_id, str(run_dir / results.SUMMARY_FILE))
    if status in RUN_STATUS:
        client.set_terminated(run_id, RUN_STATUS[status])
    else:  # running, or a summary that is missing or corrupt: not known to have ended
        client.update_run(run_id, RunStatus.to_string(RunStatus.RUNNING))


def _config(run_dir: Path) -> dict:
    """The run's settings, flattened (`optim.lr`), as the report reads them; {} when unknown."""
    try:
        return flatten(own_fields(results.read_config(run_dir)))
    except (OSError, ValueError):
        pass
    try:
        config = results.read_summary(run_dir).get("config")
    except (OSError, ValueError):
        return {}
    return flatten(own_fields(config)) if isinstance(config, dict) else {}


def _log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Log the params the run does not have yet. MLflow params cannot change: one that did
    (e.g. `epochs` after `dlrun train --resume`) keeps its first value; summary.json, the
    artifact, holds the current one."""
    have = client.get_run(run_id).data.params
    new = [Param(key, str(value)) for key, value in params.items() if key not in have]
    for start in range(0, len(new), 100):
        client.log_batch(run_id, params=new[start : start + 100])


def _points(run_dir: Path, curves, headline: dict, first: int = 0) -> list[tuple]:
    """(key, step, value, seconds) of every metrics.csv column per epoch from row `first` on
    (step = epoch), and the headline numbers (best_val_loss, test_accuracy...) at the last epoch,
    where MLflow's run table shows them. An empty cell (a statistic this run does not keep) is
    no point."""
    has_epochs = curves is not None and "epoch" in curves and len(curves)
    start, times = exported.epoch_times(run_dir, curves)
    points = [
        (column, int(epoch), float(value), at)
        for column in (curves.columns.drop("epoch") if has_epochs else [])
        for epoch, value, at in list(zip(curves["epoch"], curves[column], times))[first:]
    ]
    last, end = (int(curves["epoch"].iloc[-1]), times[-1]) if has_epochs else (0, start)
    points += [(name, last, value, end) for name, value in headline.items()]
    return [point for point in points if not math.isnan(point[2])]


def _logged_steps(client: MlflowClient, run_id: str, keys) -> dict:
    """{metric: the steps the run holds already} for these metrics."""
    known = client.get_run(run_id).data.metrics
    return {
        key: {point.step for point in client.get_metric_history(run_id, key)} for key in keys if key in known
    }


def _log_points(client: MlflowClient, run_id: str, points: list[tuple], done: dict) -> None:
    """Log the points whose step the run does not hold yet (a second export adds only the
    epochs trained since, never a second point at a step); `done` learns the new ones."""
    metrics = [
        Metric(key, value, int(at * 1000), step)
        for key, step, value, at in points
        if step not in done.get(key, ())
    ]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])
    for metric in metrics:
        done.setdefault(metric.key, set()).add(metric.step)


class LiveMlflow:
    """`logger=mlflow`: the params when a run starts, its metrics as epochs arrive, the status
    and diagnosis tags when it ends; a sweep is a parent run with its trials as children.

    Runs are found by their RUN_DIR_TAG as `dlrun export` finds them: after a kill -9 the same
    command goes on logging into the same MLflow run, only the steps it does not hold yet."""

    name = "mlflow"

    def __init__(self, uri: str | None, experiment: str):
        self.uri = uri or Path(DEFAULT_STORE).resolve().as_uri()
        self.experiment = experiment
        self.runs: dict[Path, tuple[str, dict, int]] = {}  # run -> (id, steps logged, rows sent)
        self.parent = None

    def begin(self, root: Path, hparams: list[dict]) -> None:
        with _file_store_allowed():
            self._begin(root)

    def _begin(self, root: Path) -> None:
        self.client = MlflowClient(self.uri)
        self.experiment_id = _experiment_id(self.client, self.experiment)
        self.existing = _existing_runs(self.client, self.experiment_id)
        self.root = root

    def _parent(self) -> dict:
        """The parent-run tag for a trial: the sweep's run, made once its sweep.yaml is there
        (an adaptive search writes it after the follower starts)."""
        if self.parent is None and (self.root / results.SWEEP_FILE).is_file():
            self.parent = _export_sweep(self.client, self.experiment_id, self.existing, self.root)
            self.client.update_run(self.parent, RunStatus.to_string(RunStatus.RUNNING))
        return {MLFLOW_PARENT_RUN_ID: self.parent} if self.parent else {}

    def update(self, run: exported.RunState) -> None:
        with _file_store_allowed():
            self._update(run)

    def _update(self, run: exported.RunState) -> None:
        client = self.client
        if run.run_dir not in self.runs:
            tags = {STATUS_TAG: run.status, **self._parent()}
            run_id = _find_or_create(client, self.experiment_id, self.existing, run.run_dir, run.name, tags)
            _log_params(client, run_id, _config(run.run_dir))
            points = _points(run.run_dir, run.curves, {})
            self.runs[run.run_dir] = (run_id, _logged_steps(client, run_id, {p[0] for p in points}), 0)
        run_id, done, sent = self.runs[run.run_dir]
        ended = run.row is not None
        headline = exported.headline(run.row) if ended else {}
        _log_points(client, run_id, _points(run.run_dir, run.curves, headline, min(sent, run.epochs)), done)
        self.runs[run.run_dir] = (run_id, done, run.epochs)
        if ended:
            tags = {DIAGNOSIS_TAG: run.row["diagnosis"], FLAGS_TAG: ",".join(run.row["flags"])}
            tags[STATUS_TAG] = run.status
            client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
            _finish(client, run_id, run.run_dir, run.status)

    def end(self, collected: exported.Collected | None) -> None:
        if self.parent is not None:
            with _file_store_allowed():
                self.client.set_terminated(self.parent, "FINISHED")
