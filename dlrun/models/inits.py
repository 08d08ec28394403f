"""Weight and bias initialisers keyed by config name, built on `jax.nn.initializers`.

`init_scale` means the scheme's one free number: the std of `normal`, the half-width of
`uniform`, the value of `constant`, the gain of `orthogonal`; the variance-scaling schemes
(LeCun, Glorot, He) have none.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from dlrun.models.activations import RELU_LIKE


def _uniform(scale: float):
    # jax's uniform draws from [0, scale); the lessons' uniform(scale) is symmetric around zero.
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return init


# name -> (builder taking the scale, default scale)
INITS = {
    "zeros": (lambda s: jinit.zeros, None),
    "constant": (lambda s: jinit.constant(s), 0.1),
    "normal": (lambda s: jinit.normal(stddev=s), 0.01),
    "uniform": (_uniform, 0.05),
    "lecun_uniform": (lambda s: jinit.lecun_uniform(), None),
    "lecun_normal": (lambda s: jinit.variance_scaling(1.0, "fan_in", "normal"), None),
    "glorot_uniform": (lambda s: jinit.glorot_uniform(), None),
    "glorot_normal": (lambda s: jinit.variance_scaling(1.0, "fan_avg", "normal"), None),
    "xavier_uniform": (lambda s: jinit.glorot_uniform(), None),
    "xavier_normal": (lambda s: jinit.variance_scaling(1.0, "fan_avg", "normal"), None),
    "he_uniform": (lambda s: jinit.he_uniform(), None),
    "he_normal": (lambda s: jinit.variance_scaling(2.0, "fan_in", "normal"), None),
    "kaiming_uniform": (lambda s: jinit.he_uniform(), None),
    "kaiming_normal": (lambda s: jinit.variance_scaling(2.0, "fan_in", "normal"), None),
    "orthogonal": (lambda s: jinit.orthogonal(scale=s), 1.0),
}
# jax's lecun_normal/glorot_normal/he_normal draw from a *truncated* normal rescaled to the target
# variance; the plain-normal forms above match the textbook formulas the lessons derive.

BIAS_INITS = {name: INITS[name] for name in ("zeros", "constant", "normal", "uniform")}


def resolve_init_name(cfg) -> str:
    """Return the weight-init scheme, resolving `auto` by the activation (He for ReLU-like)."""
    if cfg.init != "auto":
        return cfg.init
    return "he_normal" if cfg.activation in RELU_LIKE else "glorot_uniform"


def make_kernel_init(cfg):
    """Return the `jax.nn.initializers` function for weights named by `cfg.init`."""
    build, default_scale = INITS[resolve_init_name(cfg)]
    return build(cfg.init_scale if cfg.init_scale is not None else default_scale)


def make_bias_init(cfg):
    """Return the initializer for biases named by `cfg.bias_init` with scale `cfg.bias_scale`."""
    build, _ = BIAS_INITS[cfg.bias_init]
    return build(cfg.bias_scale)
