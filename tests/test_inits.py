from types import SimpleNamespace

import jax
import numpy as np
import pytest

from dlrun.errors import ConfigError
from dlrun.models import inits

FAN_IN, FAN_OUT = 400, 600


def draw(name, scale=None, shape=(FAN_IN, FAN_OUT)):
    cfg = SimpleNamespace(init=name, init_scale=scale, activation="relu")
    return np.asarray(inits.make_kernel_init(cfg)(jax.random.PRNGKey(0), shape))


@pytest.mark.parametrize(
    "name, variance",
    [
        ("glorot_uniform", 2 / (FAN_IN + FAN_OUT)),
        ("glorot_normal", 2 / (FAN_IN + FAN_OUT)),
        ("xavier_normal", 2 / (FAN_IN + FAN_OUT)),
        ("he_normal", 2 / FAN_IN),
        ("he_uniform", 2 / FAN_IN),
        ("kaiming_normal", 2 / FAN_IN),
        ("lecun_normal", 1 / FAN_IN),
        ("lecun_uniform", 1 / FAN_IN),
    ],
)
def test_variance_scaling_schemes_match_their_formulas(name, variance):
    weights = draw(name)
    assert weights.mean() == pytest.approx(0.0, abs=3e-3 * np.sqrt(variance) * 10)
    assert weights.var() == pytest.approx(variance, rel=0.03)


def test_conv_kernel_fan_in_counts_the_receptive_field():
    weights = draw("he_normal", shape=(5, 5, 6, 16))
    assert weights.var() == pytest.approx(2 / (5 * 5 * 6), rel=0.1)


def test_simple_schemes():
    assert not draw("zeros").any()
    np.testing.assert_allclose(draw("constant", 0.3), 0.3)
    assert draw("normal", 0.5).std() == pytest.approx(0.5, rel=0.02)
    uniform = draw("uniform", 0.2)
    assert uniform.min() >= -0.2 and uniform.max() <= 0.2
    assert uniform.var() == pytest.approx(0.2**2 / 3, rel=0.03)
    square = draw("orthogonal", 1.0, shape=(64, 64))
    np.testing.assert_allclose(square.T @ square, np.eye(64), atol=1e-4)


def test_auto_picks_he_for_relu_and_glorot_for_tanh():
    assert inits.resolve_init_name(SimpleNamespace(init="auto", activation="relu")) == "he_normal"
    assert inits.resolve_init_name(SimpleNamespace(init="auto", activation="tanh")) == "glorot_uniform"


def test_bias_init():
    cfg = SimpleNamespace(bias_init="constant", bias_scale=0.1)
    np.testing.assert_allclose(inits.make_bias_init(cfg)(jax.random.PRNGKey(0), (5,)), 0.1)


def test_check_accepts_auto_for_weights_only():
    inits.check(SimpleNamespace(init="auto", bias_init="zeros"))
    with pytest.raises(ConfigError, match=r"^unknown bias_init 'auto' \(choose from: constant, normal, "):
        inits.check(SimpleNamespace(init="he_normal", bias_init="auto"))
