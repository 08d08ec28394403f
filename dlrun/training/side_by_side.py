"""One trial's compiled epoch run for each row of a stacked group, a few rows at once in threads.

On a CPU a trial whose step already keeps the cores busy trains one trial a pass
(placement.trials_per_pass), and then each trial's epoch waits for the one before it. Yet two
such trials run from two threads trained 1.2x faster than one after the other (MLP
784-512-256-10 at batch 128 on 2 cores: 0.155 s against 0.185 s a trial-epoch): one small step
leaves the cores idle between its matmuls, and the other trial's step fills them. XLA runs the
independent loops of one program one after another (two trials' epochs in one program: no
gain), so here the rows are separate executions of one compiled one-trial epoch, from threads
(XLA releases the GIL while it runs). A frozen row is not run at all, as lax.cond skips it in
the one-program passes; the group keeps its stacked state between epochs, so nothing else
changes: folders, compaction and the test pass read the same state.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import numpy as np

from dlrun.training.program import stack, take
from dlrun.training.step import Program, evaluate, train_epoch


class SideBySide:
    """The stacked interface of a group's epoch and evaluations over one-trial executables."""

    def __init__(self, program: Program, epoch_exe, assess_exe, metric_shapes, shared: bool, workers: int):
        self.epoch_exe, self.assess_exe, self.shared = epoch_exe, assess_exe, shared
        self.assess_fn = jax.jit(partial(evaluate, program))  # its shapes, for untested rows
        self.metric_zeros = _host_zeros(metric_shapes)
        # the test pass (once a group) compiles on its first call
        self.predict_fn = jax.jit(partial(evaluate, program, probabilities=True))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="dlrun-trials")
        # The rows the last epoch trained, and the stacked state made of them: the next epoch
        # and the validation start from these rows instead of slicing them out of the stack
        # again (eager slices of every leaf, per row, were 0.5 s of a 32-trial sweep).
        self.rows, self.stacked = None, None

    def epoch(self, state, x, y, keys, orders):
        """Train every active row one epoch; the others keep their state, zeros for metrics.
        The metrics come back on the host, where the group reads them."""
        active = np.asarray(jax.device_get(state.active))
        rows = self._rows(state)
        self.rows, self.stacked = None, None  # the rows are donated below

        def train(index: int):
            if not active[index]:  # its own flag may predate the stack's (a stopped trial)
                return rows[index].replace(active=_FALSE), self.metric_zeros
            order = orders if self.shared else orders[index]
            row, metrics = self.epoch_exe(rows[index], x, y, keys[index], order)
            # fetched here: the rows' executions overlap only when each thread waits for its own
            return row, jax.device_get(metrics)

        trained = list(self.pool.map(train, range(len(rows))))
        self.rows = [row for row, _ in trained]
        self.stacked = stack(self.rows)
        return self.stacked, _host_stack([metrics for _, metrics in trained])

    def forget(self) -> None:
        """Drop the last group's rows (the runner outlives its group, kept with the programs)."""
        self.rows, self.stacked = None, None

    def _rows(self, state) -> list:
        if self.stacked is not None and _same_but_active(state, self.stacked):
            return self.rows
        return [take(state, index) for index in range(int(state.active.shape[0]))]

    def assess(self, tested, params, batch_stats, *batches):
        """Evaluate the `tested` rows (zeros for the others)."""
        return self._each(self.assess_exe, self.assess_fn, tested, params, batch_stats, batches)

    def test(self, tested, params, batch_stats, *batches):
        """`assess` over other batches than the validation's (the test pass of a task without
        class probabilities), compiled for their shapes on the call."""
        return self._each(self.assess_fn, self.assess_fn, tested, params, batch_stats, batches)

    def predict(self, tested, params, batch_stats, *batches):
        """`assess` with the class probabilities too (the test pass)."""
        return self._each(self.predict_fn, self.predict_fn, tested, params, batch_stats, batches)

    def _each(self, assess, traceable, tested, params, batch_stats, batches):
        tested = np.asarray(jax.device_get(tested))
        if (
            self.stacked is not None
            and params is self.stacked.params
            and batch_stats is self.stacked.batch_stats
        ):
            row = lambda index: (self.rows[index].params, self.rows[index].batch_stats, *batches)
        else:
            row = lambda index: (take(params, index), take(batch_stats, index), *batches)
        zeros = None
        if not tested.all():
            zeros = _host_zeros(jax.eval_shape(traceable, *row(0)))
        run = lambda index: jax.device_get(assess(*row(index))) if tested[index] else zeros
        if assess is traceable:  # compiled here, once, not by each thread's first call
            assess = assess.lower(*row(0)).compile()
        return _host_stack(list(self.pool.map(run, range(len(tested)))))


def compiled(
    program: Program, state, x, y, keys, orders, val, shared: bool, workers: int
) -> tuple[SideBySide, float]:
    """Compile one trial's epoch and validation for the rows of the stacked `state`; return
    them behind the stacked interface, and the seconds compiling took."""
    start = time.perf_counter()
    one = take(state, 0)
    order = orders if shared else orders[0]
    epoch_fn = jax.jit(partial(train_epoch, program), donate_argnums=0)
    assess_fn = jax.jit(partial(evaluate, program))
    epoch_exe = epoch_fn.lower(one, x, y, keys[0], order).compile()
    assess_exe = assess_fn.lower(one.params, one.batch_stats, *val).compile()
    metric_shapes = jax.eval_shape(partial(train_epoch, program), one, x, y, keys[0], order)[1]
    runner = SideBySide(program, epoch_exe, assess_exe, metric_shapes, shared, workers)
    return runner, time.perf_counter() - start


_FALSE = np.bool_(False)


def _same_but_active(state, stacked) -> bool:
    """Whether `state` is `stacked` with at most its active flags replaced (a trial stopped)."""
    leaves = jax.tree_util.tree_leaves(state.replace(active=None))
    return all(a is b for a, b in zip(leaves, jax.tree_util.tree_leaves(stacked.replace(active=None))))


def _host_stack(trees: list):
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _host_zeros(shapes):
    return jax.tree_util.tree_map(lambda shape: np.zeros(shape.shape, shape.dtype), shapes)
