"""Tests for dlrun.conv: every lowering against lax.conv, pooling, helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_RTOL, float32_atol
from jax import lax

from dlrun.models import conv

LOWERINGS = conv.LOWERINGS + ("auto",)


def enable_x64():
    """Scoped float64 (restored on exit); the API moved between jax versions."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as ctx

    return ctx()


def _ref_conv(x, k, padding):
    return lax.conv_general_dilated(
        x,
        k,
        (1, 1),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )


def _assert_float32_close(ours, ref, magnitude, terms):
    """Equal up to float32 rounding of `terms`-term sums in any order (see conftest.float32_atol).

    For a convolution `magnitude` is the same convolution of |x| and |k|. For a gradient it is the
    reference itself, with `terms` counting the forward and the backward sums: a second backward
    pass on absolute values would be exact but obscure, and with random signs the sum of |terms|
    is ~sqrt(n) times the result, which n in place of the usual sqrt(n) growth covers.
    """
    np.testing.assert_allclose(ours, ref, rtol=FLOAT32_RTOL, atol=float32_atol(magnitude, terms))


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_lesson_example(lowering):
    x = jnp.asarray([[4, 6, 3], [8, 5, 1], [2, 4, 6]], jnp.float32)[None, :, :, None]
    k = jnp.asarray([[3, 2], [5, 1]], jnp.float32)[:, :, None, None]
    y = conv.conv2d(x, k, lowering=lowering)
    np.testing.assert_allclose(np.asarray(y)[0, :, :, 0], [[69, 50], [48, 43]], rtol=1e-6)


@pytest.mark.parametrize(
    "size,kernel,padding,stride,dilation,expected",
    [
        (28, 5, 2, 1, 1, 28),
        (14, 5, 0, 1, 1, 10),
        (32, 3, 1, 2, 1, 16),
        (7, 3, 0, 2, 1, 3),
        (10, 3, 0, 1, 2, 6),
        (224, 7, 3, 2, 1, 112),
        (5, 5, 0, 1, 1, 1),
    ],
)
def test_conv_output_size(size, kernel, padding, stride, dilation, expected):
    assert conv.conv_output_size(size, kernel, padding, stride, dilation) == expected
    x = jnp.zeros((1, size, size, 1), jnp.float32)
    k = jnp.zeros((kernel, kernel, 1, 1), jnp.float32)
    y = lax.conv_general_dilated(
        x,
        k,
        (stride, stride),
        [(padding, padding)] * 2,
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    assert y.shape[1] == expected


def test_conv_output_size_rejects_bad_geometry():
    with pytest.raises(ValueError):
        conv.conv_output_size(4, 5)
    with pytest.raises(ValueError):
        conv.conv_output_size(28, 5, stride=0)


@pytest.mark.parametrize("lowering", conv.LOWERINGS)
@pytest.mark.parametrize("cin,cout,size,padding", [(1, 6, 28, 2), (6, 16, 14, 0)])
def test_matches_lax_conv_forward_and_grads(lowering, cin, cout, size, padding):
    rng = np.random.default_rng(cin * 100 + size)
    x = jnp.asarray(rng.standard_normal((4, size, size, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((5, 5, cin, cout)) / np.sqrt(25 * cin), jnp.float32)
    w = jnp.asarray(
        rng.standard_normal((4, size + 2 * padding - 4, size + 2 * padding - 4, cout)), jnp.float32
    )

    def loss(f):
        return lambda x, k: jnp.sum(jnp.tanh(f(x, k)) * w)

    ours = lambda x, k: conv.conv2d(x, k, padding=padding, lowering=lowering)
    ref = lambda x, k: _ref_conv(x, k, padding)
    forward = 5 * 5 * cin
    _assert_float32_close(jax.jit(ours)(x, k), ref(x, k), ref(jnp.abs(x), jnp.abs(k)), forward)
    g = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(x, k)
    g_ref = jax.jit(jax.grad(loss(ref), argnums=(0, 1)))(x, k)
    _assert_float32_close(g[0], g_ref[0], g_ref[0], forward + 5 * 5 * cout)
    _assert_float32_close(g[1], g_ref[1], g_ref[1], forward + w.shape[0] * w.shape[1] * w.shape[2])


@pytest.mark.parametrize("cin", [1, 2])
def test_batch_last_grads_vs_finite_differences_float64(cin):
    rng = np.random.default_rng(7)
    with enable_x64():
        x = jnp.asarray(rng.standard_normal((2, 5, 5, cin)), jnp.float64)
        k = jnp.asarray(rng.standard_normal((3, 3, cin, 2)), jnp.float64)
        f = jax.jit(lambda x, k: jnp.sum(jnp.sin(conv.conv2d(x, k, padding=1, lowering="batch_last"))))
        gx, gk = jax.jit(jax.grad(f, argnums=(0, 1)))(x, k)
        assert gk.dtype == jnp.float64
        eps = 1e-6
        for arr, grad, which in ((x, gx, 0), (k, gk, 1)):
            flat = np.asarray(arr).ravel()
            for i in rng.choice(flat.size, 6, replace=False):
                d = np.zeros_like(flat)
                d[i] = eps
                step = jnp.asarray(d.reshape(arr.shape))
                args_p = (x + step, k) if which == 0 else (x, k + step)
                args_m = (x - step, k) if which == 0 else (x, k - step)
                fd = (f(*args_p) - f(*args_m)) / (2 * eps)
                np.testing.assert_allclose(np.asarray(grad).ravel()[i], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lowering", conv.LOWERINGS)
@pytest.mark.parametrize("cin,padding", [(1, 2), (4, 0)])
def test_vmap_over_kernels_matches_loop(lowering, cin, padding):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((4, 8, 8, cin)), jnp.float32)
    ks = jnp.asarray(rng.standard_normal((2, 5, 5, cin, 2)) * 0.3, jnp.float32)
    f = jax.jit(lambda k: conv.conv2d(x, k, padding=padding, lowering=lowering))
    g = jax.jit(jax.grad(lambda k: jnp.sum(jnp.tanh(f(k)) ** 2)))
    y_v, g_v = jax.jit(jax.vmap(f))(ks), jax.jit(jax.vmap(g))(ks)
    forward = 5 * 5 * cin
    for t in range(ks.shape[0]):
        y, grad = f(ks[t]), g(ks[t])
        _assert_float32_close(y_v[t], y, _ref_conv(jnp.abs(x), jnp.abs(ks[t]), padding), forward)
        _assert_float32_close(g_v[t], grad, grad, forward + y.shape[0] * y.shape[1] * y.shape[2])


@pytest.mark.parametrize("cin", [1, 3])
def test_conv2d_batch_last_layout_odd_shapes(cin):
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((3, 9, 7, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 2, cin, 4)), jnp.float32)
    y = conv.conv2d_batch_last(conv.to_batch_last(x), k, padding=1)
    assert y.shape == (4, 9, 8, 3)
    forward = 3 * 2 * cin
    _assert_float32_close(
        conv.from_batch_last(y), _ref_conv(x, k, 1), _ref_conv(jnp.abs(x), jnp.abs(k), 1), forward
    )
    f = lambda x, k: jnp.sum(jnp.tanh(conv.conv2d(x, k, padding=1, lowering="batch_last")))
    fr = lambda x, k: jnp.sum(jnp.tanh(_ref_conv(x, k, 1)))
    backward = (3 * 2 * 4, 3 * 9 * 8)  # dx sums over the kernel and outputs, dk over the batch's pixels
    for a, b, terms in zip(jax.jit(jax.grad(f, (0, 1)))(x, k), jax.grad(fr, (0, 1))(x, k), backward):
        _assert_float32_close(a, b, b, forward + terms)


def test_conv2d_rejects_bad_args():
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d(x, jnp.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(x, jnp.zeros((3, 3, 3, 4)), padding=-1)
    with pytest.raises(ValueError, match="bogus"):
        conv.conv2d(x, jnp.zeros((3, 3, 3, 4)), lowering="bogus")


def _np_pool(x, w, op):
    b, h, wd, c = x.shape
    return op(x.reshape(b, h // w, w, wd // w, w, c), axis=(2, 4))


@pytest.mark.parametrize("window", [2, 3])
def test_pools_match_numpy_and_grads(window):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 6, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(conv.max_pool(jnp.asarray(x), window), _np_pool(x, window, np.max))
    # A mean near zero, summed in another order, is off by far more than its own eps.
    _assert_float32_close(
        conv.avg_pool(jnp.asarray(x), window),
        _np_pool(x, window, np.mean),
        _np_pool(np.abs(x), window, np.mean),
        window**2,
    )
    g = rng.standard_normal(_np_pool(x, window, np.max).shape).astype(np.float32)
    up = lambda a: np.repeat(np.repeat(a, window, 1), window, 2)
    gmax = jax.grad(lambda a: jnp.sum(conv.max_pool(a, window) * g))(jnp.asarray(x))
    np.testing.assert_allclose(gmax, up(g) * (x == up(_np_pool(x, window, np.max))))
    gavg = jax.grad(lambda a: jnp.sum(conv.avg_pool(a, window) * g))(jnp.asarray(x))
    np.testing.assert_allclose(gavg, up(g) / window**2, rtol=FLOAT32_RTOL)


def test_pool_rejects_indivisible():
    with pytest.raises(ValueError, match="divide"):
        conv.max_pool(jnp.zeros((1, 5, 4, 1)))
    with pytest.raises(ValueError, match="divide"):
        conv.avg_pool(jnp.zeros((1, 4, 6, 1)), 4)


def test_resolve_lowering():
    assert conv.resolve_lowering("auto", "gpu") == "xla"
    assert conv.resolve_lowering("auto", "tpu") == "xla"
    assert conv.resolve_lowering("auto", "cpu") in conv.LOWERINGS
    assert conv.resolve_lowering("auto") in conv.LOWERINGS
    for name in conv.LOWERINGS:
        assert conv.resolve_lowering(name, "cpu") == name
    with pytest.raises(ValueError) as err:
        conv.resolve_lowering("winograd")
    assert "winograd" in str(err.value) and "im2col" in str(err.value)


@pytest.mark.parametrize("lowering", conv.LOWERINGS)
@pytest.mark.parametrize(
    "kernel,cin,cout,size,padding,stride",
    [
        (3, 3, 4, 9, 1, 1),  # a ResNet stem / block conv: 3x3, "same" padding
        (3, 4, 6, 8, 1, 2),  # the first conv of a downsampling block
        (1, 4, 6, 8, 0, 2),  # its 1x1 projection shortcut
        (3, 1, 2, 7, 1, 2),  # one input channel, odd size: the last row/column is dropped
    ],
)
def test_strided_convs_match_lax_conv_forward_and_grads(lowering, kernel, cin, cout, size, padding, stride):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = jnp.asarray(rng.standard_normal((3, size, size, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((kernel, kernel, cin, cout)) / kernel, jnp.float32)
    ref = lambda x, k: lax.conv_general_dilated(
        x,
        k,
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    ours = lambda x, k: conv.conv2d(x, k, padding=padding, lowering=lowering, stride=stride)
    y_ref = ref(x, k)
    forward = kernel * kernel * cin
    _assert_float32_close(jax.jit(ours)(x, k), y_ref, ref(jnp.abs(x), jnp.abs(k)), forward)
    w = jnp.asarray(rng.standard_normal(y_ref.shape), jnp.float32)
    loss = lambda f: lambda x, k: jnp.sum(jnp.tanh(f(x, k)) * w)
    g = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(x, k)
    g_ref = jax.jit(jax.grad(loss(ref), argnums=(0, 1)))(x, k)
    _assert_float32_close(g[0], g_ref[0], g_ref[0], forward + kernel * kernel * cout)
    _assert_float32_close(g[1], g_ref[1], g_ref[1], forward + int(np.prod(y_ref.shape[:3])))


def test_conv2d_rejects_a_bad_stride():
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        conv.conv2d(jnp.zeros((1, 8, 8, 3)), jnp.zeros((3, 3, 3, 4)), stride=0)
