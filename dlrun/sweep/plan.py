"""The sweep planner: Hydra sweep overrides -> trials -> groups that share one program shape.

Pure Python, no JAX: a plan can be made, shown (`--dry-run`) and checked before anything
compiles. Expansion uses Hydra's own override parser (comma lists, range(), choice(),
interval(), glob(), tag(log, ...)). The grid is the cartesian product; with `--trials N` every
trial draws each swept key at random (seeded), log-uniformly for scale-like keys.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import typing
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from omegaconf import OmegaConf

from dlrun.sweep import studies
from dlrun.config.schema import Config, plain
from dlrun.errors import ConfigError
from dlrun.config.compose import group_options, parse_overrides, with_values
from dlrun.config.load import compose_config
from dlrun.config.validate import validate
from dlrun.training.hparams import TRIAL_KEYS

# Keys whose values span orders of magnitude: interval() draws them log-uniformly unless tagged
# `linear` (any key tagged `log` is drawn log-uniformly too).
LOG_SCALE_KEYS = frozenset({"lr", "optim.weight_decay", "optim.l2", "optim.eps", "init_scale"})

CONFIG_GROUPS = ("model", "data", "optim", "schedule")


@dataclass
class Trial:
    id: str
    overrides: list  # the full override list that composes this trial's config
    params: dict  # the swept keys and this trial's values
    cfg: object = field(repr=False, default=None)


@dataclass
class Group:
    id: str
    trials: list
    shape: dict  # a short description of the shared program

    @property
    def size(self) -> int:
        return len(self.trials)


@dataclass
class Plan:
    base: list  # overrides fixed for every trial
    space: dict  # swept key -> its override text
    mode: str  # grid | random
    trials: list
    groups: list
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "mode": self.mode, "seed": self.seed, "base": self.base, "space": self.space,
            "trials": [{"id": t.id, "params": t.params} for t in self.trials],
            "groups": [{"id": g.id, "trials": [t.id for t in g.trials], "shape": g.shape}
                       for g in self.groups],
        }


def _glob_choices(key: str, pattern: Glob) -> list[str]:
    from dlrun.models import activations, inits
    from dlrun.training import losses

    registries = {"init": inits.INITS, "bias_init": inits.BIAS_INITS,
                  "activation": activations.ACTIVATIONS, "loss": losses.LOSSES}
    if key in CONFIG_GROUPS:
        names = group_options(key)
    elif key in registries:
        names = list(registries[key])
    else:
        raise ConfigError(f"glob() works on {', '.join([*CONFIG_GROUPS, *registries])}, not '{key}'")
    chosen = pattern.filter(names)
    if not chosen:
        raise ConfigError(f"glob({','.join(pattern.include)}) matches no {key} (choose from: "
                          f"{', '.join(names)})")
    return chosen


def parse_space(overrides: list[str]) -> tuple[list[str], dict]:
    """Split overrides into fixed ones and swept ones, parsed by Hydra's own grammar.

    Returns (fixed override strings, {key: parsed Override}). Raises ConfigError on bad syntax.
    """
    fixed, swept = [], {}
    for override in parse_overrides(overrides):
        if override.is_sweep_override():
            swept[override.get_key_element()] = override
        else:
            fixed.append(override.input_line)
    return fixed, swept


def _discrete_values(key: str, override) -> list[str]:
    if isinstance(override.value(), Glob):
        return _glob_choices(key, override.value())
    values = list(override.sweep_string_iterator())
    if not values:  # e.g. range(5,1): Hydra's range() counts up unless given a negative step
        raise ConfigError(f"{override.input_line} is empty: give at least one value, e.g. "
                          f"{key}=range(1,5) or {key}=1,2,3")
    return values


def _check_interval(key: str, override) -> None:
    low, high = override.value().start, override.value().end
    if not low < high:
        raise ConfigError(f"{override.input_line}: an interval's start must be below its end, "
                          f"e.g. {key}=interval({min(low, high):g},{max(low, high):g})")


def _is_log(key: str, override) -> bool:
    tags = override.value().tags
    return "log" in tags or (key in LOG_SCALE_KEYS and "linear" not in tags)


def _draw(key: str, override, rng: random.Random) -> str:
    if not override.is_interval_sweep():
        return rng.choice(_discrete_values(key, override))
    low, high = override.value().start, override.value().end
    if _is_log(key, override):
        if low <= 0:
            raise ConfigError(f"{key}: a log-scale interval needs a positive start, got {low}")
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    if _is_integer_key(key):
        return str(int(round(value)))
    return repr(float(f"{value:.6g}"))


def _is_integer_key(key: str) -> bool:
    """Whether the schema types `key` as an integer (Hydra's interval() always yields floats)."""
    schema = Config
    for part in key.split("."):
        hints = typing.get_type_hints(schema)
        if part not in hints:
            return False
        schema = hints[part]
    return schema is int or typing.get_args(schema)[:1] == (int,)


def expand(swept: dict, trials: int | None, seed: int) -> list[dict]:
    """Return one {key: value text} per trial: the grid, or `trials` seeded random draws."""
    if not swept:
        if trials is not None:  # every draw would be the same config: N copies of one run
            raise ConfigError(f"--trials {trials} needs a swept key to draw, such as "
                              "lr='interval(1e-4,1e-1)'; for repeats write seed='range(N)'")
        return [{}]
    intervals = [key for key, override in swept.items() if override.is_interval_sweep()]
    for key in intervals:
        _check_interval(key, swept[key])
    if trials is None:
        if intervals:
            raise ConfigError(f"interval() for '{intervals[0]}' is random search: add --trials N")
        values = {key: _discrete_values(key, override) for key, override in swept.items()}
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    rng = random.Random(seed)
    return [{key: _draw(key, override, rng) for key, override in swept.items()}
            for _ in range(trials)]


def shape_key(cfg) -> dict:
    """Return the part of a config that fixes the compiled program (everything but TRIAL_KEYS)."""
    container = plain(cfg)
    for key in TRIAL_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = container[parent] if parent else container
        node.pop(leaf, None)
    return container


def describe_shape(cfg) -> dict:
    return {"model": cfg.model.name, "data": cfg.data.name, "batch_size": cfg.batch_size,
            "activation": cfg.activation, "optim": cfg.optim.name, "epochs": cfg.epochs}


def group_trials(trials: list[Trial], max_group: int | None) -> list[Group]:
    """Group trials whose configs share a program shape, split into chunks of `max_group`."""
    by_shape: dict[str, list[Trial]] = {}
    for trial in trials:
        by_shape.setdefault(json.dumps(shape_key(trial.cfg), sort_keys=True), []).append(trial)
    groups = []
    for members in by_shape.values():
        limit = max_group or len(members)
        for start in range(0, len(members), limit):
            chunk = members[start:start + limit]
            groups.append(Group(f"g{len(groups):03d}", chunk, describe_shape(chunk[0].cfg)))
    return groups


def _compose_trial(fixed: list[str], values: dict, composed: dict):
    """Compose a trial's config: Hydra once per choice of config groups, then plain key updates.

    Hydra's compose costs ~0.3 s; a sweep of 64 learning rates would spend 20 s composing.
    """
    parser = OverridesParser.create()
    groups = {key: value for key, value in values.items() if key in CONFIG_GROUPS}
    cache_key = (tuple(fixed), tuple(sorted(groups.items())))
    if cache_key not in composed:
        group_overrides = [f"{key}={value}" for key, value in groups.items()]
        composed[cache_key] = compose_config([*fixed, *group_overrides], check=False)
    updates = {key: parser.parse_override(f"{key}={value}").value()
               for key, value in values.items() if key not in CONFIG_GROUPS}
    cfg = with_values(composed[cache_key], updates)
    validate(cfg)
    return cfg


def parser_for(key: str, names) -> object:
    """A parsed sweep over `names`, as Hydra's parser gives for `key=choice(a,b,c)`."""
    # choice() stays a sweep with a single name too (`a` alone would parse as a plain value)
    return OverridesParser.create().parse_override(f"{key}=choice({','.join(names)})")


def make_plan(overrides: list[str], *, trials: int | None = None, seed: int = 0,
              max_group: int | None = None) -> Plan:
    """Expand, compose and validate every trial, then group them. Raises ConfigError."""
    overrides, variants = studies.resolve(overrides)
    fixed, swept = parse_space(overrides)
    chosen = [o.partition("=")[2] for o in fixed if o.startswith(f"{studies.VARIANT_KEY}=")]
    fixed = [o for o in fixed if not o.startswith(f"{studies.VARIANT_KEY}=")]
    if chosen:  # `variant=dropout` alone runs that one variant
        swept[studies.VARIANT_KEY] = parser_for(studies.VARIANT_KEY, chosen)
    if variants:
        swept.setdefault(studies.VARIANT_KEY, parser_for(studies.VARIANT_KEY, variants))
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    draws = expand(swept, trials, seed)
    planned, composed = [], {}
    for index, values in enumerate(draws):
        variant = variants.get(values.get(studies.VARIANT_KEY), [])
        if values.get(studies.VARIANT_KEY) is not None and values[studies.VARIANT_KEY] not in variants:
            raise ConfigError(f"unknown variant '{values[studies.VARIANT_KEY]}' "
                              f"(choose from: {', '.join(variants) or 'none in this study'})")
        settings = {k: v for k, v in values.items() if k != studies.VARIANT_KEY}
        trial_overrides = [*fixed, *variant, *(f"{key}={value}" for key, value in settings.items())]
        try:
            cfg = _compose_trial([*fixed, *variant], settings, composed)
        except ConfigError as error:
            where = f" (trial {index}: {', '.join(f'{k}={v}' for k, v in values.items())})"
            raise ConfigError(f"{error}{where if values else ''}") from None
        planned.append(Trial(f"trial-{index:03d}", trial_overrides, values, cfg))
    space = {key: override.input_line.partition("=")[2] for key, override in swept.items()}
    return Plan(fixed, space, "random" if trials is not None else "grid", planned,
                group_trials(planned, max_group), seed)
