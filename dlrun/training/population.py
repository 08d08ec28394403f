"""A population-based-training group: the rows of one vectorised group, where a member copies
another's state and takes new hyperparameter values on the device, between two epochs.

An exploit is a gather along the trial axis of the whole stacked state (parameters, optimizer
state, batch-norm statistics); an explore is a write into the hyperparameters the state holds
(the injected ones of the optimizer, the `hparams` the step reads): no checkpoint, no
recompilation, the compiled epoch runs on as before. Which member copies whom is decided
above (dlrun/sweep/pbt.py); this module only moves the rows.

The members must resume together, so the population keeps one checkpoint of its own, written
after every member's files of the epoch: the stacked state as it ended that epoch, before any
exploit, with each member's status and best-epoch bookkeeping. A kill at any moment leaves
that file at a finished epoch; the exploit decided after it is made again on resume (the
decision is seeded and reads only that epoch's metrics), so nothing is lost or repeated.
"""

from __future__ import annotations

from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from dlrun import results
from dlrun.training import hparams
from dlrun.training.group import GroupRun
from dlrun.training.program import stack, take


def _hparam_of(path) -> tuple | None:
    """(OPTIMIZER or STATE, name) when a leaf's path is a hyperparameter the state holds."""
    names = [getattr(part, "name", getattr(part, "key", None)) for part in path]
    if len(names) >= 2 and names[-2] == "hyperparams":  # optax.inject_hyperparams's state
        return hparams.OPTIMIZER, names[-1]
    if len(names) == 2 and names[0] == "hparams":  # TrainState.hparams
        return hparams.STATE, names[1]
    return None


@jax.jit
def exploited(state, sources, columns: dict, rows):
    """The stacked state with row i replaced by row sources[i] (every leaf), then, in the
    `rows` marked, the hyperparameters named in `columns` ({(where, name): [rows] values})."""
    gathered = jax.tree_util.tree_map(lambda leaf: jnp.take(leaf, sources, axis=0), state)

    def write(path, leaf):
        column = columns.get(_hparam_of(path))
        return leaf if column is None else jnp.where(rows, column.astype(leaf.dtype), leaf)

    return jax.tree_util.tree_map_with_path(write, gathered)


def exploit_arrays(rows: int, moves: dict, reached: dict) -> tuple:
    """(sources, columns, rows marked) for `exploited`: moves {member: source}, reached
    {member: {(where, name): value}} (hparams.reached_values of its new config)."""
    sources = np.arange(rows)
    marked = np.zeros(rows, bool)
    columns: dict = {}
    for member, source in moves.items():
        sources[member], marked[member] = source, True
        for name, value in reached[member].items():
            columns.setdefault(name, np.zeros(rows, np.float32))[member] = value
    return sources, columns, marked


class PopulationRun(GroupRun):
    """A group whose rows are a PBT population (never compacted: every row is a member)."""

    def __init__(self, cfgs: list, run_dirs: list, dataset, compact: bool = False, *, checkpoint: Path):
        super().__init__(cfgs, run_dirs, dataset, compact=False)
        self.checkpoint = Path(checkpoint)

    def exploit(self, moves: dict, cfgs: dict, keys) -> None:
        """Each member in `moves` ({member: source}) takes its source's state, then the values
        `keys` have in its new config (cfgs[member])."""
        reached = {member: hparams.reached_values(cfgs[member], keys) for member in moves}
        sources, columns, marked = exploit_arrays(int(self.state.active.shape[0]), moves, reached)
        columns = {key: jnp.asarray(column) for key, column in columns.items()}
        self.state = self.placement.stacked(exploited(self.state, sources, columns, jnp.asarray(marked)))

    def record(self, epoch: int, rows: list) -> None:
        """Every member's files of the epoch, then the population's checkpoint (last: it is
        what a resume trusts, so it never names an epoch some member's files lack)."""
        super().record(epoch, rows)
        self.writes.wait()
        payload = {
            "epoch": epoch,
            "state": stack(self.trial_states()),
            "trials": [_bookkeeping(trial) for trial in self.trials],
        }
        results.atomic_write_bytes(self.checkpoint, flax.serialization.to_bytes(payload))

    def begin(self, resume: bool) -> int:
        """Start afresh, or restore every member from the population's checkpoint."""
        if not (resume and self.checkpoint.exists()):
            return super().begin(False)
        template = {
            "epoch": 0,
            "state": stack(self.states),
            "trials": [_bookkeeping(trial) for trial in self.trials],
        }
        payload = flax.serialization.from_bytes(template, self.checkpoint.read_bytes())
        epoch = int(payload["epoch"])
        self.begun = True
        for index, trial in enumerate(self.trials):
            _restore(trial, payload["trials"][index], epoch, self.states[index])
        self.state = self._place([take(payload["state"], index) for index in range(len(self.trials))])
        return epoch + 1


STATUSES = results.STATUSES


def _bookkeeping(trial) -> dict:
    tracker = trial.tracker
    return {
        "status": np.int32(STATUSES.index(trial.status)),
        "best_value": np.float64(tracker.best_value),
        "best_epoch": np.int32(tracker.best_epoch),
        "bad_epochs": np.int32(tracker.bad_epochs),
    }


def _restore(trial, saved: dict, epoch: int, template_state) -> None:
    """A member's host bookkeeping as it was after `epoch` (its curve cut there)."""
    trial.restore_bookkeeping(saved, epoch, template_state)
    trial.mark_resumed(epoch)
    trial.status = STATUSES[int(saved["status"])]
