"""Population-based training's decision at a perturbation epoch: who copies whom (exploit) and
the values each copier trains on with (explore). Pure Python over the space's Optuna
distributions, no JAX: the device half (the gather along the trial axis, the write into the
injected hyperparameters) is dlrun/training/population.py's.

Ray Tune's PopulationBasedTraining defaults (Jaderberg et al. 2017, "truncation selection"):

1. rank the live members by the epoch's metric; the bottom `quantile` (rounded up, at most
   half the population) each copy the whole state of a member of the top quantile, drawn at
   random;
2. each copier then perturbs every mutable key: with probability `resample` drawn anew from
   the space, else multiplied by 0.8 or 1.2 and clipped to the interval (a categorical moves
   to a neighbouring choice).

Every draw comes from a generator seeded by (search seed, epoch), so the same sweep makes the
same decisions, and a sweep resumed after a kill makes again the decision it was making.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlrun.errors import ConfigError

FACTORS = (0.8, 1.2)  # Ray Tune's perturbation_factors
QUANTILE = 0.25  # Ray Tune's quantile_fraction
RESAMPLE = 0.25  # Ray Tune's resample_probability
# two epochs apart by default: a copier needs an epoch or two on its new values before it is
# judged again, or the population ranks only the noise of the epoch after each copy
PERTURB_EVERY = 2
POPULATION = 8


@dataclass(frozen=True)
class PbtOptions:
    """`--population`, `--perturb-every`, `--quantile`, `--resample` (plain data: it pickles)."""

    population: int = POPULATION
    perturb_every: int = PERTURB_EVERY
    quantile: float = QUANTILE
    resample: float = RESAMPLE

    def check(self, epochs: int | None = None) -> None:
        """Refuse a value that cannot run, in one line naming it and what is valid (ConfigError)."""
        if self.population < 2:
            raise ConfigError(f"--population must be >= 2 (a member copies another), got {self.population}")
        if self.perturb_every < 1:
            raise ConfigError(f"--perturb-every must be >= 1 epoch, got {self.perturb_every}")
        if epochs is not None and self.perturb_every >= epochs:
            raise ConfigError(
                f"--perturb-every {self.perturb_every} must be below epochs={epochs} "
                "(else no member is ever perturbed)"
            )
        if not 0 < self.quantile <= 0.5:
            raise ConfigError(f"--quantile must be in (0, 0.5], got {self.quantile}")
        if not 0 <= self.resample <= 1:
            raise ConfigError(f"--resample must be in [0, 1], got {self.resample}")

    def perturbs_at(self, epoch: int, epochs: int) -> bool:
        """Whether the population is perturbed after `epoch` (never after the last)."""
        return epoch % self.perturb_every == 0 and epoch < epochs


@dataclass(frozen=True)
class Exploit:
    """Member `member` copies `source`'s state after `epoch`, then trains with `after`."""

    epoch: int
    member: int
    source: int
    before: dict
    after: dict


def step_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))


def sample(dist, rng: np.random.Generator):
    """A value drawn from an Optuna distribution (uniform, log-uniform, on its step)."""
    if hasattr(dist, "choices"):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    low, high = float(dist.low), float(dist.high)
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if dist.log else rng.uniform(low, high)
    return _on_grid(dist, value)


def perturb(dist, value, rng: np.random.Generator, resample: float):
    """Ray Tune's explore of one value: drawn anew with probability `resample`, else scaled by
    0.8 or 1.2 within the bounds (a categorical: the choice before or after it)."""
    if rng.random() < resample:
        return sample(dist, rng)
    if hasattr(dist, "choices"):
        index = list(dist.choices).index(value) + (-1 if rng.random() < 0.5 else 1)
        return dist.choices[min(max(index, 0), len(dist.choices) - 1)]
    factor = FACTORS[int(rng.integers(len(FACTORS)))]
    return _on_grid(dist, min(max(float(value) * factor, float(dist.low)), float(dist.high)))


def _on_grid(dist, value: float):
    """An int distribution's value rounded (and on its step); a float's as a float."""
    step = getattr(dist, "step", None)
    if step is not None:
        value = dist.low + round((value - dist.low) / step) * step
        value = min(max(value, dist.low), dist.high)
    if type(dist).__name__ == "IntDistribution":
        return int(round(value))
    return float(value)


def quantile_count(live: int, quantile: float) -> int:
    """Members in each of the top and bottom quantiles: rounded up, at most half (Ray's rule)."""
    return min(int(math.ceil(live * quantile)), live // 2)


def decide(
    epoch: int,
    scores: list,
    values: list[dict],
    space: dict,
    options: PbtOptions,
    seed: int,
    maximize: bool,
) -> list[Exploit]:
    """The exploits after `epoch`: scores[i] is member i's metric (None: it no longer trains and
    takes no part), values[i] its current values of the swept keys."""
    rng = step_rng(seed, epoch)
    ranked = [i for i in range(len(scores)) if scores[i] is not None and math.isfinite(scores[i])]
    # ties keep the members' order: the decision never hangs on a sort's whims
    ranked.sort(key=lambda i: (-scores[i] if maximize else scores[i], i))
    count = quantile_count(len(ranked), options.quantile)
    if count == 0:
        return []
    top, bottom = ranked[:count], ranked[-count:]
    exploits = []
    for member in sorted(bottom):
        source = top[int(rng.integers(len(top)))]
        before = dict(values[source])
        after = {key: perturb(space[key], before[key], rng, options.resample) for key in space}
        exploits.append(Exploit(epoch, member, source, dict(values[member]), after))
    return exploits
