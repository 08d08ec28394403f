"""Where a group's arrays live: its trial axis sharded over every local device.

A group of several trials on a host with several devices (GPUs, or CPU devices forced with
XLA_FLAGS=--xla_force_host_platform_device_count=N) is one program over a mesh with a `trials`
axis: the stacked state is split along its leading axis, the data replicated, and XLA
partitions the vmapped step so that each device trains its share of the trials.

The trial count is padded up to a multiple of the device count rather than the group split:
a group stays one compiled program and one set of folders, and at most devices-1 extra rows
train. Padding rows are copies of the first trial, inactive from the start (their updates
are masked like a stopped trial's) and never reach a folder: every reader stops at the real
trial count. On one device, or for a group of one, nothing changes: plain `device_put`.

On one CPU device a group may instead train its trials in passes, a few vmapped at a time,
one pass after another in the same compiled epoch (`trials_per_pass`); passes of one trial
run a core each at once (`side_by_side`).
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dlrun.errors import ConfigError

AXIS = "trials"


# ~5e7 FLOP a step per core: where vmapping more trials stops paying on a CPU (see trials_per_pass)
CPU_FLOPS_PER_CORE = 5e7
# forces the pass size (benchmarks and the tests of the mapped path use it)
TRIALS_PER_PASS_ENV = "DLRUN_TRIALS_PER_PASS"
# forces how many one-trial passes run at once (1: one after another, in one program)
SIDE_BY_SIDE_ENV = "DLRUN_SIDE_BY_SIDE"


def forced(name: str) -> int | None:
    """The whole number >= 1 that the environment variable `name` forces (None: unset).
    Raises ConfigError for anything else."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}={text} is not a whole number >= 1 (unset it and dlrun chooses)")
    return int(text)


def check_forced() -> None:
    """Refuse a bad DLRUN_TRIALS_PER_PASS or DLRUN_SIDE_BY_SIDE before a sweep writes anything."""
    for name in (TRIALS_PER_PASS_ENV, SIDE_BY_SIDE_ENV):
        forced(name)


class Placement:
    """Whether a group is sharded (decided once, from its full size) and how to place its rows;
    a group compacted to fewer trials keeps its mesh and pads to the device count again."""

    def __init__(self, trials: int, devices: list | None = None):
        devices = list(jax.local_devices() if devices is None else devices)
        self.devices = len(devices)
        self.sharded = self.devices > 1 and trials > 1
        if self.sharded:
            mesh = Mesh(np.array(devices), (AXIS,))
            self.split = NamedSharding(mesh, PartitionSpec(AXIS))
            self.whole = NamedSharding(mesh, PartitionSpec())

    def trials_per_pass(self, rows: int, step_flops: float) -> int:
        """How many trials one pass of the compiled epoch trains side by side (vmapped); the
        passes run one after another inside the same program (`lax.map` in chunks).

        On accelerators, and across devices, all of them: one small trial leaves a GPU idle. On
        a CPU, vmapping trials whose step already keeps every core busy only costs: the batched
        matmuls need transposed copies of the stacked weights and the working set leaves the
        cache. Measured on 2 cores (MLP 784-512-256-10, batch 128, ~3e8 FLOP a step): 32 trials
        vmapped trained 1.2x slower than one at a time; with 3e7 FLOP a step (one hidden layer
        of 64) vmapping 4 to 16 trials was the faster. So small steps are vmapped until a pass
        has ~5e7 FLOP a step per core, and big ones run one trial per pass.
        """
        override = forced(TRIALS_PER_PASS_ENV)
        if override:
            return min(rows, override)
        if self.sharded or jax.default_backend() != "cpu" or step_flops <= 0:
            return rows
        wanted = CPU_FLOPS_PER_CORE * (os.cpu_count() or 1)
        return max(1, min(rows, math.ceil(wanted / step_flops)))

    def side_by_side(self, rows: int) -> int:
        """How many one-trial passes run at once, from threads (dlrun/training/side_by_side.py):
        on a CPU one a core, else 1 (one program: a GPU runs the whole group vmapped anyway)."""
        override = forced(SIDE_BY_SIDE_ENV)
        if override:
            return min(rows, override)
        if self.sharded or jax.default_backend() != "cpu":
            return 1
        return max(1, min(rows, os.cpu_count() or 1))

    def padding(self, rows: int) -> int:
        """Rows to add to `rows` trials: up to a multiple of the device count when sharded."""
        return -rows % self.devices if self.sharded else 0

    def stacked(self, tree):
        """Place a tree whose leaves have a leading trial axis: padded, then split."""
        if not self.sharded:
            return jax.device_put(tree)
        rows = jax.tree_util.tree_leaves(tree)[0].shape[0]
        extra = self.padding(rows)
        pad = lambda leaf: jnp.concatenate([leaf, jnp.repeat(leaf[:1], extra, axis=0)])
        return jax.device_put(jax.tree_util.tree_map(pad, tree) if extra else tree, self.split)

    def replicated(self, tree):
        """Place a tree every trial reads whole (the data, a shared key) on every device."""
        return jax.device_put(tree, self.whole) if self.sharded else jax.device_put(tree)

    def active(self, live: list):
        """The `active` flags of the rows: the trials' own, False for the padding."""
        flags = jnp.asarray([*live, *([False] * self.padding(len(live)))])
        return jax.device_put(flags, self.split) if self.sharded else flags
