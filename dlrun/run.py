"""One training run from a validated config to a results folder (see dlrun/results.py).

The host loop around the compiled epoch: it fetches the metrics once per epoch, evaluates the
validation set, writes the curves and checkpoints, stops early, on divergence or on a signal,
and finally evaluates the test set once.
"""

from __future__ import annotations

import math
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console

from dlrun import __version__, data, losses, models, optim, results
from dlrun.backend import enable_compilation_cache
from dlrun.config import to_yaml
from dlrun.progress import EpochProgress, summary_table
from dlrun.train import Program, TrainState, create_state, evaluate, train_epoch


class RunFailed(Exception):
    """Training raised; the run folder records status `failed` and the traceback."""


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


def build_program(cfg, dataset: data.Dataset) -> tuple[Program, dict]:
    """Return the static program of a run and its traced hyperparameters."""
    spec = dataset.spec
    steps_per_epoch = spec.n_train // cfg.batch_size
    program = Program(
        model=models.build_model(cfg, spec),
        optimizer=optim.make_optimizer(cfg, steps_per_epoch),
        loss_name=losses.resolve_loss(cfg.loss, spec),
        task=spec.task,
        input_shape=tuple(spec.input_shape),
        batch_size=cfg.batch_size,
        steps_per_epoch=steps_per_epoch,
        x_offset=float(dataset.x_offset),
        x_scale=float(dataset.x_scale),
        huber_delta=float(cfg.huber_delta),
        augment_shift=int(cfg.augment.shift) if len(spec.input_shape) == 3 else 0,
        use_noise=cfg.augment.noise_std > 0,
    )
    hparams = {"l2": cfg.optim.l2, "dropout": cfg.model.dropout, "noise_std": cfg.augment.noise_std}
    return program, hparams


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int):
    """Pad to whole batches and reshape to [batches, batch, ...] with a mask of real examples."""
    batch_size = min(batch_size, len(x))
    count = -(-len(x) // batch_size)
    pad = count * batch_size - len(x)
    mask = np.arange(count * batch_size) < len(x)
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
    shape = lambda a: a.reshape(count, batch_size, *a.shape[1:])
    return jax.device_put((shape(x), shape(y), mask.reshape(count, batch_size)))


def compile_timed(fn, *args):
    """Compile `fn` ahead of time for these arguments; return the executable and the seconds taken."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


@contextmanager
def stop_requests():
    """Turn the first SIGINT/SIGTERM into a request to stop after the current epoch.

    A second signal interrupts at once (KeyboardInterrupt). The folder stays readable either way.
    """
    requested: dict = {"signal": None}

    def handler(signum, frame):
        if requested["signal"] is not None:
            raise KeyboardInterrupt
        requested["signal"] = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def epoch_row(epoch: int, metrics: dict, val: dict, lr: float, seconds: float) -> dict:
    """Flatten one epoch's fetched metrics into a metrics.csv row."""
    row = {
        "epoch": epoch,
        "train_loss": float(metrics["loss"]),
        "train_accuracy": float(metrics["accuracy"]),
        "val_loss": float(val["loss"]),
        "val_accuracy": float(val["accuracy"]),
        "lr": lr,
        "epoch_time_s": seconds,
        "grad_norm": float(metrics["grad_norm"]),
    }
    for layer, norm in metrics["layer_grad_norms"].items():
        row[f"grad_norm_{layer}"] = float(norm)
    row["dead_fraction"] = float(metrics["dead_fraction"])
    row["saturated_fraction"] = float(metrics["saturated_fraction"])
    return row


@dataclass
class Session:
    """What one run holds while it trains."""

    cfg: object
    run_dir: Path
    program: Program
    dataset: data.Dataset
    state: TrainState
    tracker: Tracker
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    best_variables: dict | None = None


def _checkpoint_template(state: TrainState) -> dict:
    return {"state": state, "epoch": 0, "best_value": 0.0, "best_epoch": 0, "bad_epochs": 0}


def save_last(session: Session, epoch: int) -> None:
    tracker = session.tracker
    payload = {"state": session.state, "epoch": epoch, "best_value": tracker.best_value,
               "best_epoch": tracker.best_epoch, "bad_epochs": tracker.bad_epochs}
    results.atomic_write_bytes(session.run_dir / results.LAST_CHECKPOINT,
                               flax.serialization.to_bytes(payload))


def restore_last(session: Session) -> int:
    """Load the last epoch checkpoint into the session; return the epoch it ended."""
    raw = (session.run_dir / results.LAST_CHECKPOINT).read_bytes()
    payload = flax.serialization.from_bytes(_checkpoint_template(session.state), raw)
    session.state = jax.device_put(payload["state"])
    epoch = int(payload["epoch"])
    tracker = session.tracker
    tracker.best_value, tracker.best_epoch = float(payload["best_value"]), int(payload["best_epoch"])
    tracker.bad_epochs = int(payload["bad_epochs"])
    session.rows = results.read_metrics(session.run_dir).iloc[:epoch].to_dict("records")
    best_file = session.run_dir / results.BEST_CHECKPOINT
    if best_file.exists():
        template = {"params": session.state.params, "batch_stats": session.state.batch_stats}
        session.best_variables = flax.serialization.from_bytes(template, best_file.read_bytes())
    return epoch


def _new_session(cfg, run_dir: Path, dataset: data.Dataset) -> Session:
    program, hparams = build_program(cfg, dataset)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed))
    state = create_state(program, keys[0], hparams)
    tracker = Tracker(cfg.early_stopping.metric, cfg.early_stopping.min_delta)
    return Session(cfg, Path(run_dir), program, dataset, state, tracker)


def epoch_key(cfg, epoch: int) -> jax.Array:
    """The key of an epoch depends only on the seed and the epoch: a resumed run repeats it."""
    return jax.random.fold_in(jax.random.split(jax.random.PRNGKey(cfg.seed))[1], epoch)


def _finish(session: Session, status: str, eval_test, started: float, compile_s: float) -> dict:
    """Evaluate the test set (unless diverged), write summary.json and return it."""
    cfg, tracker, state = session.cfg, session.tracker, session.state
    summary = dict(session.summary)
    use_best = cfg.early_stopping.patience > 0 and cfg.early_stopping.restore_best
    variables = session.best_variables if use_best and session.best_variables else {
        "params": state.params, "batch_stats": state.batch_stats}
    test = {"loss": math.nan, "accuracy": math.nan}
    if status != "diverged" and eval_test is not None and session.rows:
        test = jax.device_get(eval_test(variables["params"], variables["batch_stats"]))
    best = session.rows[tracker.best_epoch - 1] if tracker.best_epoch else {}
    summary.update(
        status=status,
        epochs_run=len(session.rows),
        best_epoch=tracker.best_epoch or None,
        best_val_loss=best.get("val_loss"),
        best_val_accuracy=best.get("val_accuracy"),
        final_train_loss=session.rows[-1]["train_loss"] if session.rows else None,
        final_val_loss=session.rows[-1]["val_loss"] if session.rows else None,
        test_loss=float(test["loss"]),
        test_accuracy=float(test["accuracy"]) if session.program.task == "classification" else None,
        test_params="best" if use_best and session.best_variables else "final",
        train_time_s=sum(row["epoch_time_s"] for row in session.rows),
        compile_time_s=compile_s,
        wall_time_s=time.perf_counter() - started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    results.write_summary(session.run_dir, summary)
    return summary


def _start_summary(session: Session) -> dict:
    spec = session.dataset.spec
    return {
        "status": "running",
        "task": spec.task,
        "model": session.cfg.model.name,
        "data": spec.name,
        "params": models.count_params(session.state.params),
        "n_train": spec.n_train, "n_val": spec.n_val, "n_test": spec.n_test,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "dlrun_version": __version__,
        "jax_version": jax.__version__,
    }


def _end_epoch(session: Session, epoch: int, row: dict) -> bool:
    """Record an epoch; return True when early stopping says to stop."""
    session.rows.append(row)
    results.write_metrics(session.run_dir, session.rows)
    if session.tracker.update(epoch, row[session.tracker.metric]):
        variables = {"params": session.state.params, "batch_stats": session.state.batch_stats}
        session.best_variables = jax.device_get(variables)
        results.atomic_write_bytes(session.run_dir / results.BEST_CHECKPOINT,
                                   flax.serialization.to_bytes(session.best_variables))
    save_last(session, epoch)
    patience = session.cfg.early_stopping.patience
    return patience > 0 and session.tracker.bad_epochs >= patience


def train_and_evaluate(cfg, run_dir: Path, *, resume: bool = False,
                       console: Console | None = None) -> dict:
    """Train `cfg` into `run_dir` (or continue the run there); return the summary it wrote.

    Raises RunFailed after recording status `failed` if training itself raises.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    enable_compilation_cache()
    dataset = data.load(cfg.data)
    session = _new_session(cfg, run_dir, dataset)
    first_epoch = restore_last(session) + 1 if resume else 1
    session.summary = results.read_summary(run_dir) if resume else _start_summary(session)
    session.summary["status"] = "running"
    if not resume:
        results.atomic_write_text(session.run_dir / results.CONFIG_FILE, to_yaml(cfg))
    results.write_summary(run_dir, session.summary)
    console.print(f"[bold]{cfg.model.name}[/] on [bold]{dataset.spec.name}[/]: "
                  f"{session.summary['params']:,} parameters, {dataset.spec.n_train:,} training "
                  f"examples, {jax.default_backend()} backend -> {run_dir}")
    status, eval_test, compile_s = "failed", None, 0.0
    try:
        status, eval_test, compile_s = _loop(session, first_epoch, console)
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as error:
        (session.run_dir / "error.txt").write_text(traceback.format_exc())
        session.summary["error"] = f"{type(error).__name__}: {error}"
        _finish(session, "failed", None, started, compile_s)
        raise RunFailed(f"{type(error).__name__}: {error} (traceback in {run_dir}/error.txt)") from error
    summary = _finish(session, status, eval_test, started, compile_s)
    console.print(summary_table(summary, run_dir))
    return summary


def _loop(session: Session, first_epoch: int, console: Console):
    """Compile, then train epoch by epoch. Returns (status, test evaluator, compile seconds)."""
    cfg, program, dataset = session.cfg, session.program, session.dataset
    x, y = jax.device_put((dataset.x_train, dataset.y_train))
    val = eval_batches(dataset.x_val, dataset.y_val, cfg.eval_batch_size)
    test = eval_batches(dataset.x_test, dataset.y_test, cfg.eval_batch_size)
    epoch_fn, compile_s = compile_timed(
        jax.jit(partial(train_epoch, program), donate_argnums=0), session.state, x, y,
        epoch_key(cfg, 1))
    eval_jit = jax.jit(partial(evaluate, program))
    eval_val, val_s = compile_timed(eval_jit, session.state.params, session.state.batch_stats, *val)
    eval_test = partial(eval_jit, x_batches=test[0], y_batches=test[1], mask=test[2])
    schedule = optim.make_schedule(cfg, program.steps_per_epoch)
    base_lr = optim.effective_lr(cfg)
    with stop_requests() as requested, EpochProgress(console, cfg.model.name, cfg.epochs,
                                                     first_epoch - 1) as bar:
        for epoch in range(first_epoch, cfg.epochs + 1):
            lr = base_lr * float(schedule((epoch - 1) * program.steps_per_epoch))
            tick = time.perf_counter()
            session.state, metrics = epoch_fn(session.state, x, y, epoch_key(cfg, epoch))
            metrics = jax.device_get(metrics)
            val_metrics = jax.device_get(eval_val(session.state.params, session.state.batch_stats, *val))
            row = epoch_row(epoch, metrics, val_metrics, lr, time.perf_counter() - tick)
            if not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])):
                session.rows.append(row)
                results.write_metrics(session.run_dir, session.rows)
                return "diverged", eval_test, compile_s + val_s
            stop = _end_epoch(session, epoch, row)
            bar.update(row)
            if requested["signal"] is not None:
                return "interrupted", eval_test, compile_s + val_s
            if stop:
                session.summary["early_stopped"] = True
                break
    return "completed", eval_test, compile_s + val_s
