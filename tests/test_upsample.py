"""The decoder's layers (dlrun/models/upsample.py): the transposed convolution's output size is
the course's formula and its values a direct scatter-add; resizing keeps a flat map flat; the
checkerboard measure is 1 for uneven overlaps and 0 for even ones, in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import float32_atol

from dlrun.models import upsample

ZEROS, ONES = jax.nn.initializers.zeros, jax.nn.initializers.ones


def scatter_add(x, kernel, stride, padding, output_padding):
    """A transposed convolution written out: each input pixel adds kernel * its value at
    stride * its position; then `padding` cropped from each border, `output_padding` added."""
    n, height, width, _ = x.shape
    k, out_channels = kernel.shape[0], kernel.shape[2]
    full = np.zeros(((height - 1) * stride + k + output_padding, (width - 1) * stride + k + output_padding))
    full = np.zeros((n, *full.shape, out_channels))
    for i in range(height):
        for j in range(width):
            # the layer's kernel is [k, k, out, in]: the one of the convolution it transposes
            full[:, i * stride : i * stride + k, j * stride : j * stride + k] += np.einsum(
                "nc,aboc->nabo", x[:, i, j], kernel
            )
    return full[:, padding : full.shape[1] - padding, padding : full.shape[2] - padding]


# (in, kernel, stride, padding, output_padding) -> out, worked by hand from
# out = (in - 1) * stride - 2 * padding + kernel + output_padding
SIZE_CASES = [
    ((7, 4, 2, 1, 0), 14),  # (7-1)*2 - 2 + 4: the default decoder's first layer on MNIST
    ((7, 3, 2, 1, 1), 14),  # (7-1)*2 - 2 + 3 + 1: kernel 3 needs the extra row
    ((7, 3, 2, 1, 0), 13),
    ((5, 3, 1, 1, 0), 5),  # stride 1, padding 1: a 3x3 "same" transposed conv
    ((4, 5, 3, 2, 2), 12),  # (4-1)*3 - 4 + 5 + 2
    ((1, 2, 2, 0, 0), 2),
]


@pytest.mark.parametrize("geometry, out", SIZE_CASES)
def test_transposed_sizes_follow_the_formula_and_the_layer(geometry, out):
    size, kernel, stride, padding, output_padding = geometry
    assert upsample.transposed_output_size(size, kernel, stride, padding, output_padding) == out
    layer = upsample.ConvTranspose(3, kernel, stride, padding, ONES, ZEROS, output_padding=output_padding)
    x = jnp.ones((1, size, size + 1, 2))
    shape = jax.eval_shape(lambda: layer.apply(layer.init(jax.random.PRNGKey(0), x), x)).shape
    wide = upsample.transposed_output_size(size + 1, kernel, stride, padding, output_padding)
    assert shape == (1, out, wide, 3)


@pytest.mark.parametrize(
    "kernel, stride, padding, output_padding", [(3, 2, 1, 1), (4, 2, 1, 0), (5, 3, 2, 2)]
)
def test_transposed_conv_is_the_scatter_add(kernel, stride, padding, output_padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    layer = upsample.ConvTranspose(
        4, kernel, stride, padding, jax.nn.initializers.normal(1.0), ZEROS, output_padding=output_padding
    )
    variables = layer.init(jax.random.PRNGKey(1), x)
    kernel_values = np.asarray(variables["params"]["transposed"]["kernel"])
    assert kernel_values.shape == (kernel, kernel, 4, 3)
    got = np.asarray(layer.apply(variables, x))
    want = scatter_add(x, kernel_values, stride, padding, output_padding)
    terms = 3 * (-(-kernel // stride)) ** 2  # the taps that reach one output pixel: in * ceil(k/s)^2
    magnitude = scatter_add(np.abs(x), np.abs(kernel_values), stride, padding, output_padding)
    np.testing.assert_allclose(got, want, rtol=0, atol=float32_atol(magnitude, terms))


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_resize_then_conv_doubles_the_map_and_keeps_it_flat(method):
    for kernel in (3, 4):  # an even kernel keeps the size too ("SAME" pads 1 before, 2 after)
        layer = upsample.UpsampleConv(2, kernel, 2, method, ONES, ZEROS)
        x = jnp.full((1, 7, 5, 3), 0.5)
        y = layer.apply(layer.init(jax.random.PRNGKey(0), x), x)
        assert y.shape == (1, 14, 10, 2)
        # away from the zero padding every output is the sum of k*k*3 taps of 0.5
        assert np.allclose(y[:, 2:-2, 2:-2], 0.5 * kernel * kernel * 3)
        assert float(upsample.checkerboard_energy(y)) == 0.0


def test_checkerboard_energy_is_one_for_uneven_overlaps_and_zero_for_even():
    """Ones everywhere: with kernel 3 at stride 2 the inner pixels get 1, 2, 2, 4 taps in a
    2x2 pattern (a pure checkerboard: 1); with kernel 4 every pixel gets 4 (flat: 0)."""
    x = jnp.ones((1, 8, 8, 1))
    energies = {}
    for kernel, output_padding in ((3, 1), (4, 0)):
        layer = upsample.ConvTranspose(1, kernel, 2, 1, ONES, ZEROS, output_padding=output_padding)
        y = layer.apply(layer.init(jax.random.PRNGKey(0), x), x)
        assert y.shape == (1, 16, 16, 1)
        energies[kernel] = float(upsample.checkerboard_energy(y))
        inner = np.asarray(y[0, 2:-2, 2:-2, 0])
        assert sorted(np.unique(inner)) == ([1.0, 2.0, 4.0] if kernel == 3 else [4.0])
    assert energies[3] == pytest.approx(1.0, rel=1e-6)
    assert energies[4] == 0.0
