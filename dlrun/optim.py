"""Optimizers and learning-rate schedules keyed by config name, built from Optax.

The optimizer's hyperparameters (lr, momentum, betas, weight decay...) are injected into its
state with `optax.inject_hyperparams`, so a group of trials that differ only in them is one
program vmapped over a leading trial axis. The schedule is a shape, a multiplier of the
injected lr, so it is shared by every trial of a group.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import optax

from dlrun.errors import ConfigError
from dlrun.registry import Registry, above_zero, at_least_zero, check_options, within_unit


class Optimizer(NamedTuple):
    build: Callable  # optax constructor: learning_rate and `fields` as keywords
    fields: tuple  # the OptimConfig fields it takes besides the learning rate, injected into its state


OPTIMIZERS = Registry(
    "optimizer",
    {
        "sgd": Optimizer(optax.sgd, ()),
        "momentum": Optimizer(optax.sgd, ("momentum",)),
        "nesterov": Optimizer(
            lambda learning_rate, momentum: optax.sgd(learning_rate, momentum, nesterov=True), ("momentum",)
        ),
        "rmsprop": Optimizer(optax.rmsprop, ("decay", "eps", "momentum")),
        "adagrad": Optimizer(optax.adagrad, ("eps",)),
        "adam": Optimizer(optax.adam, ("b1", "b2", "eps")),
        "adamw": Optimizer(optax.adamw, ("b1", "b2", "eps", "weight_decay")),
    },
)

# name -> lr factor as a function of batch_size / base_batch_size (Goyal et al. 2017 for linear)
LR_SCALINGS = Registry(
    "optim.lr_scaling",
    {
        "none": lambda ratio: 1.0,
        "linear": lambda ratio: ratio,
        "sqrt": math.sqrt,
    },
)

# Checks of the optim fields, run on those the config holds: an optimizer's own schema holds only
# the fields it takes (sgd has no eps), and the ones every optimizer has.
OPTION_CHECKS = {
    "eps": at_least_zero,
    "weight_decay": at_least_zero,
    "l2": at_least_zero,
    "clip_norm": at_least_zero,
    "base_batch_size": above_zero,
    "lr_scaling": lambda key, name: LR_SCALINGS.check(name),
}


def _constant(schedule, steps_per_epoch, total_steps):
    return optax.constant_schedule(1.0)


def _step(schedule, steps_per_epoch, total_steps):
    steps = max(1, round(schedule.decay_epochs * steps_per_epoch))
    return optax.exponential_decay(1.0, steps, schedule.gamma, staircase=True)


def _exponential(schedule, steps_per_epoch, total_steps):
    return optax.exponential_decay(1.0, steps_per_epoch, schedule.gamma)


def _cosine(schedule, steps_per_epoch, total_steps):
    return optax.cosine_decay_schedule(1.0, total_steps, alpha=schedule.end_factor)


def _warmup_cosine(schedule, steps_per_epoch, total_steps):
    warmup = round(schedule.warmup_epochs * steps_per_epoch)
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total_steps, schedule.end_factor)


def _gamma_decays(schedule, shortest: int) -> None:
    if not 0 < schedule.gamma <= 1:
        raise ConfigError(f"schedule.gamma must be in (0, 1], got {schedule.gamma}")


def _warmup_fits(schedule, shortest: int) -> None:
    if schedule.warmup_epochs >= shortest:
        raise ConfigError(f"schedule.warmup_epochs {schedule.warmup_epochs} must be below epochs {shortest}")


def _no_check(schedule, shortest: int) -> None:
    """A schedule whose fields need no more than their ranges (SCHEDULE_CHECKS)."""


class Schedule(NamedTuple):
    build: Callable  # (cfg.schedule, steps per epoch, total steps) -> step -> lr multiplier
    check: Callable = _no_check  # (cfg.schedule, epochs of the shortest segment) -> None


SCHEDULES = Registry(
    "schedule",
    {
        "constant": Schedule(_constant),
        "step": Schedule(_step, _gamma_decays),
        "exponential": Schedule(_exponential, _gamma_decays),
        "cosine": Schedule(_cosine),
        "warmup_cosine": Schedule(_warmup_cosine, _warmup_fits),
    },
)

# Ranges of the schedule fields, run on those the config holds (as OPTION_CHECKS)
SCHEDULE_CHECKS = {
    "decay_epochs": above_zero,
    "warmup_epochs": at_least_zero,
    "gamma": at_least_zero,
    "end_factor": within_unit,
}


def segments(cfg) -> list[tuple[int, int]]:
    """The (first, end) epochs of each stretch the schedule runs over: one, unless restarted."""
    bounds = [0, *cfg.schedule.restarts, cfg.epochs]
    return list(zip(bounds, bounds[1:]))


def check(cfg) -> None:
    """Raise ConfigError for an unknown optimizer, a bad optim setting, or a bad schedule."""
    OPTIMIZERS.check(cfg.optim.name)
    check_options(cfg.optim, "optim", OPTION_CHECKS)
    check_schedule(cfg)


def check_schedule(cfg) -> None:
    """Raise ConfigError for an unknown schedule or settings that cannot work with this run's length."""
    schedule = SCHEDULES.get(cfg.schedule.name)
    check_options(cfg.schedule, "schedule", SCHEDULE_CHECKS)
    restarts = list(cfg.schedule.restarts)
    if restarts != sorted(set(restarts)) or any(not 0 < epoch < cfg.epochs for epoch in restarts):
        raise ConfigError(
            f"schedule.restarts must be increasing epochs between 0 and epochs {cfg.epochs}, got {restarts}"
        )
    schedule.check(cfg.schedule, min(end - first for first, end in segments(cfg)))


def effective_lr(cfg) -> float:
    """Return `lr`, scaled with the batch size when `optim.lr_scaling` asks (Goyal et al. 2017)."""
    factor = LR_SCALINGS.get(cfg.optim.lr_scaling)
    return cfg.lr * factor(cfg.batch_size / cfg.optim.base_batch_size)


def make_schedule(cfg, steps_per_epoch: int):
    """Return the lr multiplier as a function of the step count.

    After a restart (schedule.restarts) the schedule runs afresh over the remaining epochs.
    """
    build = SCHEDULES.get(cfg.schedule.name).build
    pieces = [
        build(cfg.schedule, steps_per_epoch, (end - first) * steps_per_epoch) for first, end in segments(cfg)
    ]
    if len(pieces) == 1:
        return pieces[0]
    return optax.join_schedules(pieces, [epoch * steps_per_epoch for epoch in cfg.schedule.restarts])


def make_optimizer(cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """Return the Optax transformation: clip -> optimizer (hyperparameters in its state) -> schedule."""
    build, _ = OPTIMIZERS.get(cfg.optim.name)
    parts = []
    if cfg.optim.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.optim.clip_norm))
    parts.append(optax.inject_hyperparams(build)(**injected_values(cfg)))
    parts.append(optax.scale_by_schedule(make_schedule(cfg, steps_per_epoch)))
    return optax.chain(*parts)


def injected_values(cfg) -> dict:
    """{name: value} of the hyperparameters make_optimizer injects into the optimizer's state
    (what population-based training writes there to change a trial's values mid-run)."""
    _, fields = OPTIMIZERS.get(cfg.optim.name)
    return {"learning_rate": effective_lr(cfg), **{name: float(cfg.optim[name]) for name in fields}}


def injected_hyperparams(opt_state) -> dict:
    """Return the injected hyperparameters (arrays) found in an optimizer state from make_optimizer."""
    inner = getattr(opt_state, "inner_states", None)
    if inner is not None:  # frozen layers (transfer.freeze): the trainable partition holds them
        opt_state = inner["trainable"].inner_state
    for part in opt_state:
        if hasattr(part, "hyperparams"):  # InjectHyperparamsState or its stateful variant
            return part.hyperparams
    raise ValueError("optimizer state holds no injected hyperparameters")
