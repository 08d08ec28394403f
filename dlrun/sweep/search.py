"""Adaptive search: the sweep grammar as an Optuna search space, the samplers, the options.

The space is the one `dlrun sweep` already parses (dlrun/sweep/space.py): `interval()` is a
float (log scale for the scale-like keys, `tag(log|linear)` wins), an interval over an integer
key is an int, a comma list or `choice()` is categorical, `range()` over integers is an int with
its step. `glob()` only names a grid's options, so a sampler refuses it and says which names it
matches. `--search grid|random` stay today's planner (dlrun/sweep/plan.py); only the samplers
named in SAMPLERS go through Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hydra.core.override_parser.types import Glob, RangeSweep

from dlrun.config.validate import SEED_RANGE, check_flag_range
from dlrun.errors import ConfigError
from dlrun.objectives import direction, directions, metric_names  # noqa: F401 (re-exported)
from dlrun.sweep.pbt import PbtOptions
from dlrun.sweep.space import _check_interval, _discrete_values, _is_log, is_integer_key

# Samplers run through an Optuna study; `grid` and `random` are today's planner.
SAMPLERS = ("tpe", "cmaes", "qmc", "nsga2")
# `pbt`: population-based training, one vectorised group that copies and perturbs its members
SEARCHES = ("grid", "random", *SAMPLERS, "pbt")
PRUNERS = ("none", "median", "sha", "hyperband")  # dlrun/sweep/pruners.py's registry
PBT_FLAGS = ("population", "perturb_every", "quantile", "resample")
# What a study can optimise: a summary's numbers that exist after every epoch too (so a pruner
# can judge them), and the costs a multi-objective search trades them against.
EPOCH_METRICS = ("best_val_accuracy", "best_val_loss")
METRICS = (*EPOCH_METRICS, "params", "train_time_s")
# Samplers that optimise several metrics at once (CMA-ES adapts one objective's covariance).
MULTI_OBJECTIVE = ("nsga2", "tpe", "qmc")
# Hyperband's bracket studies load the study's directions afresh from the storage, which a
# study of several directions refuses (Optuna has no pruning for several: its issue #3450).
SINGLE_OBJECTIVE_PRUNERS = ("hyperband",)


@dataclass
class SearchOptions:
    """What `dlrun sweep` was asked for beyond the overrides (plain data, so it pickles)."""

    search: str | None = None  # None: grid, or random when --trials is given (today's rule)
    trials: int | None = None
    seed: int = 0
    batch: int | None = None  # trials asked at a time (None: what fits memory)
    # None: best_val_accuracy, or best_val_loss for regression; "a,b": a multi-objective search
    metric: str | None = None
    pruner: str = "none"
    min_epochs: int = 1
    storage: str | None = None  # None: sqlite:///<out>/study.db
    study: str | None = None  # None: the sweep folder's name
    # --search pbt (None: dlrun/sweep/pbt.py's defaults, Ray Tune's)
    population: int | None = None
    perturb_every: int | None = None
    quantile: float | None = None
    resample: float | None = None

    @property
    def adaptive(self) -> bool:
        return self.search in SAMPLERS

    @property
    def pbt(self) -> PbtOptions:
        given = {name: getattr(self, name) for name in PBT_FLAGS if getattr(self, name) is not None}
        return PbtOptions(**given)

    def _check_pbt(self) -> None:
        given = [name for name in PBT_FLAGS if getattr(self, name) is not None]
        if self.search != "pbt":
            if given:
                raise ConfigError(f"--{given[0].replace('_', '-')} needs --search pbt")
            return
        for flag, value in (
            ("--trials", self.trials),
            ("--batch", self.batch),
            ("--pruner", self.pruner != "none"),
        ):
            if value:
                raise ConfigError(f"{flag} is not an option of --search pbt (it trains --population members)")
        self.pbt.check()

    def _check_metrics(self) -> None:
        names = metric_names(self.metric)
        for name in names:
            if name not in METRICS:
                raise ConfigError(f"unknown --metric '{name}' (choose from: {', '.join(METRICS)})")
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated:
            raise ConfigError(f"--metric {self.metric} names {repeated} twice; give each metric once")
        if self.pruner != "none" and names[0] not in EPOCH_METRICS:
            raise ConfigError(
                f"--pruner {self.pruner} judges the first --metric each epoch, and {names[0]} has no "
                f"per-epoch value: put one of {', '.join(EPOCH_METRICS)} first"
            )
        if len(names) == 1:
            return
        if self.search == "pbt":
            raise ConfigError(f"--search pbt ranks its members by one metric, got --metric {self.metric}")
        if self.search not in MULTI_OBJECTIVE:
            raise ConfigError(
                f"--search {self.search} optimises one metric; for --metric {self.metric} "
                f"use --search {'|'.join(MULTI_OBJECTIVE)}"
            )
        if self.pruner in SINGLE_OBJECTIVE_PRUNERS:
            raise ConfigError(
                f"--pruner {self.pruner} cannot judge a study of several metrics; use --pruner "
                f"{'|'.join(p for p in PRUNERS if p not in SINGLE_OBJECTIVE_PRUNERS)} (they judge the first)"
            )

    def check(self) -> None:
        """Refuse options that contradict each other, in one line each (ConfigError)."""
        if self.search is not None and self.search not in SEARCHES:
            raise ConfigError(f"unknown --search '{self.search}' (choose from: {', '.join(SEARCHES)})")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown --pruner '{self.pruner}' (choose from: {', '.join(PRUNERS)})")
        if self.adaptive and self.trials is None:
            raise ConfigError(f"--search {self.search} needs a budget: add --trials N")
        if self.search == "grid" and self.trials is not None:
            raise ConfigError(
                f"--search grid runs every combination; drop --trials {self.trials} or use --search random"
            )
        if self.search == "random" and self.trials is None:
            raise ConfigError("--search random draws trials: add --trials N")
        self._check_pbt()
        if not self.adaptive:
            extra = [
                flag
                for flag, value in (
                    ("--pruner", self.pruner != "none"),
                    ("--batch", self.batch),
                    ("--metric", self.metric and self.search != "pbt"),
                    ("--storage", self.storage),
                    ("--study", self.study),
                )
                if value
            ]
            if extra:
                raise ConfigError(f"{extra[0]} needs an adaptive search: add --search {'|'.join(SAMPLERS)}")
        if self.metric is not None:
            self._check_metrics()
        counts = (("--trials", self.trials), ("--batch", self.batch), ("--min-epochs", self.min_epochs))
        for flag, value in counts:
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
            check_flag_range(flag, value)
        # Optuna's samplers seed numpy's MT19937, which takes 32 bits
        check_flag_range("--search-seed", self.seed, *SEED_RANGE, why="what numpy's MT19937 takes")


def distribution(key: str, override):
    """The Optuna distribution of one swept key. Raises ConfigError for a grid-only value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    if isinstance(value, Glob):
        names = _discrete_values(key, override)
        raise ConfigError(
            f"{override.input_line}: glob() is grid-only, a sampler needs the "
            f"choices written out, e.g. {key}=choice({','.join(names)})"
        )
    if override.is_interval_sweep():
        _check_interval(key, override)
        log = _is_log(key, override)
        if log and value.start <= 0:
            raise ConfigError(f"{key}: a log-scale interval needs a positive start, got {value.start}")
        if is_integer_key(key):
            return IntDistribution(int(round(value.start)), int(round(value.end)), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    values = _discrete_values(key, override)
    if isinstance(value, RangeSweep) and all(isinstance(v, int) for v in (value.start, value.step)):
        numbers = [int(v) for v in values]
        return IntDistribution(min(numbers), max(numbers), step=abs(int(value.step)))
    return CategoricalDistribution(values)


def distributions(swept: dict) -> dict:
    """{key: Optuna distribution} for the swept keys (their order kept)."""
    if not swept:
        raise ConfigError("an adaptive search needs a swept key, e.g. lr='interval(1e-4,1e-1)'")
    return {key: distribution(key, override) for key, override in swept.items()}


def space_points(space: dict) -> int | None:
    """How many distinct configurations the space holds; None when it is continuous."""
    points = 1
    for dist in space.values():
        if hasattr(dist, "choices"):
            points *= len(dist.choices)
        elif getattr(dist, "step", None) is not None:  # an int, or a float on a grid
            points *= int(round((dist.high - dist.low) / dist.step)) + 1
        else:
            return None
    return points


def value_text(value) -> str:
    """An Optuna parameter as override text: exact, so the config holds what the study holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else repr(float(value))


def make_sampler(name: str, seed: int, trials_before: int = 0, population: int | None = None):
    """The Optuna sampler `name`, seeded by the sweep's seed.

    `population`: NSGA-II's generation size (`generation_size`), so that a generation is a
    round of asked trials, trained as one vectorised group where it fits.

    A sweep that continues a study of `trials_before` trials draws from a stream of its own:
    seeded as the first run was, TPE's and CMA-ES's random draws would repeat the trials the
    study already holds. QMC's sequence is indexed by the study itself, so it keeps its seed.
    """
    import numpy as np
    import optuna

    if trials_before and name != "qmc":
        seed = int(np.random.SeedSequence([seed, trials_before]).generate_state(1)[0])

    if name == "tpe":
        # constant liar: trials asked but not yet told count as bad, so a batch asked at once
        # spreads out instead of being N copies of one point
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, population or 2))
    raise ConfigError(f"unknown --search '{name}' (choose from: {', '.join(SEARCHES)})")


# A model-based sampler learns only from the trials told before it asks, so a search asked all
# at once is a random search. Four rounds (what benchmarks/bench_search_cpu.py times: 32 trials,
# --batch 8) let TPE and CMA-ES learn from the first quarter on, while each round still fills
# a vectorised group.
LEARNING_ROUNDS = 4


def default_batch(search: str, trials: int, fits: int) -> int:
    """Trials asked at a time when --batch is not given; `fits`: one group's memory limit."""
    if search == "qmc":  # a fixed low-discrepancy sequence: nothing to learn between rounds
        return max(1, min(fits, trials))
    if search == "nsga2":  # a generation at a time (generation_size, at least two parents)
        return max(1, min(fits, max(2, -(-trials // LEARNING_ROUNDS))))
    return max(1, min(fits, -(-trials // LEARNING_ROUNDS)))


def generation_size(options: SearchOptions) -> int:
    """NSGA-II's population: a round of the search (--batch, else a quarter of --trials, as for
    the other samplers), never what memory fits, so the same command gives the same generations
    on a laptop and on a GPU. A generation ends when that many of its trials have completed:
    pruned ones are replaced, as Optuna's GA samplers do."""
    return options.batch or max(2, -(-(options.trials or 2) // LEARNING_ROUNDS))


def sampler_for(options: SearchOptions, trials_before: int = 0):
    """The sampler a sweep's options ask for (make_sampler)."""
    return make_sampler(options.search, options.seed, trials_before, generation_size(options))


def default_metric(task: str) -> str:
    return "best_val_accuracy" if task == "classification" else "best_val_loss"


def summary_values(metric: str, summary: dict) -> list[float] | None:
    """The values a study is told for a finished trial's summary; None when one is missing or
    not finite (the trial is told FAILed: a dominance test cannot rank a NaN)."""
    values = [summary.get(name) for name in metric_names(metric)]
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return None
    return [float(v) for v in values]


def epoch_value(metric: str, row: dict) -> float | None:
    """The per-epoch value reported for `metric`'s first metric (best_val_accuracy -> that
    epoch's val_accuracy): several metrics are pruned on the first."""
    name = metric_names(metric)[0].removeprefix("best_")
    value = row.get(name)
    return None if value is None else float(value)
