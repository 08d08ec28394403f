"""Train a group of trials that share one program shape, each into its own run folder.

`dlrun train` is a group of one; `dlrun sweep` hands groups of many here. A group is the
self-contained unit of work: its inputs are configs and output folders, its outputs are the
trial folders (dlrun/results.py), so another engine can run groups elsewhere unchanged.

For a group of several trials the compiled epoch is `vmap`ped over a leading trial axis of the
whole training state; the host loop fetches the metrics once per epoch, evaluates validation,
writes curves and checkpoints, and freezes trials that diverge or stop early while the others
go on. Once half or more of the stacked trials are frozen the group is compacted (unless it
runs one trial a pass, where a frozen trial is skipped already): the live
trials are re-stacked into a smaller state (dlrun/training/compaction.py). A signal stops every
live trial after the current epoch, status `interrupted`.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.markup import escape

from dlrun import data, models, results
from dlrun.backend import enable_compilation_cache
from dlrun.errors import RunFailed  # noqa: F401 (the CLI and the executors import it from here)
from dlrun.interrupt import STOP, Interrupted, handling_signals
from dlrun.training import compaction, side_by_side
from dlrun.training.callbacks import EarlyStopping
from dlrun.training.placement import Placement
from dlrun.training.program import (
    build_program,
    compile_timed,
    compiled_functions,
    eval_batches,
    initial_state,
    program_key,
    reused,
    stack,
    step_flops,
    take,
)
from dlrun.training.progress import EpochProgress, summary_table
from dlrun.training.trial import Trial, epoch_key, epoch_row, order_key
from dlrun.training.trial import data_seed as trial_data_seed
from dlrun.training.writes import FolderWrites, cannot_write, write_predictions


class GroupRun:
    """One group's trials, their stacked state, the data on the device and the compiled code."""

    def __init__(self, cfgs: list, run_dirs: list, dataset: data.Dataset, compact: bool = True):
        self.dataset = dataset
        self.program = build_program(cfgs, dataset)
        self.trials = [Trial.create(cfg, run_dir) for cfg, run_dir in zip(cfgs, run_dirs)]
        self.states = [self._initial_state(trial) for trial in self.trials]
        self.placement = Placement(len(cfgs))
        self.x, self.y = self.placement.replicated((dataset.x_train, dataset.y_train))
        eval_size = cfgs[0].eval_batch_size
        self.val = self.placement.replicated(eval_batches(dataset.x_val, dataset.y_val, eval_size))
        self.test = self.placement.replicated(eval_batches(dataset.x_test, dataset.y_test, eval_size))
        self.compile_s = 0.0
        self.step_flops = None  # one trial's step, measured once (sizes the vmapped passes)
        self.epochs = int(cfgs[0].epochs)
        self.begun = False  # whether any trial folder was written
        # every trial draws the same batch order: gather each batch once for all of them
        self.shares_batches = len({trial_data_seed(cfg) for cfg in cfgs}) == 1
        self.assess_fn = self.predict_fn = None  # set once compiled
        self.rows_runner = None  # the side-by-side runner, where the group has one
        self.compact = compact
        self.slots = list(range(len(cfgs)))  # row i of the stacked state is trial slots[i]
        self.kept = {}  # index -> host state of a trial compacted out of the stacked state
        self.compiled = {}  # stacked size -> (epoch, validation) executables
        self.writes = FolderWrites()  # the last epoch's files, written while the next trains

    def _initial_state(self, trial: Trial):
        """The trial's first state (drawn, then the layers of init_from loaded over it)."""
        state, trial.init_record = initial_state(self.program, trial.cfg, self.dataset.spec)
        return state

    def begin(self, resume: bool) -> int:
        """Write each trial's start (or restore its checkpoint); return the first epoch to run."""
        params = models.count_params(self.states[0].params)
        if not resume:
            self.begun = True
            self.writes.submit(
                [
                    trial.start(self.dataset.spec, params, len(self.trials), self.program.task)
                    for trial in self.trials
                ]
            )
            self.state = self._place(self.states)
            return 1
        restored = [trial.restore_last(state) for trial, state in zip(self.trials, self.states)]
        epochs = {epoch for _, epoch in restored}
        if len(epochs) != 1:
            raise RunFailed(f"trials of one group stopped at different epochs {sorted(epochs)}")
        self.begun = True
        for trial, (_, epoch) in zip(self.trials, restored):
            trial.mark_resumed(epoch)
        self.state = self._place([state for state, _ in restored])
        return epochs.pop() + 1

    def _place(self, states: list):
        """Stack per-trial states on the leading trial axis and put them on the devices: the
        axis split over all local devices, padded with inactive rows to a multiple of their
        count (dlrun/training/placement.py). Every stacked state, re-stacked ones too, goes here."""
        placed = self.placement.stacked(stack(states))
        if self.placement.padding(len(states)):
            live = [bool(state.active) for state in states]
            placed = placed.replace(active=self.placement.active(live))
        return placed

    def compile(self) -> None:
        """Compile the epoch and validation for the stacked state's size, once per size; a
        program this process compiled for another group of the same shape is reused."""
        size = len(self.slots)
        if size not in self.compiled:
            batched = size > 1
            per_pass = self._per_pass() if batched else None
            workers = self.placement.side_by_side(size) if per_pass == 1 else 1
            key = program_key(
                self.trials[0].cfg,
                self.program,
                size,
                (per_pass, workers),
                self.shares_batches,
                (self.state, self.x, self.y, self.val),
            )

            def build():
                if workers > 1:
                    runner, seconds = side_by_side.compiled(
                        self.program,
                        self.state,
                        self.x,
                        self.y,
                        *self.epoch_keys(1),
                        self.val,
                        self.shares_batches,
                        workers,
                    )
                    self.compile_s += seconds
                    # the third is the test pass's: the validation's executable has its shapes
                    return runner.epoch, runner.assess, runner.test, runner.predict, runner
                epoch_fn, assess_fn, predict_fn = compiled_functions(
                    self.program, batched, batched and self.shares_batches, per_pass
                )
                epoch_exe, epoch_s = compile_timed(epoch_fn, self.state, self.x, self.y, *self.epoch_keys(1))
                val_exe, val_s = compile_timed(
                    assess_fn, self.state.active, self.state.params, self.state.batch_stats, *self.val
                )
                self.compile_s += epoch_s + val_s
                return epoch_exe, val_exe, assess_fn, predict_fn, None

            epoch_exe, val_exe, assess_fn, predict_fn, runner = reused(key, build)
            self.rows_runner = self.rows_runner or runner
            self.compiled[size] = (epoch_exe, val_exe)
            # the first size is the whole group's, over which the test set is assessed at the end
            self.assess_fn = self.assess_fn or assess_fn
            self.predict_fn = self.predict_fn or predict_fn
        self.epoch_fn, self.assess_val = self.compiled[size]

    def _per_pass(self) -> int | None:
        """Trials per vmapped pass of the stacked state (None: all of them at once)."""
        rows = int(self.state.active.shape[0])
        if self.step_flops is None:
            one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), self.state)
            key = program_key(self.trials[0].cfg, self.program, 1, None, False, (one, self.x))
            self.step_flops = reused(key, lambda: step_flops(self.program, one, self.x, self.y))
        per_pass = self.placement.trials_per_pass(rows, self.step_flops)
        return per_pass if per_pass < rows else None

    def epoch_keys(self, epoch: int) -> tuple:
        """(the key of each trial in the stacked state, in its order; the batch-order keys: one
        for all when the group shares batches)."""
        cfgs = [self.trials[index].cfg for index in self.slots]
        keys = self.placement.stacked(jnp.stack([epoch_key(cfg, epoch) for cfg in cfgs]))
        if self.shares_batches and len(cfgs) > 1:
            return keys, self.placement.replicated(order_key(cfgs[0], epoch))
        return keys, self.placement.stacked(jnp.stack([order_key(cfg, epoch) for cfg in cfgs]))

    def run_epoch(self, epoch: int) -> list:
        """Train every trial one epoch; return the rows of the live trials (None for the others)."""
        start = time.perf_counter()
        was_active = np.asarray(jax.device_get(self.state.active))
        self.state, metrics = self.epoch_fn(self.state, self.x, self.y, *self.epoch_keys(epoch))
        # rows that trained this epoch (one that just diverged too: its row shows the val loss
        # of the parameters it is reverted to); the others' val is not read
        trained = self.placement.stacked(jnp.asarray(was_active))
        val = self.assess_val(trained, self.state.params, self.state.batch_stats, *self.val)
        metrics, val, active = jax.device_get((metrics, val, self.state.active))
        seconds = time.perf_counter() - start
        rows = [None] * len(self.trials)
        for row_index, index in enumerate(self.slots):
            if not self.trials[index].live:
                continue
            row = epoch_row(epoch, take(metrics, row_index), take(val, row_index), seconds)
            finite = math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
            row["_frozen"] = not finite or (was_active[row_index] and not active[row_index])
            rows[index] = row
        return rows

    def record(self, epoch: int, rows: list) -> None:
        """Note the epoch in each trial (a trial whose step went non-finite is `diverged`) and
        start writing its curves and checkpoints, which go on while the next epoch trains."""
        host_state = jax.device_get(self.state)
        writes = []
        for row_index, index in enumerate(self.slots):
            trial, row = self.trials[index], rows[index]
            if row is None:
                continue
            if row.pop("_frozen"):
                writes.append(trial.record_divergence(row))
                continue
            trial_state = take(host_state, row_index)
            variables = {"params": trial_state.params, "batch_stats": trial_state.batch_stats}
            writes.append(trial.record(epoch, row, variables, trial_state))
        self.writes.submit(writes)

    def stop_trial(self, index: int, status: str, **summary) -> None:
        """End one trial (early stopping, pruning): it is frozen from the next epoch on."""
        trial = self.trials[index]
        trial.status = status
        trial.summary.update(summary)
        if status == "pruned":  # final at once: a sweep killed before finish() must not re-run it
            self.writes.wait()  # its last epoch's files before its final summary
            trial.finish(None, self.program.task, self.compile_s)

    def mask_stopped(self) -> None:
        """Freeze every trial that no longer trains: its updates are masked on the device."""
        self.state = self.state.replace(
            active=self.placement.active([self.trials[index].live for index in self.slots])
        )

    def compact_if_due(self) -> None:
        """Re-stack the live trials into a smaller state once half or more are frozen."""
        if self.compact:
            slots = compaction.compacted_slots(self.slots, [self.trials[i].live for i in self.slots])
            # one trial a pass skips a frozen trial already (lax.cond): re-stacking would only cost
            if slots is not None and self._per_pass() != 1:
                self._restack(slots)

    def _restack(self, slots: list[int]) -> None:
        """Keep the host state of each trial leaving the stacked state (its test evaluation and
        predictions use it), stack the ones in `slots` and compile for their size."""
        states = self.trial_states()
        self.kept.update({index: state for index, state in enumerate(states) if index not in slots})
        self.slots = list(slots)
        self.state = self._place([states[index] for index in slots])
        self.compile()

    def trial_states(self) -> list:
        """Every trial's current state on the host, stacked or compacted out, in group order."""
        host_state = jax.device_get(self.state)
        rows = {index: take(host_state, row_index) for row_index, index in enumerate(self.slots)}
        return [rows.get(index, self.kept.get(index)) for index in range(len(self.trials))]

    def finish(self) -> list[dict]:
        """Evaluate the test set once per trial (best or final parameters); write summaries.

        Nothing is written for a group stopped before its folders were; a group stopped before
        it compiled, or stopped again while testing, is summarised without test metrics.
        """
        if not self.begun:
            return [{"status": trial.status, "epochs_run": 0} for trial in self.trials]
        try:
            test = self._test() if self.assess_fn is not None else None
        except KeyboardInterrupt:
            test = None
        if self.rows_runner is not None:  # kept for the next group of this shape: not our rows
            self.rows_runner.forget()
        with STOP.critical():  # every file of the folders (predictions too), then the summaries
            self.writes.close()
            return self._summaries(test)

    def _test(self):
        """Evaluate the test set: each trial's final parameters, or its best where it uses them."""
        try:
            states = self.trial_states()
        except RuntimeError:  # a second Ctrl-C can land while the state's buffers are donated
            return None
        variables = self.placement.stacked(
            stack(
                [
                    trial.best_variables
                    if trial.uses_best()
                    else {"params": state.params, "batch_stats": state.batch_stats}
                    for trial, state in zip(self.trials, states)
                ]
            )
        )
        tested = self.placement.active([self._tested(trial) for trial in self.trials])
        args = (tested, variables["params"], variables["batch_stats"], *self.test)
        if self.program.task != "classification":
            return jax.device_get(self.assess_fn(*args))
        test, probabilities = jax.device_get(self.predict_fn(*args))
        self._save_predictions(probabilities)
        return test

    def _save_predictions(self, probabilities: np.ndarray) -> None:
        count, labels = len(self.dataset.y_test), self.dataset.y_test
        rows = [
            (trial.run_dir, probabilities[index].reshape(-1, probabilities.shape[-1])[:count])
            for index, trial in enumerate(self.trials)
            if self._tested(trial)
        ]
        self.writes.submit([partial(write_predictions, run_dir, row, labels) for run_dir, row in rows])

    @staticmethod
    def _tested(trial) -> bool:
        """Whether a trial gets test metrics: a diverged one, or one without an epoch, does not."""
        return trial.status != "diverged" and bool(trial.rows)

    def _summaries(self, test) -> list[dict]:
        summaries = []
        for index, trial in enumerate(self.trials):
            evaluated = test is not None and self._tested(trial)
            summaries.append(
                trial.finish(take(test, index) if evaluated else None, self.program.task, self.compile_s)
            )
        return summaries

    def fail(self, error: BaseException) -> Path | None:
        """Record status `failed` and the traceback in every trial folder that can still be
        written; return the first error.txt written (None: none could be)."""
        text = traceback.format_exc()
        try:
            self.writes.close()
        except Exception:  # the failure being recorded may be the disk's own
            pass
        written = None
        for trial in self.trials:
            trial.summary["error"] = f"{type(error).__name__}: {error}"
            trial.status = "failed"
            try:
                results.atomic_write_text(trial.run_dir / "error.txt", text)
                written = written or trial.run_dir / "error.txt"
                trial.finish(None, self.program.task, self.compile_s)
            except OSError:  # a full or read-only disk: the folder keeps its last whole files
                continue
        return written

    def folder(self) -> Path:
        """The folder the group writes into: its one trial's, else the one holding them all."""
        dirs = [trial.run_dir for trial in self.trials]
        return dirs[0] if len(dirs) == 1 else Path(os.path.commonpath(dirs))


def run_group(
    cfgs: list,
    run_dirs: list,
    *,
    resume: bool = False,
    callbacks: tuple = (),
    compact: bool = True,
    make_group=GroupRun,
) -> list[dict]:
    """Train the trials of one group into their folders; return their summaries.

    `callbacks` (dlrun/callbacks.py) hook into the epoch loop; early stopping always does.
    A stop request (dlrun/interrupt.py) ends every live trial as `interrupted` at the next safe
    point; one before the folders were written writes nothing. Raises RunFailed after recording
    status `failed` in every folder if training raises. `compact=False` keeps frozen trials
    in the stacked state (to compare against compaction). `make_group` builds the group from
    (cfgs, run dirs, data set, compact): a GroupRun, or a kind of it (a PBT population).
    """
    enable_compilation_cache()
    with handling_signals() as stop:
        try:
            stop.check()
            group = make_group(cfgs, [Path(d) for d in run_dirs], data.load(cfgs[0].data), compact)
        except Interrupted:
            return [{"status": "interrupted", "epochs_run": 0} for _ in cfgs]
        try:
            _train(group, resume, [EarlyStopping(), *callbacks], stop)
        except (KeyboardInterrupt, Interrupted):
            for trial in group.trials:
                trial.status = "interrupted" if trial.live else trial.status
        except RunFailed:
            raise
        except Exception as error:
            raise _failed(group, error) from error
        try:
            return group.finish()
        except OSError as error:  # the last epoch's files, the predictions or a summary
            raise _failed(group, error) from error


def _failed(group: GroupRun, error: Exception) -> RunFailed:
    """Record the failure in the group's folders; return the one line that says what failed."""
    where = group.fail(error)
    if isinstance(error, OSError):  # the run folder's own files are all it writes
        return RunFailed(cannot_write(error, group.folder()))
    return RunFailed(f"{type(error).__name__}: {error}" + (f" (traceback in {where})" if where else ""))


def _train(group: GroupRun, resume: bool, callbacks: list, stop) -> None:
    """Begin (or restore), compile, then run epochs until done or stopped at a safe point."""
    stop.check()
    with stop.critical():
        first_epoch = group.begin(resume)
    stop.check()
    with stop.critical():  # interrupting XLA's compiler from Python can crash the process
        group.compile()
    stop.check()
    for callback in callbacks:
        callback.on_start(group, first_epoch)
    try:
        for epoch in range(first_epoch, group.epochs + 1):
            rows = group.run_epoch(epoch)
            with stop.critical():  # every trial's files of one epoch, or none
                group.record(epoch, rows)
            for callback in callbacks:
                callback.on_epoch(group, epoch, rows)
            group.mask_stopped()
            with stop.critical():  # the stacked state is donated and rebuilt
                group.compact_if_due()
            stop.check()
            if not any(trial.live for trial in group.trials):
                break
    finally:
        for callback in callbacks:
            callback.on_end(group)
    for trial in group.trials:
        trial.status = "completed" if trial.live else trial.status


def train_and_evaluate(
    cfg,
    run_dir: Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    callbacks: tuple = (),
    make_group=GroupRun,
) -> dict:
    """Train one config into `run_dir` (or continue the run there); return its summary.
    `callbacks` and `make_group` as for run_group (a PBT replay writes its schedule so)."""
    console = console or Console(stderr=True)
    spec = data.describe(cfg.data)
    label = str(cfg.model.get("_target_") or cfg.model.name)  # a user's module by its own name
    console.print(
        f"[bold]{escape(label)}[/] on [bold]{escape(spec.name)}[/]: "
        f"{models.param_count(cfg, spec):,} parameters, {spec.n_train:,} training "
        f"examples, {jax.default_backend()} backend -> {escape(str(run_dir))}"
    )
    progress = EpochProgress(console, label)
    (summary,) = run_group(
        [cfg], [run_dir], resume=resume, callbacks=[progress, *callbacks], make_group=make_group
    )
    if (Path(run_dir) / results.SUMMARY_FILE).exists():
        console.print(summary_table(summary, run_dir))
    else:
        console.print(f"{summary['status']} before the run started: nothing written")
    return summary
