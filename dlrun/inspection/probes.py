"""A conv layer's maps and Grad-CAM (Selvaraju et al. 2017), read from a Linen model as it is.

No model is changed for this: `nn.intercept_methods` sees every submodule's call, so a
top-level module's output can be recorded (`capture_intermediates`) or shifted by a zero
`delta`, whose gradient is the gradient with respect to that output. An NNX module of the
user's runs inside one bridge module, which Linen's interceptors do not see into: its
top-level layers (its attributes) are observed by dlrun/models/user.py's `observing` instead.
A model's conv layers are its top-level modules that own a 4-D kernel and return 4-D maps
[batch, H, W, channels]: the maps are the convolution's output, before its batch norm and
activation (which the built-in families apply outside the module).

Grad-CAM for the examples x with classes c, at the conv layer with maps A (numbered steps):
1. one forward pass records A [n, h, w, K] and the class scores y^c (the logits, before the
   softmax; one-logit models score class 1 as the logit and class 0 as its negative);
2. one backward pass of sum_i y^c_i gives dy^c/dA for every example at once (eval mode: the
   examples do not interact);
3. alpha_k = the mean of dy^c/dA_k over the map's h x w positions;
4. heatmap = ReLU(sum_k alpha_k A_k), upsampled bilinearly to the input's H x W, each map
   position placed at the centre of its receptive field (`placement`): a plain resize would
   shift the heatmap wherever the convolutions are unpadded (LeNet's conv2 sees only the
   central 20 of 28 pixels, at stride 2: a resize put the peaks up to 4 pixels off).
All of it is one jitted call for all the chosen examples.
"""

from __future__ import annotations

from contextlib import contextmanager

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlrun.errors import ConfigError
from dlrun.models import user


def _top_level(context) -> str | None:
    path = context.module.scope.path if context.module.scope is not None else ()
    return path[0] if len(path) == 1 and context.method_name == "__call__" else None


@contextmanager
def _layers_seen(hook):
    """`hook(name, output) -> output` on each top-level layer's output: a Linen model's by
    `nn.intercept_methods`, a user's NNX module's (inside its bridge) by `user.observing`."""

    def linen(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        name = _top_level(context)
        return hook(name, out) if name is not None else out

    with nn.intercept_methods(linen), user.observing(hook):
        yield


def module_outputs(model, variables, x) -> dict:
    """{top-level module: the shape of its output}, in network order (no compute)."""
    order: list = []

    def record(name, out):
        if name not in dict(order):
            order.append((name, out.shape if hasattr(out, "shape") else None))
        return out

    def forward(x):
        with _layers_seen(record):
            return model.apply(variables, x, train=False)

    jax.eval_shape(forward, jax.ShapeDtypeStruct(x.shape, jnp.float32))
    return dict(order)


def conv_layers(model, variables, input_shape) -> list[str]:
    """The model's conv layers in network order: top-level modules with a 4-D kernel and 4-D maps."""
    params = variables["params"]
    outputs = module_outputs(model, variables, np.zeros((1, *input_shape), np.float32))
    return [
        name
        for name, shape in outputs.items()
        if shape is not None
        and len(shape) == 4
        and np.ndim(dict(params.get(name, {})).get("kernel", np.zeros(()))) == 4
    ]


def check_layer(layer: str | None, layers: list[str], model_name: str) -> str:
    """The layer to probe: `layer`, or the last conv layer. ConfigError listing the conv layers."""
    if not layers:
        raise ConfigError(
            f"model {model_name} has no conv layer (a module returning [batch, H, W, channels] maps "
            "from a 4-D kernel); feature maps, filters and Grad-CAM need one"
        )
    if layer is None:
        return layers[-1]
    if layer not in layers:
        raise ConfigError(
            f"--layer {layer}: model {model_name} has no conv layer '{layer}'; its conv layers: "
            f"{', '.join(layers)}"
        )
    return layer


def class_scores(model, variables, x, classes, layer: str, delta):
    """(y^c of each example, the layer's maps) with `delta` added to those maps on the way."""
    seen: list = []

    def shift(name, out):
        if name == layer:
            out = out + delta
            seen.append(out)
        return out

    with _layers_seen(shift):
        logits = model.apply(variables, x, train=False)
    if logits.shape[-1] == 1:  # one logit: p(class 1) = sigmoid(logit)
        scores = jnp.where(classes == 1, logits[:, 0], -logits[:, 0])
    else:
        scores = jnp.take_along_axis(logits, classes[:, None], axis=-1)[:, 0]
    return scores, seen[0]


# Random inputs whose gradients map out the receptive fields: their union over inputs and
# channels covers each field whole however the ReLUs and max-pools route one gradient.
FIELD_PROBES = 4


def placement(model, variables, layer: str, input_shape: tuple) -> tuple:
    """Where the layer's map positions sit on the input: (scale, offset) per axis, the map's
    row i centred on input row scale * i + offset (likewise columns). Measured from the
    receptive fields of two interior positions per axis (the input gradient's bounding box);
    (None, None) per axis where they cannot tell (a 1-wide map, fields as large as the input)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2 * FIELD_PROBES, *input_shape))
    shape = module_outputs(model, variables, x)[layer]
    spots = [(side // 4, side - 1 - side // 4) for side in shape[1:3]]
    cotangent = np.zeros(shape, np.float32)
    cotangent[:FIELD_PROBES, spots[0][0], spots[1][0]] = 1.0
    cotangent[FIELD_PROBES:, spots[0][1], spots[1][1]] = 1.0
    maps = lambda x: class_scores(model, variables, x, jnp.zeros(len(x), jnp.int32), layer, 0.0)[1]  # noqa: E731
    # one compiled forward and backward: traced op by op, the forward alone took a second
    grad = jax.jit(lambda x, cotangent: jax.vjp(maps, x)[1](cotangent)[0])(x, jnp.asarray(cotangent))
    touched = np.abs(np.asarray(grad)).sum(axis=-1) > 0  # [n, H, W]
    placed = []
    for axis, (first, last) in enumerate(spots):
        centres = []
        for probes in (touched[:FIELD_PROBES], touched[FIELD_PROBES:]):
            hit = np.flatnonzero(probes.any(axis=0).any(axis=1 - axis))
            centres.append((hit[0] + hit[-1]) / 2 if len(hit) else np.nan)
        scale = (centres[1] - centres[0]) / (last - first) if last > first else np.nan
        ok = np.isfinite(scale) and scale > 0
        placed.append((float(scale), float(centres[0] - scale * first)) if ok else (None, None))
    return tuple(placed)


def _upsample(cams, size: tuple, placed: tuple):
    """The cams [n, h, w] at the input's size: bilinear, each map position at its field's centre
    (edges held beyond the outermost ones); a plain resize where the placement is unknown."""
    if any(scale is None for scale, _ in placed):
        return jax.image.resize(cams, (cams.shape[0], *size), "bilinear")
    rows, cols = ((jnp.arange(side) - offset) / scale for side, (scale, offset) in zip(size, placed))
    grid = jnp.meshgrid(rows, cols, indexing="ij")
    sample = lambda cam: jax.scipy.ndimage.map_coordinates(cam, grid, order=1, mode="nearest")  # noqa: E731
    return jax.vmap(sample)(cams)


def _gradcam(model, layer: str, size: tuple, placed: tuple, variables, x, classes, delta):
    grad, maps = jax.grad(
        lambda d: (lambda scores, maps: (jnp.sum(scores), maps))(
            *class_scores(model, variables, x, classes, layer, d)
        ),
        has_aux=True,
    )(delta)
    weights = jnp.mean(grad, axis=(1, 2))  # alpha: [n, K]
    cams = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", maps, weights))
    return _upsample(cams, size, placed), maps


def gradcam(model, variables, x, classes, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps [n, H, W] at the input's resolution, the layer's maps [n, h, w, K]) for the
    scaled inputs x [n, H, W, C] and the classes [n] explained. One compiled call."""
    x = jnp.asarray(x, jnp.float32)
    classes = jnp.asarray(classes, jnp.int32)
    shape = module_outputs(model, variables, x)[layer]
    placed = placement(model, variables, layer, tuple(x.shape[1:]))
    run = jax.jit(_gradcam, static_argnums=(0, 1, 2, 3))
    heatmaps, maps = run(model, layer, tuple(x.shape[1:3]), placed, variables, x, classes, jnp.zeros(shape))
    return np.asarray(heatmaps), np.asarray(maps)


def feature_maps(model, variables, x, layers: list[str]) -> dict:
    """{layer: its maps [n, h, w, K]} for the scaled inputs x, from one forward pass."""
    wanted = set(layers)

    def forward(x):
        kept: dict = {}

        def keep(name, out):
            if name in wanted:
                kept[name] = out
            return out

        with _layers_seen(keep):
            model.apply(variables, x, train=False)
        return kept

    return {name: np.asarray(maps) for name, maps in jax.jit(forward)(jnp.asarray(x, jnp.float32)).items()}


def first_filters(variables, layer: str) -> np.ndarray:
    """The conv layer's kernels as [filters, kh, kw, channels in] (from HWIO)."""
    return np.moveaxis(np.asarray(dict(variables["params"][layer])["kernel"]), -1, 0)
