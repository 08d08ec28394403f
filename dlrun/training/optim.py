"""Optimizers and learning-rate schedules keyed by config name, built from Optax.

The optimizer's hyperparameters (lr, momentum, betas, weight decay...) are injected into its
state with `optax.inject_hyperparams`, so a group of trials that differ only in them is one
program vmapped over a leading trial axis. The schedule is a shape, a multiplier of the
injected lr, so it is shared by every trial of a group.
"""

from __future__ import annotations

import math

import optax

from dlrun.errors import ConfigError

# name -> (optax constructor, the OptimConfig fields it takes besides the learning rate)
OPTIMIZERS = {
    "sgd": (optax.sgd, ()),
    "momentum": (optax.sgd, ("momentum",)),
    "nesterov": (lambda learning_rate, momentum: optax.sgd(learning_rate, momentum, nesterov=True),
                 ("momentum",)),
    "rmsprop": (optax.rmsprop, ("decay", "eps", "momentum")),
    "adagrad": (optax.adagrad, ("eps",)),
    "adam": (optax.adam, ("b1", "b2", "eps")),
    "adamw": (optax.adamw, ("b1", "b2", "eps", "weight_decay")),
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


# name -> builder of a step -> multiplier function
SCHEDULES = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
}


def segments(cfg) -> list[tuple[int, int]]:
    """The (first, end) epochs of each stretch the schedule runs over: one, unless restarted."""
    bounds = [0, *cfg.schedule.restarts, cfg.epochs]
    return list(zip(bounds, bounds[1:]))


def check_schedule(cfg) -> None:
    """Raise ConfigError for schedule settings that cannot work with this run's length."""
    schedule = cfg.schedule
    if schedule.name in ("step", "exponential") and not 0 < schedule.gamma <= 1:
        raise ConfigError(f"schedule.gamma must be in (0, 1], got {schedule.gamma}")
    restarts = list(schedule.restarts)
    if restarts != sorted(set(restarts)) or any(not 0 < epoch < cfg.epochs for epoch in restarts):
        raise ConfigError(f"schedule.restarts must be increasing epochs between 0 and epochs "
                          f"{cfg.epochs}, got {restarts}")
    shortest = min(end - first for first, end in segments(cfg))
    if schedule.name == "warmup_cosine" and schedule.warmup_epochs >= shortest:
        raise ConfigError(
            f"schedule.warmup_epochs {schedule.warmup_epochs} must be below epochs {shortest}"
        )
    if "end_factor" in schedule and not 0 <= schedule.end_factor <= 1:
        raise ConfigError(f"schedule.end_factor must be in [0, 1], got {schedule.end_factor}")


def effective_lr(cfg) -> float:
    """Return `lr`, scaled with the batch size when `optim.lr_scaling` asks (Goyal et al. 2017)."""
    ratio = cfg.batch_size / cfg.optim.base_batch_size
    factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[cfg.optim.lr_scaling]
    return cfg.lr * factor


def make_schedule(cfg, steps_per_epoch: int):
    """Return the lr multiplier as a function of the step count.

    After a restart (schedule.restarts) the schedule runs afresh over the remaining epochs.
    """
    build = SCHEDULES[cfg.schedule.name]
    pieces = [build(cfg.schedule, steps_per_epoch, (end - first) * steps_per_epoch)
              for first, end in segments(cfg)]
    if len(pieces) == 1:
        return pieces[0]
    return optax.join_schedules(pieces, [epoch * steps_per_epoch for epoch in cfg.schedule.restarts])


def make_optimizer(cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """Return the Optax transformation: clip -> optimizer (hyperparameters in its state) -> schedule."""
    build, fields = OPTIMIZERS[cfg.optim.name]
    hyper = {name: float(cfg.optim[name]) for name in fields}
    parts = []
    if cfg.optim.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.optim.clip_norm))
    parts.append(optax.inject_hyperparams(build)(learning_rate=effective_lr(cfg), **hyper))
    parts.append(optax.scale_by_schedule(make_schedule(cfg, steps_per_epoch)))
    return optax.chain(*parts)


def injected_hyperparams(opt_state) -> dict:
    """Return the injected hyperparameters (arrays) found in an optimizer state from make_optimizer."""
    for part in opt_state:
        if hasattr(part, "hyperparams"):  # InjectHyperparamsState or its stateful variant
            return part.hyperparams
    raise ValueError("optimizer state holds no injected hyperparameters")
