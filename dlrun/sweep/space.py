"""The sweep space: Hydra's sweep grammar -> the values of each trial.

Pure Python, no JAX. Expansion uses Hydra's own override parser (comma lists, range(),
choice(), interval(), glob(), tag(log, ...)). The grid is the cartesian product; with
`--trials N` every trial draws each swept key at random (seeded), log-uniformly for scale-like
keys.
"""

from __future__ import annotations

import itertools
import math
import random
import typing

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob

from dlrun.config.compose import group_options, needs_a_value, parse_overrides
from dlrun.config.options import OPTION_SCHEMAS
from dlrun.config.schema import Config
from dlrun.errors import ConfigError

# Keys whose values span orders of magnitude: interval() draws them log-uniformly unless tagged
# `linear` (any key tagged `log` is drawn log-uniformly too).
LOG_SCALE_KEYS = frozenset({"lr", "optim.weight_decay", "optim.l2", "optim.eps", "init_scale"})

# Keys that pick a config group option (composed by Hydra), not a value set on a composed config.
CONFIG_GROUPS = ("model", "data", "optim", "schedule")


def _glob_choices(key: str, pattern: Glob) -> list[str]:
    from dlrun.models import activations, inits, losses

    registries = {
        "init": inits.INITS,
        "bias_init": inits.BIAS_INITS,
        "activation": activations.ACTIVATIONS,
        "loss": losses.LOSSES,
    }
    if key in CONFIG_GROUPS:
        # an option with a field the user must give (`model=user`'s `_target_`, a data file's
        # `path`) is no choice until it is given
        names = [name for name in group_options(key) if not needs_a_value(key, name)]
    elif key in registries:
        names = list(registries[key])
    else:
        raise ConfigError(f"glob() works on {', '.join([*CONFIG_GROUPS, *registries])}, not '{key}'")
    chosen = pattern.filter(names)
    if not chosen:
        raise ConfigError(
            f"glob({','.join(pattern.include)}) matches no {key} (choose from: {', '.join(names)})"
        )
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


def parser_for(key: str, names) -> object:
    """A parsed sweep over `names`, as Hydra's parser gives for `key=choice(a,b,c)`."""
    # choice() stays a sweep with a single name too (`a` alone would parse as a plain value)
    return OverridesParser.create().parse_override(f"{key}=choice({','.join(names)})")


def _discrete_values(key: str, override) -> list[str]:
    if isinstance(override.value(), Glob):
        return _glob_choices(key, override.value())
    values = list(override.sweep_string_iterator())
    if not values:  # e.g. range(5,1): Hydra's range() counts up unless given a negative step
        raise ConfigError(
            f"{override.input_line} is empty: give at least one value, e.g. {key}=range(1,5) or {key}=1,2,3"
        )
    return values


def _check_interval(key: str, override) -> None:
    low, high = override.value().start, override.value().end
    if not low < high:
        raise ConfigError(
            f"{override.input_line}: an interval's start must be below its end, "
            f"e.g. {key}=interval({min(low, high):g},{max(low, high):g})"
        )


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
    if is_integer_key(key):
        return str(int(round(value)))
    return repr(float(f"{value:.6g}"))


def is_integer_key(key: str) -> bool:
    """Whether the schema types `key` as an integer (Hydra's interval() always yields floats).

    A key inside a config group is typed by the options that have it (`data.n_samples`).
    """
    group, _, field = key.partition(".")
    if group in OPTION_SCHEMAS and field:
        return any(
            _is_int(typing.get_type_hints(schema).get(field)) for schema in OPTION_SCHEMAS[group].values()
        )
    return _is_int(typing.get_type_hints(Config).get(key))


def _is_int(hint) -> bool:
    return hint is int or typing.get_args(hint)[:1] == (int,)


def expand(swept: dict, trials: int | None, seed: int) -> list[dict]:
    """Return one {key: value text} per trial: the grid, or `trials` seeded random draws."""
    if not swept:
        if trials is not None:  # every draw would be the same config: N copies of one run
            raise ConfigError(
                f"--trials {trials} needs a swept key to draw, such as "
                "lr='interval(1e-4,1e-1)'; for repeats write seed='range(N)'"
            )
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
    return [{key: _draw(key, override, rng) for key, override in swept.items()} for _ in range(trials)]
