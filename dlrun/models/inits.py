"""Weight and bias initialisers keyed by config name, built on `jax.nn.initializers`.

`init_scale` means the scheme's one free number: the std of `normal`, the half-width of
`uniform`, the value of `constant`, the gain of `orthogonal`; the variance-scaling schemes
(LeCun, Glorot, He) have none.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from dlrun.models.activations import RELU_LIKE
from dlrun.registry import Registry


def _uniform(scale: float):
    # jax's uniform draws from [0, scale); the lessons' uniform(scale) is symmetric around zero.
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return init


class Init(NamedTuple):
    build: Callable  # init_scale -> a jax.nn.initializers function
    default_scale: Optional[float]  # used when init_scale is None; None: the scheme has no free number


# `auto` is resolved by the activation (resolve_init_name), so it is a name without an entry
INITS = Registry(
    "init",
    {
        "zeros": Init(lambda s: jinit.zeros, None),
        "constant": Init(lambda s: jinit.constant(s), 0.1),
        "normal": Init(lambda s: jinit.normal(stddev=s), 0.01),
        "uniform": Init(_uniform, 0.05),
        "lecun_uniform": Init(lambda s: jinit.lecun_uniform(), None),
        "lecun_normal": Init(lambda s: jinit.variance_scaling(1.0, "fan_in", "normal"), None),
        "glorot_uniform": Init(lambda s: jinit.glorot_uniform(), None),
        "glorot_normal": Init(lambda s: jinit.variance_scaling(1.0, "fan_avg", "normal"), None),
        "xavier_uniform": Init(lambda s: jinit.glorot_uniform(), None),
        "xavier_normal": Init(lambda s: jinit.variance_scaling(1.0, "fan_avg", "normal"), None),
        "he_uniform": Init(lambda s: jinit.he_uniform(), None),
        "he_normal": Init(lambda s: jinit.variance_scaling(2.0, "fan_in", "normal"), None),
        "kaiming_uniform": Init(lambda s: jinit.he_uniform(), None),
        "kaiming_normal": Init(lambda s: jinit.variance_scaling(2.0, "fan_in", "normal"), None),
        "orthogonal": Init(lambda s: jinit.orthogonal(scale=s), 1.0),
    },
    extra=("auto",),
)
# jax's lecun_normal/glorot_normal/he_normal draw from a *truncated* normal rescaled to the target
# variance; the plain-normal forms above match the textbook formulas the lessons derive.

BIAS_INITS = Registry("bias_init", {name: INITS[name] for name in ("zeros", "constant", "normal", "uniform")})


def check(cfg) -> None:
    """Raise ConfigError unless `cfg.init` and `cfg.bias_init` name initialisers."""
    INITS.check(cfg.init)
    BIAS_INITS.check(cfg.bias_init)


def resolve_init_name(cfg) -> str:
    """Return the weight-init scheme, resolving `auto` by the activation (He for ReLU-like)."""
    if cfg.init != "auto":
        return cfg.init
    return "he_normal" if cfg.activation in RELU_LIKE else "glorot_uniform"


def make_kernel_init(cfg):
    """Return the `jax.nn.initializers` function for weights named by `cfg.init`."""
    build, default_scale = INITS.get(resolve_init_name(cfg))
    return build(cfg.init_scale if cfg.init_scale is not None else default_scale)


def make_bias_init(cfg):
    """Return the initializer for biases named by `cfg.bias_init` with scale `cfg.bias_scale`."""
    build, _ = BIAS_INITS.get(cfg.bias_init)
    return build(cfg.bias_scale)
