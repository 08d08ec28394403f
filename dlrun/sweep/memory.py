"""How many trials of a config fit in one vectorised group: the estimate asks the model itself.

The parameter count and the activation sizes per example both come from tracing the model's
own `init` and `apply` with `jax.eval_shape` (nothing is allocated or compiled), so a new model
family is sized without code here. The activations are the input and the output of every
submodule (flax's `capture_intermediates`), on a batch of one, plus what the family says its
step builds besides (`models.workspace`: LeNet's im2col patches on a CPU).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

# Share of device (or host) memory a group may plan to use; the rest is XLA's working space.
MEMORY_SHARE = 0.5
# Copies of the parameters a trial holds: the parameters, their gradients, two optimizer
# moments, the update and the best epoch's copy.
PARAM_COPIES = 6
# Copies of the activations a step holds per example: the forward values kept for the backward
# pass, their gradients, and the temporaries XLA does not fuse away.
ACTIVATION_COPIES = 3
BYTES = 4  # float32


def model_sizes(cfg, spec) -> tuple[int, int]:
    """Return (parameter count, activation values per example) of `cfg.model` on `spec`'s inputs."""
    from dlrun import models

    model = models.build_model(cfg, spec)
    one = jax.ShapeDtypeStruct((1, *spec.input_shape), jnp.float32)

    def forward(x):
        variables = model.init({"params": jax.random.PRNGKey(0)}, x)
        _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
        return variables["params"], state["intermediates"]

    params, intermediates = jax.eval_shape(forward, one)
    activations = one.size + models.count_params(intermediates) + models.workspace(cfg, spec)
    return models.count_params(params), activations


def trial_bytes(cfg) -> int:
    """Return the bytes one trial of this config needs during a training step, by estimate."""
    from dlrun import data

    params, activations = model_sizes(cfg, data.describe(cfg.data))
    return BYTES * (PARAM_COPIES * params + ACTIVATION_COPIES * cfg.batch_size * activations)


def device_memory() -> int:
    """Bytes of memory a group may spread over: the sum over the local devices, since a group
    shards its trials over all of them (dlrun/training/placement.py); the host's RAM, once,
    when the devices do not say (CPU devices, forced or not, share it)."""
    sizes = [_bytes_limit(device) for device in jax.local_devices()]
    if all(sizes):
        return sum(sizes)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _bytes_limit(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return stats.get("bytes_limit") if stats else None


def trials_that_fit(cfg, budget: int | None = None) -> int:
    """Return how many trials of this config fit in MEMORY_SHARE of `budget` (default: the
    device's memory); at least one, so that a large model still runs alone."""
    budget = device_memory() if budget is None else budget
    return max(1, int(MEMORY_SHARE * budget // trial_bytes(cfg)))
