from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_MATH_RTOL

from dlrun.errors import ConfigError
from dlrun.models import activations

X = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
CFG = SimpleNamespace(activation_slope=0.1, maxout_pieces=2)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sigmoid", 1 / (1 + np.exp(-np.asarray(X)))),
        ("tanh", np.tanh(np.asarray(X))),
        ("relu", [0, 0, 0, 0.5, 2]),
        ("leaky_relu", [-0.2, -0.05, 0, 0.5, 2]),
        ("elu", [np.expm1(-2), np.expm1(-0.5), 0, 0.5, 2]),
        ("softplus", np.log1p(np.exp(np.asarray(X)))),
        ("silu", np.asarray(X) / (1 + np.exp(-np.asarray(X)))),
        ("identity", np.asarray(X)),
    ],
)
def test_values(name, expected):
    fn = activations.ACTIVATIONS[name](CFG)
    np.testing.assert_allclose(fn(X), expected, rtol=FLOAT32_MATH_RTOL, atol=1e-6)


def test_sigmoid_derivative_never_exceeds_a_quarter():
    slope = jax.vmap(jax.grad(activations.ACTIVATIONS["sigmoid"](CFG)))(jnp.linspace(-6, 6, 101))
    assert float(slope.max()) == pytest.approx(0.25)


def test_prelu_slope_is_learned():
    module = activations.PReLU(initial_slope=0.25)
    params = module.init(jax.random.PRNGKey(0), X)
    np.testing.assert_allclose(module.apply(params, X)[:2], [-0.5, -0.125])
    grad = jax.grad(lambda p: module.apply(p, X).sum())(params)
    assert float(grad["params"]["slope"]) == pytest.approx(-2.5)  # sum of negative inputs


def test_maxout_takes_the_max_of_each_group():
    x = jnp.array([[1.0, 3.0, -1.0, -4.0]])
    np.testing.assert_allclose(activations.maxout(x, 2), [[3.0, -1.0]])
    assert activations.width_factor(SimpleNamespace(activation="maxout", maxout_pieces=3)) == 3


def test_check_names_the_choices():
    activations.check(SimpleNamespace(activation="maxout"))
    with pytest.raises(ConfigError) as caught:
        activations.check(SimpleNamespace(activation="swish2"))
    assert str(caught.value) == (
        f"unknown activation 'swish2' (choose from: {', '.join(sorted(activations.ACTIVATIONS))})"
    )
