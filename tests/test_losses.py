from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_MATH_RTOL
from omegaconf import OmegaConf

from dlrun.data import DataSpec
from dlrun.errors import ConfigError
from dlrun.models import losses

HYPER = {"huber_delta": 1.0}
MNIST = DataSpec("mnist", "classification", (28, 28, 1), 10, 55000, 5000, 10000, False)
XOR = DataSpec("xor", "classification", (2,), 2, 1500, 500, 1000, False)
POLY = DataSpec("poly1d", "regression", (1,), 0, 800, 200, 1000, False)
ROSEN = DataSpec("rosenbrock", "regression", (2,), 0, 1500, 500, 1000, True)


def test_softmax_cross_entropy_by_hand():
    logits = jnp.array([[2.0, 1.0, 0.1]])
    expected = -np.log(np.exp(2.0) / (np.exp(2.0) + np.exp(1.0) + np.exp(0.1)))
    value = losses.softmax_cross_entropy(logits, jnp.array([0]), HYPER)
    np.testing.assert_allclose(value, [expected], rtol=FLOAT32_MATH_RTOL)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = jnp.array([0.3, -1.2, 2.0, 0.5])
    grad = jax.grad(lambda z: losses.softmax_cross_entropy(z[None], jnp.array([2]), HYPER)[0])(logits)
    # Probabilities at most 1, from two exp-based formulas: an absolute few-ulp tolerance.
    np.testing.assert_allclose(grad, jax.nn.softmax(logits) - jnp.eye(4)[2], atol=FLOAT32_MATH_RTOL)


def test_binary_losses_by_hand_and_agree():
    z = jnp.array([[0.0], [2.0], [-1.0]])
    y = jnp.array([1, 0, 0])
    p = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0])))
    expected = -(np.array([1, 0, 0]) * np.log(p) + (1 - np.array([1, 0, 0])) * np.log(1 - p))
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y, HYPER), expected, rtol=FLOAT32_MATH_RTOL)
    np.testing.assert_allclose(
        losses.binary_cross_entropy_with_logits(z, y, HYPER), expected, rtol=FLOAT32_MATH_RTOL
    )


def test_probability_bce_saturates_where_logits_bce_does_not():
    z, y = jnp.array([[-40.0]]), jnp.array([1])
    assert float(losses.binary_cross_entropy_with_logits(z, y, HYPER)[0]) == pytest.approx(40.0)
    clipped = -np.log(losses.PROBABILITY_EPS)
    assert float(losses.binary_cross_entropy(z, y, HYPER)[0]) == pytest.approx(clipped, rel=1e-3)


def test_regression_losses_by_hand():
    pred, target = jnp.array([[1.0], [3.0], [0.0]]), jnp.array([[2.0], [0.0], [0.5]])
    np.testing.assert_allclose(losses.mse(pred, target, HYPER), [1.0, 9.0, 0.25])
    np.testing.assert_allclose(losses.mae(pred, target, HYPER), [1.0, 3.0, 0.5])
    # huber(delta=1): 0.5 e^2 inside, delta(|e| - delta/2) outside
    np.testing.assert_allclose(losses.huber(pred, target, HYPER), [0.5, 2.5, 0.125])
    msle = (np.log1p([1.0, 3.0, 0.0]) - np.log1p([2.0, 0.0, 0.5])) ** 2
    np.testing.assert_allclose(losses.msle(pred, target, HYPER), msle, rtol=FLOAT32_MATH_RTOL)


def test_mse_on_classes_uses_one_hot_targets():
    outputs = jnp.array([[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(losses.mse(outputs, jnp.array([1]), HYPER), [(0.25 + 0.25 + 0) / 3])


def test_gradients_match_finite_differences():
    key = jax.random.PRNGKey(0)
    outputs = jax.random.normal(key, (4, 3), jnp.float32)
    targets = jnp.array([0, 2, 1, 1])
    for name in ("softmax_cross_entropy", "mse", "mae", "huber"):
        fn = lambda o: jnp.sum(losses.LOSSES[name].fn(o, targets, HYPER))
        grad = jax.grad(fn)(outputs)
        eps = 1e-3
        bump = jnp.zeros_like(outputs).at[1, 2].set(eps)
        numeric = (fn(outputs + bump) - fn(outputs - bump)) / (2 * eps)
        assert float(grad[1, 2]) == pytest.approx(float(numeric), rel=1e-2, abs=1e-3), name


def test_defaults_per_task_and_output_units():
    assert losses.resolve_loss("auto", MNIST) == "softmax_cross_entropy"
    assert losses.resolve_loss("auto", POLY) == "mse"
    assert losses.output_units("binary_cross_entropy_with_logits", XOR) == 1
    assert losses.output_units("softmax_cross_entropy", XOR) == 2
    assert losses.output_units("mse", POLY) == 1


@pytest.mark.parametrize(
    "name, spec, fragment",
    [
        ("softmax_cross_entropy", POLY, "does not fit regression"),
        ("binary_cross_entropy", MNIST, "needs 2 classes"),
        ("msle", MNIST, "does not fit classification"),
        ("msle", POLY, "non-negative"),
    ],
)
def test_impossible_combinations_are_refused(name, spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        losses.check_compatible(name, spec, "none")


def test_msle_on_rosenbrock_needs_raw_targets():
    losses.check_compatible("msle", ROSEN, "none")
    with pytest.raises(ConfigError, match="target_scaling"):
        losses.check_compatible("msle", ROSEN, "standardize")


def test_check_resolves_auto_and_refuses_an_unknown_loss():
    cfg = SimpleNamespace(loss="auto", data=OmegaConf.create({"name": "mnist"}))  # no target_scaling
    losses.check(cfg, MNIST)
    cfg.loss = "hinge"
    with pytest.raises(ConfigError) as caught:
        losses.check(cfg, MNIST)
    assert str(caught.value).startswith("unknown loss 'hinge' (choose from: auto, binary_cross_entropy, ")
