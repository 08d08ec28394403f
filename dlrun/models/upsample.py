"""Layers that make a map larger: the transposed convolution and upsampling followed by a conv.

"For some applications you want images as outputs": a decoder (dlrun/models/autoencoder.py)
grows a small map back to the input's size with one of these per layer.

* ``transposed``: every input pixel scatters a copy of the kernel, scaled by its value, into
  the output at stride `s`; `p` rows and columns are cropped from each border and
  `output_padding` added at the bottom and right, so
  out = (in - 1) * s - 2p + k + output_padding (transposed_output_size). Where the kernel is
  not a multiple of the stride the copies overlap unevenly: the checkerboard effect
  (checkerboard_energy measures it).
* ``nearest`` / ``bilinear``: the map resized by the factor `s` (jax.image.resize), then a
  stride-1 convolution that keeps its size ("SAME" zero padding): the upscaling strategies
  preferred where the checkerboard shows.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

UPSAMPLES = ("transposed", "nearest", "bilinear")


def transposed_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0
):
    """Output length of a transposed convolution: (in - 1) * s - 2p + k + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def upsampled_size(size: int, upsample: str, kernel: int, stride: int, padding: int, output_padding: int):
    """Output length of one decoder layer of the given kind (a resize multiplies by the factor)."""
    if upsample == "transposed":
        return transposed_output_size(size, kernel, stride, padding, output_padding)
    return size * stride


class ConvTranspose(nn.Module):
    """A transposed convolution as the course defines it (and PyTorch's ConvTranspose2d): the
    scatter-add of the kernel, cropped by `padding`, grown by `output_padding`.

    flax.linen.ConvTranspose with `transpose_kernel` is exactly that scatter-add; its padding
    pads the stride-dilated input, so a crop of p is a pad of k - 1 - p on each side. The kernel
    is [k, k, out, in]: the kernel of the convolution this layer is the transpose of.
    """

    features: int
    kernel_size: int
    stride: int
    padding: int
    kernel_init: Callable
    bias_init: Callable
    output_padding: int = 0

    @nn.compact
    def __call__(self, x):
        before = self.kernel_size - 1 - self.padding
        return nn.ConvTranspose(
            self.features,
            (self.kernel_size,) * 2,
            strides=(self.stride,) * 2,
            padding=[(before, before + self.output_padding)] * 2,
            transpose_kernel=True,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            name="transposed",
        )(x)


class UpsampleConv(nn.Module):
    """Resize by `factor` (nearest or bilinear interpolation), then a size-keeping convolution."""

    features: int
    kernel_size: int
    factor: int
    method: str  # nearest | bilinear
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, x):
        n, height, width, channels = x.shape
        x = jax.image.resize(x, (n, height * self.factor, width * self.factor, channels), self.method)
        # SAME pads (k-1)//2 before and k//2 after: an even kernel keeps the size too
        return nn.Conv(
            self.features,
            (self.kernel_size,) * 2,
            padding="SAME",
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            name="conv",
        )(x)


def upsampling_layer(
    upsample: str, features: int, kernel: int, stride: int, padding: int, output_padding: int, **inits
):
    """The decoder layer of the given kind (inits: kernel_init, bias_init, name)."""
    if upsample == "transposed":
        return ConvTranspose(features, kernel, stride, padding, output_padding=output_padding, **inits)
    return UpsampleConv(features, kernel, stride, upsample, **inits)


def checkerboard_energy(y, border: int = 2) -> jax.Array:
    """The share of a map's energy (its variance about the mean) in its period-2 pattern.

    On a flat input an upsampler whose output pixels all get the same number of kernel taps
    gives a flat map; a transposed convolution whose kernel the stride does not divide overlaps
    unevenly and leaves a pattern repeating every 2 pixels. The energy of the 2x2 phase means
    about the overall mean, over the whole energy about it: 0 for a flat map, 1 for a pure
    checkerboard. `y` is [N, H, W, C]; `border` pixels are dropped on each side first, where
    the zero padding rather than the overlap shapes the output.
    """
    inner = y[:, border:-border, border:-border, :]
    inner = inner[:, : inner.shape[1] // 2 * 2, : inner.shape[2] // 2 * 2, :]
    mean = jnp.mean(inner, axis=(1, 2), keepdims=True)
    phases = jnp.stack([inner[:, i::2, j::2, :] for i in (0, 1) for j in (0, 1)])
    pattern = jnp.mean(phases, axis=(2, 3), keepdims=True) - mean[None]  # [4, N, 1, 1, C]
    # each phase's deviation holds for a quarter of the pixels
    pattern_energy = jnp.sum(jnp.square(pattern)) * inner.shape[1] * inner.shape[2] / 4
    return pattern_energy / jnp.maximum(jnp.sum(jnp.square(inner - mean)), 1e-30)
