"""An adaptive sweep's search: the space as Optuna distributions, its probe trial, and its
record in sweep.yaml. The rounds that ask, train and tell are dlrun/sweep/driver.py's.

1. The space (dlrun/sweep/search.py) and a probe trial are composed and checked, and an
   external storage is opened, before anything is written.
2. sweep.yaml records the space, so that the same command again continues the search and
   another one is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.sweep.folder import SWEEP_FILE, check_data, check_writable, read_sweep_record
from dlrun.sweep.plan import Plan, PlannedTrial, _plan_trial, _study_space
from dlrun.sweep.pruners import make_pruner
from dlrun.sweep.search import (
    SearchOptions,
    default_batch,
    default_metric,
    distributions,
    space_points,
    value_text,
)
from dlrun.text import clip


@dataclass
class Search:
    """The composed space of an adaptive sweep and what it optimises."""

    options: SearchOptions
    fixed: list
    variants: dict
    space: dict  # key -> Optuna distribution
    space_text: dict  # key -> its override text
    metric: str
    probe: PlannedTrial  # the space's low corner, composed and validated
    composed: dict  # Hydra compositions by config-group choice (see plan._compose_trial)

    def compose(self, number: int, params: dict) -> PlannedTrial:
        values = {key: value_text(params[key]) for key in self.space}
        return _plan_trial(number, values, self.fixed, self.variants, self.composed)

    def batch(self, size_limit=None) -> int:
        """Trials asked at a time: --batch, else what lets the sampler learn (search.py)."""
        fits = max(1, size_limit(self.probe.cfg)) if size_limit else self.options.trials
        return self.options.batch or default_batch(self.options.search, self.options.trials, fits)

    def describe(self, size_limit=None) -> str:
        options = self.options
        space = ", ".join(f"{key}={text}" for key, text in self.space_text.items())
        pruning = "no pruning" if options.pruner == "none" else f"{options.pruner} pruner"
        return (
            f"{options.search} search, {options.trials} trials asked "
            f"{self.batch(size_limit)} at a time, {self.metric}, {pruning}: {space}"
        )

    def record(self) -> dict:
        return {
            "mode": self.options.search,
            "seed": self.options.seed,
            "base": self.fixed,
            "space": self.space_text,
            "metric": self.metric,
            "trials": [],
        }


def _corner(dist):
    return dist.choices[0] if hasattr(dist, "choices") else dist.low


def _edges(dist) -> list:
    """The values of a distribution beyond its corner that may be refused: every other choice
    of a categorical (each its own value), the high end of a range (a bound the low one is not)."""
    return list(dist.choices[1:]) if hasattr(dist, "choices") else [dist.high]


def _check_edges(space: dict, space_text: dict, corner: dict, compose) -> None:
    """Compose and validate each edge of the space, the other keys at the corner, as the grid
    validates each of its trials: a value that cannot run is refused before the first ask,
    not asked for again and again as a FAILed trial."""
    for key, dist in space.items():
        for value in _edges(dist):
            try:
                compose({**corner, key: value_text(value)})
            except ConfigError as error:
                # the suffix names the values composed (the corner's too), not a trial of the study
                why = str(error).partition(" (trial 0: ")[0]
                what = "choice" if hasattr(dist, "choices") else "end"
                raise ConfigError(
                    f"{key}={clip(space_text[key])}: the {what} {clip(value_text(value))} cannot run: {why}"
                ) from None


def prepare(overrides: list[str], options: SearchOptions) -> Search:
    """Parse and check the space: its low corner composed (the probe trial, returned in the
    Search) and each other choice and end validated. Raises ConfigError."""
    from dlrun import data

    options.check()
    fixed, swept, variants = _study_space(overrides)
    space = distributions(swept)
    space_text = {key: override.input_line.partition("=")[2] for key, override in swept.items()}
    composed: dict = {}
    corner = {key: value_text(_corner(d)) for key, d in space.items()}
    probe = _plan_trial(0, corner, fixed, variants, composed)
    _check_edges(space, space_text, corner, lambda values: _plan_trial(0, values, fixed, variants, composed))
    metric = options.metric or default_metric(data.describe(probe.cfg.data).task)
    make_pruner(options.pruner, options.min_epochs, int(probe.cfg.epochs))  # bad bounds: refused now
    return Search(options, fixed, variants, space, space_text, metric, probe, composed)


def study_name(out: Path, options: SearchOptions) -> str:
    """--study, else the name the sweep recorded when it began (a copied folder keeps it),
    else the folder's name."""
    recorded = read_sweep_record(out) if (Path(out) / SWEEP_FILE).exists() else None
    return options.study or (recorded or {}).get("study") or Path(out).resolve().name


def write_record(out: Path, search: Search, command: str, study: str) -> None:
    """Write sweep.yaml, or check that the adaptive sweep already in `out` is this one."""
    check_writable(out)
    check_data(Plan(search.fixed, search.space_text, "probe", [search.probe], []))
    previous = read_sweep_record(out)
    described = search.record()
    if previous is not None:
        before = {key: previous["plan"].get(key) for key in ("mode", "base", "space", "metric")}
        if before != {key: described[key] for key in before}:
            raise ConfigError(
                f"--out {out} holds a different sweep ({previous.get('command')}); use another folder"
            )
        return
    # `search` and `metric` at the top, where the report's search progress reads them; `budget`
    # (the trials it will run, no more than the space holds) is how `dlrun watch` tells its end
    points = space_points(search.space)
    record = {
        "id": uuid.uuid4().hex,
        "study": study,
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "search": search.options.search,
        "metric": search.metric,
        "budget": search.options.trials if points is None else min(points, search.options.trials),
        "plan": described,
    }
    results.atomic_write_text(Path(out) / SWEEP_FILE, yaml.safe_dump(record, sort_keys=False))
