"""The diagnosis thresholds: every number the label rules and flags of diagnose.py compare
against, each with the reason for its value, in one place.

`dlrun report --threshold name=value` overrides one (`Thresholds.from_dict`); everything else
uses DEFAULT_THRESHOLDS. Plain Python, no JAX: the report imports it cheaply.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Every number the rules compare against, each with the reason for its value."""

    # diverged: 10x its own best; no noisy-but-healthy run climbs back an order of magnitude.
    diverge_over_min: float = 10.0
    # diverged: 3x its first epoch is far worse than the untrained net, so the weights blew up.
    diverge_over_first: float = 3.0
    # diverged: an epoch-mean loss above 100 means the weights blew up, even if the net then dies
    # at a constant output: an untrained classifier starts near ln(K) (2.3 for 10 classes) and a
    # regression on standardised targets near 1, so 100 is far beyond any start.
    exploding_loss: float = 100.0
    # no_learning: under 5% from first epoch to best; epoch-to-epoch noise alone moves a loss a few %.
    no_learning_drop: float = 0.05
    # no_learning: accuracy within 0.1 of chance is chance. Chance is 1/num_classes, else 0.5 (binary,
    # the highest chance any classifier has), so with classes unknown "near chance" means < 0.6.
    chance_margin: float = 0.1
    # unstable: an epoch-average train loss rising 5% is a real rise (batch noise is averaged away).
    oscillation_rise: float = 0.05
    # unstable: one or two such rises follow an lr step or a bad shuffle; three is a pattern.
    oscillation_count: int = 3
    # unstable: a final train loss 20% above its best means the optimiser has lost ground.
    unstable_rise: float = 0.2
    # unstable, overfitting: rises smaller than 2% of the first epoch's loss are noise at the loss
    # floor (a loss bouncing between 0.005 and 0.008 is +60%, yet the fit is done), not a trend.
    loss_floor_fraction: float = 0.02
    # unrepresentative_validation: train and val see the same model, so val jitter 3x the train's
    # comes from the split.
    val_noise_ratio: float = 3.0
    # ...and at least 0.1 (about +-7% per epoch), so ordinary val wobble next to a perfectly smooth
    # train curve (jitter ~0) is not called noise.
    val_noise_floor: float = 0.1
    # Jitter is a spread of differences of changes: 5 epochs give the fewest (3) worth a std.
    noise_min_epochs: int = 5
    # ...and noise sends a curve up about as often as down, so a val loss that rose fewer than 2
    # times is smooth: in a short run its jitter measures the bend of a fast fall, not noise (a
    # 5-epoch Adam run falling 0.69, 0.39, 0.31, 0.29, 0.28 has jitter near the floor).
    noise_min_rises: int = 2
    # unrepresentative_validation: val 3x train while both still fall is a gap no fit explains yet.
    val_gap_ratio: float = 3.0
    # overfitting: final val 10% above its minimum is beyond the wobble of a healthy val curve.
    overfit_rise: float = 0.1
    # overfitting: train loss halved since the val minimum, val no better: memorising, not learning.
    overfit_train_drop: float = 0.5
    # "At the end" = the last 3 epochs: enough to average out a blip, few enough to mean the end.
    window: int = 3
    # still_improving: 5% over those 3 epochs (~1.7%/epoch) means more epochs would visibly pay off.
    improving_drop: float = 0.05
    # underfitting: the data sets here (MNIST-like) reach > 0.97 train accuracy with any adequate net.
    underfit_accuracy: float = 0.9
    # underfitting: targets are standardised (predicting the mean gives ~1): above 0.1 is < 90% explained.
    underfit_loss: float = 0.1
    # vanishing_gradients: a first layer getting 1000x less gradient than the last barely learns.
    vanishing_ratio: float = 1e-3
    # exploding_gradients: a global norm over 1000 gives steps that wreck weights of O(1) scale...
    exploding_norm: float = 1e3
    # ...as does growth of 100x since epoch 1: healthy norms shrink or stay put as the loss falls.
    exploding_growth: float = 100.0
    # dead_units: over 30% of units never active in an epoch wastes a third of the capacity.
    dead_fraction: float = 0.3
    # saturated_units: over half the bounded outputs at a bound leaves most gradients through them ~0.
    saturated_fraction: float = 0.5

    @classmethod
    def from_dict(cls, values: dict) -> Thresholds:
        """Return DEFAULT_THRESHOLDS with `values` replaced; ValueError on an unknown name or bad value."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        converted = {}
        for name, value in values.items():
            if name not in fields:
                raise ValueError(f"unknown threshold {name!r}; valid names: {', '.join(fields)}")
            kind = int if fields[name].type in ("int", int) else float
            try:
                converted[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"threshold {name!r} must be a number, got {value!r}") from None
            # every threshold is a ratio, fraction or norm (>= 0) or a count of epochs (>= 1)
            least = 1 if kind is int else 0.0
            if not (math.isfinite(converted[name]) and converted[name] >= least):
                raise ValueError(
                    f"threshold {name!r} must be a finite number >= {least}, "
                    f"got {value!r} (default {getattr(cls(), name)})"
                )
        return dataclasses.replace(cls(), **converted)


DEFAULT_THRESHOLDS = Thresholds()
