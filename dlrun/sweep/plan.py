"""The sweep planner: the space's values -> composed trials -> groups that share one program shape.

Pure Python, no JAX: a plan can be made, shown (`--dry-run`) and checked before anything
compiles. Planning happens once: the groups made here (split to a size limit the caller
passes in, e.g. what fits the device's memory) are the groups the executor runs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob

from dlrun.config.compose import with_values
from dlrun.config.load import compose_config
from dlrun.config.validate import validate
from dlrun.errors import ConfigError
from dlrun.sweep import experiments
from dlrun.sweep.space import CONFIG_GROUPS, expand, parse_space, parser_for
from dlrun.text import clip
from dlrun.training.hparams import shape_key


@dataclass
class PlannedTrial:
    """One point of the sweep, composed and validated (training's own trial is another class)."""

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
    notes: list = field(default_factory=list)  # one line each, for the user: duplicates dropped
    # what the search was asked for beyond its space (PBT: its metric and schedule), for the report
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "base": self.base,
            "space": self.space,
            **({"settings": self.settings} if self.settings else {}),
            "trials": [{"id": t.id, "params": t.params} for t in self.trials],
            "groups": [
                {"id": g.id, "trials": [t.id for t in g.trials], "shape": g.shape} for g in self.groups
            ],
        }


def describe_shape(cfg) -> dict:
    return {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "batch_size": cfg.batch_size,
        "activation": cfg.activation,
        "optim": cfg.optim.name,
        "epochs": cfg.epochs,
    }


def group_trials(
    trials: list[PlannedTrial], size_limit: Callable[[object], int] | None = None
) -> list[Group]:
    """Group trials whose configs share a program shape, each group split into chunks of at
    most `size_limit(cfg)` trials (asked once per shape; None: no limit)."""
    by_shape: dict[str, list[PlannedTrial]] = {}
    for trial in trials:
        by_shape.setdefault(json.dumps(shape_key(trial.cfg), sort_keys=True), []).append(trial)
    groups = []
    for members in by_shape.values():
        limit = size_limit(members[0].cfg) if size_limit else len(members)
        for start in range(0, len(members), max(1, limit)):
            chunk = members[start : start + max(1, limit)]
            groups.append(Group(f"g{len(groups):03d}", chunk, describe_shape(chunk[0].cfg)))
    return groups


def _compose_trial(fixed: list[str], values: dict, composed: dict):
    """Compose a trial's config: Hydra once per choice of config groups, then plain key updates.

    Hydra's compose costs ~0.3 s; a sweep of 64 learning rates would spend 20 s composing.
    """
    parser = OverridesParser.create()
    # a swept `+key` (a field of the user's module) adds a key: Hydra composes it, like a group
    by_hydra = lambda key: key in CONFIG_GROUPS or key.startswith("+")  # noqa: E731
    groups = {key: value for key, value in values.items() if by_hydra(key)}
    cache_key = (tuple(fixed), tuple(sorted(groups.items())))
    if cache_key not in composed:
        group_overrides = [f"{key}={value}" for key, value in groups.items()]
        composed[cache_key] = compose_config([*fixed, *group_overrides], check=False)
    updates = {
        key: parser.parse_override(f"{key}={value}").value()
        for key, value in values.items()
        if not by_hydra(key)
    }
    cfg = with_values(composed[cache_key], updates)
    # the base's schema check holds for every trial once one passed (the same keys are set on
    # it each time): later trials check only their values
    checked = ("checked", cache_key)
    validate(cfg, updates if checked in composed else None)
    composed[checked] = True
    return cfg


def _study_space(overrides: list[str]) -> tuple[list[str], dict, dict]:
    """Resolve `experiment=` and `variant=`: (fixed overrides, swept keys, the study's variants)."""
    overrides, variants = experiments.resolve(overrides)
    fixed, swept = parse_space(overrides)
    chosen = [o.partition("=")[2] for o in fixed if o.startswith(f"{experiments.VARIANT_KEY}=")]
    fixed = [o for o in fixed if not o.startswith(f"{experiments.VARIANT_KEY}=")]
    if chosen:  # `variant=dropout` alone runs that one variant
        swept[experiments.VARIANT_KEY] = parser_for(experiments.VARIANT_KEY, chosen)
    if variants:
        swept.setdefault(experiments.VARIANT_KEY, parser_for(experiments.VARIANT_KEY, variants))
    return fixed, swept, variants


def _plan_trial(index: int, values: dict, fixed: list, variants: dict, composed: dict) -> PlannedTrial:
    chosen = values.get(experiments.VARIANT_KEY)
    if chosen is not None and chosen not in variants:
        raise ConfigError(
            f"unknown variant '{chosen}' (choose from: {', '.join(variants) or 'none in this study'})"
        )
    variant = variants.get(chosen, [])
    settings = {k: v for k, v in values.items() if k != experiments.VARIANT_KEY}
    trial_overrides = [*fixed, *variant, *(f"{key}={value}" for key, value in settings.items())]
    try:
        cfg = _compose_trial([*fixed, *variant], settings, composed)
    except ConfigError as error:
        where = f" (trial {index}: {', '.join(f'{k}={clip(v)}' for k, v in values.items())})"
        raise ConfigError(f"{error}{where if values else ''}") from None
    return PlannedTrial(f"trial-{index:03d}", trial_overrides, values, cfg)


def make_plan(
    overrides: list[str],
    *,
    trials: int | None = None,
    seed: int = 0,
    max_group: int | None = None,
    size_limit: Callable[[object], int] | None = None,
) -> Plan:
    """Expand, compose and validate every trial, then group them. Raises ConfigError.

    A group holds at most `max_group` trials when given, else at most `size_limit(cfg)` for
    its shape (the CLI passes what fits the device's memory; the planner itself needs no JAX).
    """
    fixed, swept, variants = _study_space(overrides)
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    points, notes = expand(swept, trials, seed), []
    if trials is None:  # a random search's draws may repeat: they are its budget, as asked
        points, notes = _distinct(points, swept)
    composed: dict = {}
    planned = [_plan_trial(index, values, fixed, variants, composed) for index, values in enumerate(points)]
    if max_group is not None:
        size_limit = lambda cfg: max_group  # noqa: E731 (the flag wins over any estimate)
    space = {key: override.input_line.partition("=")[2] for key, override in swept.items()}
    return Plan(
        fixed,
        space,
        "random" if trials is not None else "grid",
        planned,
        group_trials(planned, size_limit),
        seed,
        notes,
    )


def _distinct(points: list[dict], swept: dict) -> tuple[list[dict], list[str]]:
    """The grid's points without repeats (a repeat trains the same run again: the seed is one of
    the values), and a note for each swept key that lists a value more than once. Dropped
    before numbering, so the same command names the same trial folders."""
    kept, seen = [], set()
    for values in points:
        key = tuple(sorted(values.items()))  # Hydra's texts: 1e-1 is listed as 0.1
        if key not in seen:
            seen.add(key)
            kept.append(values)
    return kept, [note for override in swept.values() for note in _repeats(override)]


def _repeats(override) -> list[str]:
    """'lr=0.1,0.1 lists 0.1 twice: the duplicate trial is dropped', one per repeated value."""
    if not override.is_discrete_sweep() or isinstance(override.value(), Glob):
        return []  # an interval draws its values; a glob matches each name once
    counts = Counter(override.sweep_string_iterator())
    return [
        f"{clip(override.input_line)} lists {clip(value)} {_times(count)}"
        for value, count in counts.items()
        if count > 1
    ]


def _times(count: int) -> str:
    if count == 2:
        return "twice: the duplicate trial is dropped"
    return f"{count} times: the duplicate trials are dropped"
