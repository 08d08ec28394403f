"""The per-trial hyperparameters: the config keys whose values may differ inside one group.

A group of trials is one compiled program vmapped over a leading trial axis of the training
state, so a value can differ between its trials only if it reaches the training through the
state (or through how the state is first drawn). This table is the one place that says which
keys those are and how each gets there; the planner groups by it, the group runner builds each
trial's state from it, and the metrics read the values back from the state. A key left out is
safe (it starts a new group); a key listed that did not reach the state would train the whole
group with the first trial's value, which `tests/test_hparams.py` checks for every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf

from dlrun import optim
from dlrun.config.schema import plain
from dlrun.targets import names_code

# How a value reaches the training of its trial.
OPTIMIZER = "optimizer"  # injected into the optimizer state (optax.inject_hyperparams)
STATE = "state"  # a traced number in the state's `hparams`, read by the step
INIT = "init"  # how the trial's parameters are first drawn
RANDOM = "random"  # the trial's random keys: initialisation, shuffling, dropout, noise
ORDER = "order"  # the order of its batches: a group shares them when all its trials agree
HOST = "host"  # read only by the host loop (early stopping) or bookkeeping (the run's name)


@dataclass(frozen=True)
class TrialHparam:
    key: str  # dotted config key; a section name covers every key under it
    reaches: str  # one of the six ways above
    name: str | None = None  # its name in the state: an injected hyperparameter or hparams key
    # the program flag compiled in when any trial of the group has a non-zero value (a zero is
    # then a no-op), so a group that never uses dropout pays nothing for it
    compiled_flag: str | None = None


TRIAL_HPARAMS = (
    TrialHparam("lr", OPTIMIZER, "learning_rate"),
    # the batch-size scaling of the lr is folded into the injected learning rate
    TrialHparam("optim.lr_scaling", OPTIMIZER, "learning_rate"),
    TrialHparam("optim.base_batch_size", OPTIMIZER, "learning_rate"),
    TrialHparam("optim.momentum", OPTIMIZER, "momentum"),
    TrialHparam("optim.b1", OPTIMIZER, "b1"),
    TrialHparam("optim.b2", OPTIMIZER, "b2"),
    TrialHparam("optim.eps", OPTIMIZER, "eps"),
    TrialHparam("optim.decay", OPTIMIZER, "decay"),
    TrialHparam("optim.weight_decay", OPTIMIZER, "weight_decay"),
    TrialHparam("optim.l2", STATE, "l2"),
    TrialHparam("model.dropout", STATE, "dropout", compiled_flag="use_dropout"),
    TrialHparam("augment.noise_std", STATE, "noise_std", compiled_flag="use_noise"),
    TrialHparam("init", INIT),
    TrialHparam("init_scale", INIT),
    TrialHparam("bias_init", INIT),
    TrialHparam("bias_scale", INIT),
    TrialHparam("seed", RANDOM),
    TrialHparam("data_seed", ORDER),
    TrialHparam("early_stopping", HOST),
    TrialHparam("name", HOST),
)

# Left out on purpose, so each value starts a group: model.trainable changes the optimizer's
# structure (dlrun/training/transfer.py), and init_from, which could reach the state as an INIT
# key, would need a source run per value in tests/test_hparams.py's two-trial check.

TRIAL_KEYS = frozenset(entry.key for entry in TRIAL_HPARAMS)


def _value(cfg, key: str):
    return OmegaConf.select(cfg, key)


def _reaches(entry: TrialHparam, cfg) -> bool:
    """Whether an entry reaches this config's training as the table says: a user's module
    takes its fields (a `model.dropout` among them) as arguments, compiled into the program;
    task=denoise compiles its noise in, since the evaluation's inputs carry it too."""
    if entry.key == "augment.noise_std" and str(cfg.get("task", "auto")) == "denoise":
        return False
    return not (entry.key.startswith("model.") and names_code(cfg["model"]))


def state_hparams(cfg) -> dict:
    """The numbers a trial carries in its state's `hparams` (the step reads them traced)."""
    return {
        entry.name: float(_value(cfg, entry.key)) if _reaches(entry, cfg) else 0.0
        for entry in TRIAL_HPARAMS
        if entry.reaches == STATE
    }


def init_scheme(cfg) -> tuple:
    """The values that decide how a trial's parameters are drawn (trials alike share one init)."""
    return tuple(str(_value(cfg, entry.key)) for entry in TRIAL_HPARAMS if entry.reaches == INIT)


def shape_key(cfg) -> dict:
    """Return the part of a config that fixes the compiled program (everything but TRIAL_KEYS)."""
    container = plain(cfg)
    for key in (entry.key for entry in TRIAL_HPARAMS if _reaches(entry, container)):
        parent, _, leaf = key.rpartition(".")
        node = container[parent] if parent else container
        node.pop(leaf, None)
    return container


def compiled_flags(cfgs: list) -> dict:
    """{flag: whether any trial of the group needs it compiled in}."""
    return {
        entry.compiled_flag: any(_reaches(entry, cfg) and _value(cfg, entry.key) > 0 for cfg in cfgs)
        for entry in TRIAL_HPARAMS
        if entry.compiled_flag
    }


def injected_names() -> frozenset:
    """The optimizer hyperparameters the table says are injected (besides the learning rate)."""
    return frozenset(
        entry.name for entry in TRIAL_HPARAMS if entry.reaches == OPTIMIZER and entry.name != "learning_rate"
    )


# The ways by which a value can change while a trial trains (population-based training): the
# others fix how it starts (init, random keys, batch order) or live on the host.
MUTABLE = (OPTIMIZER, STATE)


def entry_for(key: str) -> TrialHparam | None:
    return next((entry for entry in TRIAL_HPARAMS if entry.key == key), None)


def is_mutable(key: str) -> bool:
    """Whether a key's value can change mid-run by a write into the state."""
    entry = entry_for(key)
    return entry is not None and entry.reaches in MUTABLE


def reached_values(cfg, keys) -> dict:
    """{(OPTIMIZER or STATE, name in the state): value} that `keys` give this config: what a
    write into the state must hold for the trial to train on as if it had started with `cfg`."""
    injected, numbers = optim.injected_values(cfg), state_hparams(cfg)
    reached = {}
    for entry in (entry_for(key) for key in keys):
        held = injected if entry.reaches == OPTIMIZER else numbers
        if entry.name in held:
            reached[(entry.reaches, entry.name)] = float(held[entry.name])
    return reached
