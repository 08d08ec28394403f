"""The compiled half of a group: its static program, the jitted epoch and evaluations over a
leading trial axis, and the padded evaluation batches (dlrun/training/group.py runs them).

`build_program` fixes everything that shapes the compiled code from a group's first config;
`compiled_functions` vmaps the step's pure functions over the trials, or, for a group of one,
only adds and drops the axis so that `dlrun train` pays nothing for vmap.
"""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dlrun import data, models, optim
from dlrun.models import losses, tasks, trainable
from dlrun.training import hparams, transfer
from dlrun.training.step import Program, create_state, evaluate, init_variables, train_epoch, train_step
from dlrun.training.trial import init_key


def build_program(cfgs: list, dataset: data.Dataset) -> Program:
    """Return the static program shared by a group (taken from its first config).

    Dropout and noise are compiled in when any trial uses them; a rate of 0 then is a no-op.
    """
    cfg, spec = cfgs[0], dataset.spec
    steps_per_epoch = spec.n_train // cfg.batch_size
    flags = hparams.compiled_flags(cfgs)
    model = models.build_model(cfg, spec).clone(use_dropout=flags["use_dropout"])
    frozen = trainable.frozen_modules(cfg, spec)  # model.trainable splits groups: one per group
    task = tasks.resolve_task(cfg, spec)
    return Program(
        model=model,
        optimizer=transfer.freeze(optim.make_optimizer(cfg, steps_per_epoch), frozen),
        schedule=optim.make_schedule(cfg, steps_per_epoch),
        loss_name=losses.resolve_loss(cfg.loss, spec, task),
        task=task,
        input_shape=tuple(spec.input_shape),
        batch_size=cfg.batch_size,
        steps_per_epoch=steps_per_epoch,
        x_offset=float(dataset.x_offset),
        x_scale=float(dataset.x_scale),
        huber_delta=float(cfg.huber_delta),
        augment_shift=int(cfg.augment.shift) if len(spec.input_shape) == 3 else 0,
        augment_flip=bool(cfg.augment.flip) and len(spec.input_shape) == 3,
        use_noise=flags["use_noise"],
        mask_updates=len(cfgs) > 1,
        frozen=frozen,
        pixel_peak=pixel_peak(dataset),
        # a program constant, not a per-trial value: it noises the evaluation's inputs too
        # (dlrun/training/hparams.py splits groups by it for denoise)
        denoise_std=float(cfg.augment.noise_std) if task == "denoise" else 0.0,
        noise_seed=int(cfg.data.get("seed", 0)),
    )


def pixel_peak(dataset: data.Dataset) -> float:
    """The value of a full-scale pixel above a black one, in the model's units: 255 steps of
    x_scale for 8-bit images, else the range of the training inputs (already scaled)."""
    if dataset.x_train.dtype == np.uint8:
        return 255.0 * float(dataset.x_scale)
    spread = float(np.max(dataset.x_train) - np.min(dataset.x_train)) if dataset.x_train.size else 1.0
    return spread if spread > 0 else 1.0


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


def stack(trees: list):
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def take(tree, index: int):
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def compiled_functions(program: Program, batched: bool, shared: bool = False, per_pass: int | None = None):
    """Return jitted (epoch, evaluate, evaluate with probabilities) over a leading trial axis.

    A group of one runs the plain program and only adds or drops the axis, so `dlrun train`
    pays nothing for vmap; a larger group vmaps the state and shares the data. The evaluations
    take the rows' `active` flags first: one trial a pass skips the rows that are not. `shared`: the
    trials draw one batch order, passed as one key (unbatched), so each batch is gathered once.
    `per_pass`: train that many trials vmapped at a time, the passes one after another in the
    same program (dlrun/training/placement.py says when that is faster); None: all at once.
    """
    epoch = partial(train_epoch, program)
    assessors = (partial(evaluate, program), partial(evaluate, program, probabilities=True))
    if batched and per_pass == 1:
        epoch = _in_passes(epoch, per_pass, shared)
        assessors = [_skipping_frozen(fn) for fn in assessors]
    elif batched:
        epoch = (
            _in_passes(epoch, per_pass, shared)
            if per_pass
            else jax.vmap(epoch, in_axes=(0, None, None, 0, None if shared else 0))
        )
        assessors = [_vmapped(fn) for fn in assessors]
    else:
        one_epoch = epoch
        epoch = lambda state, x, y, keys, orders: _expand(one_epoch(take(state, 0), x, y, keys[0], orders[0]))
        assessors = [partial(_one_trial, fn) for fn in assessors]
    return (jax.jit(epoch, donate_argnums=0), *map(jax.jit, assessors))


def _vmapped(assess):
    """An evaluation over the trial axis; every row is assessed (`active` is not read)."""
    vmapped = jax.vmap(assess, in_axes=(0, 0, None, None, None))
    return lambda active, params, batch_stats, *batches: vmapped(params, batch_stats, *batches)


def _skipping_frozen(assess):
    """An evaluation trial by trial that skips the rows not `active` (zeros stand in)."""

    def assess_row(row, batches):
        active, params, batch_stats = row
        assessed = lambda: assess(params, batch_stats, *batches)
        shapes = jax.eval_shape(assessed)
        zeros = lambda: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return jax.lax.cond(active, assessed, zeros)

    return lambda active, params, batch_stats, *batches: jax.lax.map(
        lambda row: assess_row(row, batches), (active, params, batch_stats)
    )


def _in_passes(epoch, per_pass: int, shared: bool):
    """The epoch over the trial axis as `lax.map` in chunks of `per_pass` vmapped trials.

    One trial a pass is a plain loop, where a frozen trial (pruned, stopped, diverged, padding)
    is skipped by `lax.cond` instead of computed and masked: under vmap a cond computes both
    sides, so only this case saves the work before compaction re-stacks the group.
    """

    def one(state, x, y, key, order):
        if per_pass > 1:
            return epoch(state, x, y, key, order)
        trained = lambda: epoch(state, x, y, key, order)
        _, metric_shapes = jax.eval_shape(trained)
        skipped = lambda: (
            state,
            jax.tree_util.tree_map(lambda shape: jnp.zeros(shape.shape, shape.dtype), metric_shapes),
        )
        return jax.lax.cond(state.active, trained, skipped)

    batch_size = per_pass if per_pass > 1 else None
    if shared:
        return lambda state, x, y, keys, order: jax.lax.map(
            lambda row: one(row[0], x, y, row[1], order), (state, keys), batch_size=batch_size
        )
    return lambda state, x, y, keys, orders: jax.lax.map(
        lambda row: one(row[0], x, y, row[1], row[2]), (state, keys, orders), batch_size=batch_size
    )


def step_flops(program: Program, state, x, y) -> float:
    """FLOPs of one trial's training step, from XLA's cost analysis of the lowered step (no
    compile); 0 when the backend gives none."""
    batch = jax.ShapeDtypeStruct((program.batch_size, *x.shape[1:]), x.dtype)
    labels = jax.ShapeDtypeStruct((program.batch_size, *y.shape[1:]), y.dtype)
    lowered = jax.jit(partial(train_step, program)).lower(state, batch, labels, jax.random.PRNGKey(0))
    try:
        return float((lowered.cost_analysis() or {}).get("flops", 0.0))
    except Exception:  # an analysis the backend lacks must not stop training
        return 0.0


def _expand(tree):
    return jax.tree_util.tree_map(lambda leaf: leaf[None], tree)


def _one_trial(fn, active, params, batch_stats, *batches):
    return _expand(fn(take(params, 0), take(batch_stats, 0), *batches))


# compiled programs (and step costs, jitted init draws) by key: the groups of an adaptive
# search's rounds, or of a sweep split by --max-group, share one compile; a shape keeps a few
# (a size per compaction, its step cost, its draw), the oldest dropped first
_PROGRAMS: dict = {}
KEPT_PROGRAMS = 16


def program_key(cfg, program: Program, size: int, per_pass: int | None, shared: bool, arrays) -> str:
    """What fixes a group's compiled code: its config but the trial keys, the compiled-in
    flags, the stacked size and layout, and the shapes (and placement) of the state and data."""
    shapes = jax.tree_util.tree_map(
        lambda a: (a.shape, str(a.dtype), str(getattr(a, "sharding", None))), arrays
    )
    return json.dumps(
        [
            hparams.shape_key(cfg),
            program.mask_updates,
            program.model.use_dropout,
            program.use_noise,
            size,
            per_pass,
            shared,
            str(jax.tree_util.tree_structure(shapes)),
            str(jax.tree_util.tree_leaves(shapes)),
        ],
        sort_keys=True,
        default=str,
    )


def reused(key: str, build):
    """`build()`, or what it returned for the same key earlier in this process."""
    if key not in _PROGRAMS:
        _PROGRAMS[key] = build()
        while len(_PROGRAMS) > KEPT_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
    return _PROGRAMS[key]


def compile_timed(fn, *args):
    """Compile `fn` ahead of time for these arguments; return the executable and the seconds taken."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def initial_state(program: Program, cfg, spec) -> tuple:
    """A trial's first state and where its layers came from (None: all drawn).

    Drawn with the trial's own init scheme (the model's initialisers are attributes, so through
    a copy of the program holding that trial's model), jitted once per scheme and shape in the
    process (op by op, 32 trials took seconds; the next group of an adaptive sweep's round would
    compile it again), then the layers of the run it starts from (init_from) loaded over it.
    """
    optimizer = transfer.freeze(optim.make_optimizer(cfg, program.steps_per_epoch), program.frozen)
    model = models.build_model(cfg, spec).clone(use_dropout=program.model.use_dropout)
    initialiser = dataclasses.replace(program, model=model)
    key = json.dumps(
        ["init", hparams.shape_key(cfg), program.model.use_dropout, hparams.init_scheme(cfg)],
        sort_keys=True,
        default=str,
    )
    draw = reused(key, lambda: jax.jit(partial(init_variables, initialiser)))
    state = create_state(
        initialiser, init_key(cfg), hparams.state_hparams(cfg), optimizer, draw(init_key(cfg))
    )
    state, plan = transfer.initialise(state, cfg, spec, optimizer)
    return state, plan.record() if plan else None
