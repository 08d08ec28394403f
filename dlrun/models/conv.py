"""2-D convolution and pooling lowerings for LeNet- and CIFAR-ResNet-sized networks.

XLA's own convolution is slow on CPU for these shapes (a LeNet-5 training
step, batch 128: ~25 ms with lax.conv vs ~12 ms for PyTorch eager), so this
module offers several lowerings of the same zero-padded, strided
cross-correlation and picks one per backend:

* ``"xla"``        lax.conv_general_dilated (cuDNN on GPU; the reference).
* ``"im2col"``     NHWC patches by slicing + one matmul, autodiff backward.
* ``"batch_last"`` internal layout [C, H, W, B] (batch in the vector lanes).
  For cin == 1 at stride 1 the forward is a sum of kh*kw shifted slices
  times scalar weights with a custom VJP; otherwise it is im2col in that
  layout (a stride takes every s-th shifted slice; a 1x1 kernel is a
  strided slice and one matmul).

Layout names: NHWC = [batch, height, width, channel]; CHWB ("batch last")
= [channel, height, width, batch].  Kernels are always HWIO.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax import lax

LOWERINGS = ("xla", "im2col", "batch_last")

# Measured on a 2-core AVX-512 Xeon (benchmarks/bench_lenet_step_cpu.py,
# LeNet-5 step, batch 128): batch_last wins both convs; a scanned step takes
# ~14 ms through NHWC conv2d (im2col ~17, xla ~70) and ~8.5 ms when the model
# stays in CHWB via conv2d_batch_last (PyTorch eager ~11).  On GPU/TPU
# lax.conv maps to cuDNN / the MXU.
# ResNet-20 (3x3 convs of 16-64 channels, stride 2, 1x1 projections, batch
# norm on the channel axis 0), batch 128, 32x32x3, whole training step
# (benchmarks/bench_resnet_cpu.py, one run on a heavily shared 2-core CPU):
# batch_last ~0.6-0.9 s/step, lax.conv NHWC ~41-66 s/step (compile + first
# 3 steps: 13 min, against 1.6 min), PyTorch eager ~3-6 s/step. So batch_last stays the CPU default
# for every shape measured; no per-shape switch to XLA was worth it.
_AUTO = {"cpu": "batch_last"}


def resolve_lowering(lowering: str, backend: str | None = None) -> str:
    """Map ``"auto"`` to the fastest lowering for ``backend`` (default: JAX's
    default backend): "batch_last" on CPU, "xla" elsewhere; validate names."""
    if lowering == "auto":
        return _AUTO.get(backend or jax.default_backend(), "xla")
    if lowering not in LOWERINGS:
        choices = ", ".join(("auto",) + LOWERINGS)
        raise ValueError(f"unknown conv lowering {lowering!r}; valid choices: {choices}")
    return lowering


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output length of a convolution: floor((W + 2p - d(k-1) - 1) / s) + 1."""
    if stride < 1 or dilation < 1 or kernel < 1 or padding < 0:
        raise ValueError(
            f"invalid conv geometry: kernel={kernel} padding={padding} stride={stride} dilation={dilation}"
        )
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(
            f"conv output would be empty: size={size} kernel={kernel} padding={padding} dilation={dilation}"
        )
    return out


def to_batch_last(x):
    """NHWC -> CHWB (and back: the permutation is its own inverse)."""
    return jnp.transpose(x, (3, 1, 2, 0))


from_batch_last = to_batch_last


def _check_conv_args(x, kernel, padding, stride=1):
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(
            f"conv2d wants a 4-D input and an HWIO kernel, got shapes {x.shape} and {kernel.shape}"
        )
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")


def conv2d(x, kernel, *, padding: int = 0, lowering: str = "auto", stride: int = 1):
    """Cross-correlation, NHWC input/output, HWIO kernel, no bias.

    ``padding`` zero-pads both sides of H and W; ``stride`` steps both.
    ``lowering`` is one of ``LOWERINGS`` or ``"auto"`` (see ``resolve_lowering``).
    """
    _check_conv_args(x, kernel, padding, stride)
    if x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"input has {x.shape[-1]} channels, kernel expects {kernel.shape[2]}")
    name = resolve_lowering(lowering)
    if name == "xla":
        return lax.conv_general_dilated(
            x, kernel, (stride, stride), [(padding, padding)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if name == "im2col":
        return _conv_im2col_nhwc(x, kernel, padding, stride)
    # NHWC in/out costs transposes (~6 ms of a 14 ms step: XLA fuses them
    # into neighbours badly); models that stay in CHWB call conv2d_batch_last.
    xc = _materialize_grad(to_batch_last(x))
    return from_batch_last(conv2d_batch_last(xc, kernel, padding=int(padding), stride=stride))


def conv2d_batch_last(x, kernel, *, padding: int = 0, stride: int = 1):
    """Like ``conv2d`` but on the CHWB layout: x [cin, H, W, B] -> [cout, H', W', B]."""
    _check_conv_args(x, kernel, padding, stride)
    if x.shape[0] != kernel.shape[2]:
        raise ValueError(f"input has {x.shape[0]} channels, kernel expects {kernel.shape[2]}")
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    if kernel.shape[2] == 1 and stride == 1:
        return _shifted_conv(xp, kernel)
    return _im2col_batch_last(xp, kernel, stride)


def _conv_im2col_nhwc(x, kernel, padding, stride=1):
    kh, kw, cin, cout = kernel.shape
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    h, w = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    cols = [
        xp[:, i : i + (h - 1) * stride + 1 : stride, j : j + (w - 1) * stride + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1).reshape(-1, kh * kw * cin)
    y = patches @ kernel.reshape(kh * kw * cin, cout)
    return y.reshape(x.shape[0], h, w, cout)


def _patches_batch_last(xp, kh, kw, stride=1):
    """[C, Hp, Wp, B] -> [(kh, kw, C), H*W*B] rows ordered like an HWIO kernel."""
    c, hp, wp, b = xp.shape
    h, w = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    # Stacking the 5 W-shifts, then 5 H-shifts of that, is ~2x faster on XLA
    # CPU than one 25-way stack of 2-D-strided slices.
    xj = jnp.stack([xp[:, :, j : j + (w - 1) * stride + 1 : stride, :] for j in range(kw)])
    p = jnp.stack([xj[:, :, i : i + (h - 1) * stride + 1 : stride] for i in range(kh)])
    return p.reshape(kh * kw * c, h * w * b)


def _im2col_batch_last(xp, kernel, stride=1):
    # cin > 1: one [cout, K] x [K, N] matmul with N = H*W*B in the lanes.
    # Autodiff of it gives the good backward (dK = dy @ P^T, dx = col2im of
    # K @ dy); conv2 fwd+bwd ~1.5x faster than NHWC im2col, ~2x than lax.conv.
    kh, kw, cin, cout = kernel.shape
    h, w, b = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1, xp.shape[3]
    p = _patches_batch_last(xp, kh, kw, stride)
    y = lax.dot_general(kernel.reshape(kh * kw * cin, cout), p, (((0,), (0,)), ((), ())))
    return y.reshape(cout, h, w, b)


def _shifted_sum(xp, kernel):
    """sum_{i,j,ci} k[i,j,ci,:] * xp[ci, i:i+H, j:j+W, :] as one elementwise fusion."""
    kh, kw, cin, cout = kernel.shape
    h, w = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    y = None
    for i in range(kh):
        for j in range(kw):
            for c in range(cin):
                term = kernel[i, j, c][:, None, None, None] * xp[c, i : i + h, j : j + w, :][None]
                y = term if y is None else y + term
    return y


@jax.custom_vjp
def _shifted_conv(xp, kernel):
    # cin == 1: with batch in the lanes this forward is ~0.8 ms vs ~5-7 ms for
    # lax.conv / NHWC im2col (whose lanes would hold the size-1 channel dim).
    return _shifted_sum(xp, kernel)


def _materialize(x):
    """Identity that XLA cannot fuse into its consumers (a cumsum over a
    length-2 axis, ~0.1 ms here)."""
    return lax.cumsum(jnp.stack([x, jnp.zeros_like(x)]), axis=0)[0]


@jax.custom_vjp
def _materialize_grad(x):
    """Identity whose cotangent is materialized: keeps XLA from fusing the
    CHWB->NHWC transpose of dx into the col2im sum (a ~14 ms loop)."""
    return x


_materialize_grad.defvjp(lambda x: (x, None), lambda _, g: (_materialize(g),))


def _shifted_conv_fwd(xp, kernel):
    # Left fusible, XLA re-runs this 25-term sum inside each consumer (relu,
    # pool max, pool ==max mask, relu grad): ~2 ms of a ~9 ms LeNet step.
    return _materialize(_shifted_sum(xp, kernel)), (xp, kernel)


def _shifted_conv_bwd(res, dy):
    xp, kernel = res
    kh, kw = kernel.shape[:2]
    dk = _wgrad_row_windows(xp, dy, kh, kw)
    # Input grad = full correlation of dy with the flipped, in/out-swapped
    # kernel; XLA drops it when x needs no gradient (the usual first layer).
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _shifted_sum(jnp.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0))), flipped)
    return dx, dk


_shifted_conv.defvjp(_shifted_conv_fwd, _shifted_conv_bwd)


def _wgrad_row_windows(xp, dy, kh, kw):
    """dk[i,j,0,c] = sum_{h,w,b} xp[0,h+i,w+j,b] dy[c,h,w,b] for cin == 1.

    Contracting over the contiguous (w, b) run of each row turns the weight
    gradient into one well-shaped matmul [(j,h'), W*B] x [W*B, (c,h)] plus a
    cheap diagonal pick (h' = h + i).  It does ~6x the minimal flops yet is
    ~3x faster than 25 reductions or a patches matmul, which are bound by
    re-reading dy or writing the 10 MB patch matrix.
    """
    c, h, w, b = dy.shape
    hp = xp.shape[1]
    rows = jnp.stack([xp[0, :, j : j + w, :] for j in range(kw)]).reshape(kw * hp, w * b)
    g = lax.dot_general(rows, dy.reshape(c * h, w * b), (((1,), (1,)), ((), ())))
    g = g.reshape(kw, hp, c, h).transpose(0, 2, 1, 3).reshape(kw, c, hp * h)
    # Element (h', h) sits at h'*H + h; h' = h + i is a stride-(H+1) slice.
    diag = [g[:, :, i * h : i * h + (h + 1) * (h - 1) + 1 : h + 1].sum(-1) for i in range(kh)]
    return jnp.stack(diag).reshape(kh, kw, 1, c)


def _pool_view(x, window):
    if x.ndim != 4:
        raise ValueError(f"pooling wants a 4-D input, got shape {x.shape}")
    d0, h, w, d3 = x.shape
    if h % window or w % window:
        raise ValueError(f"pool window {window} does not divide spatial size {h}x{w}")
    return x.reshape(d0, h // window, window, w // window, window, d3)


def max_pool(x, window: int = 2):
    """Non-overlapping max pool over axes 1 and 2 (NHWC or CHWB alike).

    reshape + max: fwd+bwd ~2.6 ms vs ~5.4 ms for lax.reduce_window on CPU.
    Its gradient splits ties evenly (JAX's rule for max).
    """
    return _pool_view(x, window).max(axis=(2, 4))


def avg_pool(x, window: int = 2):
    """Non-overlapping average pool over axes 1 and 2 (NHWC or CHWB alike)."""
    return _pool_view(x, window).mean(axis=(2, 4))
