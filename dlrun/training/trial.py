"""Host-side bookkeeping of one trial: its curves, best epoch, checkpoints and summary.

A trial is one config trained into one run folder (dlrun/results.py), alone (`dlrun train`) or
as one row of a vectorised group (`dlrun sweep`); either way it leaves the same files.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import flax.serialization
import jax

from dlrun import results
from dlrun.config.compose import to_yaml
from dlrun.config.schema import plain
from dlrun.layout import user_config_dir
from dlrun.models.tasks import IMAGE_TASKS, psnr
from dlrun.training.resume import changed_values
from dlrun.version import __version__


@dataclass
class Tracker:
    """Best-epoch bookkeeping for early stopping and the best checkpoint."""

    metric: str
    min_delta: float
    best_value: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record an epoch's value; return True when it is the new best."""
        sign = 1.0 if self.metric == "val_loss" else -1.0
        improved = math.isnan(self.best_value) or sign * (self.best_value - value) > self.min_delta
        if improved and math.isfinite(value):
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False


def epoch_row(epoch: int, metrics: dict, val: dict, seconds: float) -> dict:
    """Flatten one epoch's fetched metrics into a metrics.csv row."""
    row = {
        "epoch": epoch,
        "train_loss": float(metrics["loss"]),
        "train_accuracy": float(metrics["accuracy"]),
        "val_loss": float(val["loss"]),
        "val_accuracy": float(val["accuracy"]),
        "lr": float(metrics["lr"]),
        "epoch_time_s": seconds,
        "grad_norm": float(metrics["grad_norm"]),
    }
    for layer, norm in metrics["layer_grad_norms"].items():
        row[f"grad_norm_{layer}"] = float(norm)
    row["dead_fraction"] = float(metrics["dead_fraction"])
    row["saturated_fraction"] = float(metrics["saturated_fraction"])
    if "pixel_mse" in metrics:  # an image task: the PSNR of the epoch's mean squared error
        row["train_psnr"] = psnr(float(metrics["pixel_mse"]))
        row["val_psnr"] = psnr(float(val["pixel_mse"]))
    return row


def image_summary(test: dict, task: str) -> dict:
    """An image task's test PSNR, and for denoise its noisy input's own (what it improved on)."""
    if task not in IMAGE_TASKS:
        return {}
    fields = {"test_psnr": psnr(float(test.get("pixel_mse", math.nan)))}
    if task == "denoise":
        fields["test_psnr_noisy_input"] = psnr(float(test.get("noisy_input_mse", math.nan)))
    return fields


def epoch_key(cfg, epoch: int) -> jax.Array:
    """The key of an epoch depends only on the seed and the epoch: a resumed run repeats it."""
    return _epoch_key(cfg.seed, epoch)


def order_key(cfg, epoch: int) -> jax.Array:
    """The key that shuffles an epoch's batches: drawn as `epoch_key` draws it, from the data seed.

    With `data_seed` unset this is exactly the shuffle of a run made before `data_seed` existed.
    """
    return _order_key(data_seed(cfg), epoch)


def data_seed(cfg) -> int:
    value = cfg.get("data_seed")
    return cfg.seed if value is None else int(value)


# Kept: the trials of a sweep mostly share a seed, and drawing a key op by op costs ~1 ms.
@functools.lru_cache(maxsize=4096)
def _order_key(seed: int, epoch: int) -> jax.Array:
    return jax.random.split(_epoch_key(seed, epoch))[0]


@functools.lru_cache(maxsize=4096)
def _epoch_key(seed: int, epoch: int) -> jax.Array:
    return jax.random.fold_in(jax.random.split(jax.random.PRNGKey(seed))[1], epoch)


def init_key(cfg) -> jax.Array:
    return _init_key(cfg.seed)


@functools.lru_cache(maxsize=4096)
def _init_key(seed: int) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(seed))[0]


@dataclass
class Trial:
    cfg: object
    run_dir: Path
    tracker: Tracker
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    best_variables: dict | None = None
    status: str = "running"  # becomes completed | diverged | failed | interrupted
    started: float = field(default_factory=time.perf_counter)
    init_record: dict | None = None  # where its parameters came from (init_from), for the summary

    @classmethod
    def create(cls, cfg, run_dir) -> "Trial":
        tracker = Tracker(cfg.early_stopping.metric, cfg.early_stopping.min_delta)
        return cls(cfg, Path(run_dir), tracker)

    @property
    def live(self) -> bool:
        return self.status == "running"

    def start(self, spec, params: int, group_size: int, task: str | None = None) -> Callable[[], None]:
        """Begin the summary (`task`: the run's, default the data's); return the function that
        writes config.yaml and a `running` summary.json, to run later."""
        self.summary = {
            "status": "running",
            "task": task or spec.task,
            "model": self.cfg.model.name,
            "data": spec.name,
            "params": params,
            "n_train": spec.n_train,
            "n_val": spec.n_val,
            "n_test": spec.n_test,
            "group_size": group_size,
            # label i of the run's outputs is class_names[i]: data.classes relabels
            **({"class_names": list(spec.class_names)} if spec.class_names else {}),
            # a user's file: where the data came from and its sha256, to tell a changed file
            **({"data_source": dict(spec.source)} if spec.source else {}),
            # `--config-dir`: where `--resume` finds the options and the code beside them again
            **({"config_dir": str(user_config_dir())} if user_config_dir() else {}),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind),
            "dlrun_version": __version__,
            "jax_version": jax.__version__,
            # the resolved config again, so that a report over thousands of runs reads JSON only
            "config": plain(self.cfg),
            **({"init_from": self.init_record} if self.init_record else {}),
        }
        summary = dict(self.summary)  # as it is now: the training thread goes on updating it

        def write() -> None:
            results.atomic_write_text(self.run_dir / results.CONFIG_FILE, to_yaml(self.cfg))
            results.write_summary(self.run_dir, summary)

        return write

    def record(self, epoch: int, row: dict, variables: dict, state) -> Callable[[], None]:
        """Append an epoch, keep the best parameters; return the function that writes the
        folder's files for it (metrics.csv, the best and last checkpoints), to run later."""
        self.rows.append(row)
        rows, tracker = list(self.rows), self.tracker
        improved = tracker.update(epoch, row[tracker.metric])
        if improved:
            self.best_variables = variables
        last = {
            "state": state,
            "epoch": epoch,
            "best_value": tracker.best_value,
            "best_epoch": tracker.best_epoch,
            "bad_epochs": tracker.bad_epochs,
        }

        def write() -> None:
            results.write_metrics(self.run_dir, rows)
            if improved:
                results.atomic_write_bytes(
                    self.run_dir / results.BEST_CHECKPOINT, flax.serialization.to_bytes(variables)
                )
            results.atomic_write_bytes(
                self.run_dir / results.LAST_CHECKPOINT, flax.serialization.to_bytes(last)
            )

        return write

    def record_divergence(self, row: dict) -> Callable[[], None]:
        """Append the epoch that went non-finite; status `diverged`. Returns the write."""
        self.rows.append(row)
        self.status = "diverged"
        rows = list(self.rows)
        return lambda: results.write_metrics(self.run_dir, rows)

    def restore_last(self, template_state):
        """Load the last epoch checkpoint; return (state, epoch it ended)."""
        template = {"state": template_state, "epoch": 0, "best_value": 0.0, "best_epoch": 0, "bad_epochs": 0}
        payload = flax.serialization.from_bytes(
            template, (self.run_dir / results.LAST_CHECKPOINT).read_bytes()
        )
        epoch = int(payload["epoch"])
        self.restore_bookkeeping(payload, epoch, template_state)
        return payload["state"], epoch

    def restore_bookkeeping(self, saved, epoch: int, template_state) -> None:
        """The host side as it was after `epoch`: the tracker from `saved` (a checkpoint's
        best_value, best_epoch, bad_epochs), the curve cut there, the summary, the best weights."""
        self.tracker.best_value = float(saved["best_value"])
        self.tracker.best_epoch = int(saved["best_epoch"])
        self.tracker.bad_epochs = int(saved["bad_epochs"])
        self.rows = results.read_metrics(self.run_dir).iloc[:epoch].to_dict("records")
        self.summary = results.read_summary(self.run_dir)
        best_file = self.run_dir / results.BEST_CHECKPOINT
        if best_file.exists():
            variables = {"params": template_state.params, "batch_stats": template_state.batch_stats}
            self.best_variables = flax.serialization.from_bytes(variables, best_file.read_bytes())

    def mark_resumed(self, epoch: int) -> None:
        """Record the config it goes on with and the resume in the folder; status `running`."""
        before = self.summary.get("config") or {}
        after = plain(self.cfg)
        self.summary.update(status="running", config=after)
        self.summary.setdefault("resumes", []).append(
            {
                "from_epoch": epoch,
                "epochs": int(self.cfg.epochs),
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "changed": {key: list(pair) for key, pair in changed_values(before, after).items()},
            }
        )
        results.atomic_write_text(self.run_dir / results.CONFIG_FILE, to_yaml(self.cfg))
        results.write_summary(self.run_dir, self.summary)

    def uses_best(self) -> bool:
        stopping = self.cfg.early_stopping
        return stopping.patience > 0 and stopping.restore_best and self.best_variables is not None

    def finish(self, test: dict | None, task: str, compile_s: float) -> dict:
        """Write the final summary.json (test metrics None when not evaluated) and return it."""
        best = self.rows[self.tracker.best_epoch - 1] if self.tracker.best_epoch else {}
        last = self.rows[-1] if self.rows else {}
        test = test or {"loss": math.nan, "accuracy": math.nan}
        self.summary.update(
            status=self.status,
            epochs_run=len(self.rows),
            best_epoch=self.tracker.best_epoch or None,
            best_val_loss=best.get("val_loss"),
            best_val_accuracy=best.get("val_accuracy"),
            final_train_loss=last.get("train_loss"),
            final_val_loss=last.get("val_loss"),
            test_loss=float(test["loss"]),
            test_accuracy=float(test["accuracy"]) if task == "classification" else None,
            **image_summary(test, task),
            test_params="best" if self.uses_best() else "final",
            train_time_s=sum(row["epoch_time_s"] for row in self.rows),
            compile_time_s=compile_s,
            wall_time_s=time.perf_counter() - self.started,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        results.write_summary(self.run_dir, self.summary)
        return self.summary
