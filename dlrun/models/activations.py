"""Activation functions keyed by config name.

Each entry builds a callable from the config; the two learned activations of the lessons are
Flax modules (prelu holds a slope per layer, maxout takes the max over `maxout_pieces` linear
pieces, so the layer before it must produce `pieces` times as many units: see `width_factor`).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from dlrun.registry import Registry


class PReLU(nn.Module):
    """Leaky ReLU whose negative slope is learned (He et al. 2015), one slope per layer."""

    initial_slope: float = 0.25

    @nn.compact
    def __call__(self, x):
        slope = self.param("slope", lambda _key: jnp.asarray(self.initial_slope, jnp.float32))
        return jnp.where(x >= 0, x, slope * x)


def maxout(x, pieces: int):
    """Max over `pieces` consecutive groups of the last axis (Goodfellow et al. 2013)."""
    *lead, units = x.shape
    return x.reshape(*lead, units // pieces, pieces).max(axis=-1)


# name -> builder taking the config, returning the activation callable
ACTIVATIONS: Registry[Callable] = Registry(
    "activation",
    {
        "sigmoid": lambda cfg: nn.sigmoid,
        "tanh": lambda cfg: jnp.tanh,
        "relu": lambda cfg: nn.relu,
        "leaky_relu": lambda cfg: lambda x: nn.leaky_relu(x, cfg.activation_slope),
        "elu": lambda cfg: nn.elu,
        "gelu": lambda cfg: nn.gelu,
        "silu": lambda cfg: nn.silu,
        "softplus": lambda cfg: nn.softplus,
        "identity": lambda cfg: lambda x: x,
        "prelu": lambda cfg: PReLU(initial_slope=cfg.activation_slope),
        "maxout": lambda cfg: lambda x: maxout(x, cfg.maxout_pieces),
    },
)

# Activations whose zero-centred linear region makes He (fan_in, gain 2) the variance-preserving init.
RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu", "prelu", "maxout"})

# Bounds inside which a unit counts as saturated (gradient below ~0.02 of its peak).
SATURATION_BOUNDS = {"sigmoid": (0.02, 0.98), "tanh": (-0.98, 0.98)}


def check(cfg) -> None:
    """Raise ConfigError unless `cfg.activation` names an activation."""
    ACTIVATIONS.check(cfg.activation)


def make_activation(cfg) -> Callable:
    """Return the activation callable (a function or a fresh Flax module) named by `cfg.activation`."""
    return ACTIVATIONS.get(cfg.activation)(cfg)


def width_factor(cfg) -> int:
    """Return how many pre-activation units a layer needs per output unit (maxout needs k)."""
    return cfg.maxout_pieces if cfg.activation == "maxout" else 1
