"""The compiled training step, epoch and evaluation: pure functions, no I/O.

`train_step(state, batch) -> (state, metrics)` is one update; `train_epoch` is a `lax.scan` of it
over shuffled mini-batches gathered by index from arrays already on the device, with the metrics
reduced on the device, so a whole epoch is one call and one fetch. Everything a sweep may vary
without changing shapes (optimizer hyperparameters, L2, dropout rate, noise, the random key)
lives in the state, so a group of trials is `jax.vmap` over this same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlrun import optim
from dlrun.models import layer_of, losses
from dlrun.models.tasks import IMAGE_TASKS


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    hparams: dict  # l2, dropout, noise_std: traced so that a sweep can vmap over them
    active: jax.Array  # False once a trial diverged or stopped early: its updates are masked


@dataclass(frozen=True)
class Program:
    """The static half of a run: everything that fixes the compiled program's shape."""

    model: nn.Module
    optimizer: optax.GradientTransformation
    loss_name: str
    task: str
    input_shape: tuple
    batch_size: int
    steps_per_epoch: int
    x_offset: float = 0.0
    x_scale: float = 1.0
    huber_delta: float = 1.0
    augment_shift: int = 0
    augment_flip: bool = False
    use_noise: bool = False
    schedule: Any = None  # step -> lr multiplier (the optimizer's); the metrics report the lr
    # In a group of trials an epoch with a non-finite loss or gradient leaves that trial as it
    # was (its siblings go on), and so does an epoch of a trial already stopped; a run alone
    # just ends as diverged, without the select. Once per epoch, not per step: a select over
    # the whole state every step cost more than the step's own elementwise work.
    mask_updates: bool = False
    frozen: frozenset = frozenset()  # top-level parameter modules that never train (model.trainable)
    # the image tasks: a pixel of peak value in the model's units is this many of them (255 of
    # 0..255 pixels scaled by x_scale), so errors divided by it are on the [0, 1] scale of PSNR
    pixel_peak: float = 1.0
    # task=denoise: the noise std of every input, validation and test too (one noisy copy of
    # those, drawn from `noise_seed`, so each epoch and each trial sees the same)
    denoise_std: float = 0.0
    noise_seed: int = 0


def init_variables(program: Program, key: jax.Array) -> dict:
    """Return the model's variables (params, batch_stats) drawn from `key`."""
    dummy = jnp.zeros((1, *program.input_shape), jnp.float32)
    return program.model.init({"params": key, "dropout": key}, dummy, train=False)


def create_state(
    program: Program,
    key: jax.Array,
    hparams: dict,
    optimizer: optax.GradientTransformation | None = None,
    variables: dict | None = None,
) -> TrainState:
    """Return a fresh state: parameters drawn from `key`, optimizer state, hyperparameters.

    `optimizer` (same structure as the program's, other hyperparameter values) lets each trial
    of a group start with its own injected lr, momentum, etc. `variables`: already drawn from
    `key` (a group draws them jitted: op by op, 32 trials cost seconds).
    """
    variables = init_variables(program, key) if variables is None else variables
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=(optimizer or program.optimizer).init(params),
        hparams={name: jnp.asarray(value, jnp.float32) for name, value in hparams.items()},
        active=jnp.asarray(True),
    )


def prepare_inputs(program: Program, x):
    """Scale raw inputs (uint8 images stay uint8 on the device until here)."""
    return (x.astype(jnp.float32) - program.x_offset) * program.x_scale


# fold_in, not a third split: the shift and noise draws of runs without flips stay as they were
FLIP_STREAM = 1


def flip_mask(key, n: int):
    """Return which of n images `augment` mirrors for this step key: each with probability 1/2."""
    return jax.random.bernoulli(jax.random.fold_in(key, FLIP_STREAM), 0.5, (n,))


def augment(program: Program, x, key, noise_std):
    """Random translations by up to `augment_shift` pixels (a random crop of the zero-padded
    image, per channel alike), left-right mirror images, and additive gaussian noise."""
    x = transform(program, x, key)
    if program.use_noise:
        x = noisy(x, jax.random.split(key)[1], noise_std)
    return x


def noisy(x, key, noise_std):
    """`x` plus gaussian noise of std `noise_std`, drawn on the device from `key`."""
    return x + noise_std * jax.random.normal(key, x.shape)


def transform(program: Program, x, key):
    """The geometric part of `augment`: shifts and mirror images (the target of an image task)."""
    shift_key = jax.random.split(key)[0]
    if program.augment_shift:
        s = program.augment_shift
        padded = jnp.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
        offsets = jax.random.randint(shift_key, (x.shape[0], 2), 0, 2 * s + 1)
        crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), x.shape[1:])
        x = jax.vmap(crop)(padded, offsets)
    if program.augment_flip:
        x = jnp.where(flip_mask(key, x.shape[0])[:, None, None, None], x[:, :, ::-1, :], x)
    return x


def training_pair(program: Program, x, y, key, noise_std):
    """(the model's input, its target) of one step: the augmented images and their labels, or
    for the image tasks the clean image as target, the input noisy for denoise."""
    x = prepare_inputs(program, x)
    if program.task not in IMAGE_TASKS:
        return augment(program, x, key, noise_std), y
    clean = transform(program, x, key)
    return (
        noisy(clean, jax.random.split(key)[1], program.denoise_std) if program.denoise_std else clean
    ), clean


def l2_penalty(params, frozen=frozenset()):
    """Return sum(w^2) over weight matrices and kernels (biases, slopes and BN scales excluded)
    of the modules that train (a frozen one's penalty would only be a gradient thrown away)."""
    leaves = jax.tree_util.tree_leaves({k: v for k, v in params.items() if k not in frozen})
    return sum(jnp.sum(jnp.square(w)) for w in leaves if w.ndim >= 2)


def _forward(program, params, batch_stats, x, train, dropout_rate, key):
    variables = {"params": params, "batch_stats": batch_stats}
    mutable = ["stats", "batch_stats"] if train else ["stats"]
    outputs, updates = program.model.apply(
        variables, x, train=train, dropout_rate=dropout_rate, rngs={"dropout": key}, mutable=mutable
    )
    return outputs, updates


def batch_metrics(program: Program, outputs, y):
    """Return per-example measures: `loss` and `accuracy` (correctness; NaN but for
    classification), and for the image tasks `pixel_mse`, the squared error on [0, 1] pixels."""
    if program.task in IMAGE_TASKS:  # a value per pixel: [n, H, W, C] as [n, pixels]
        outputs, y = outputs.reshape(outputs.shape[0], -1), y.reshape(y.shape[0], -1)
    per_example = losses.LOSSES[program.loss_name].fn(outputs, y, {"huber_delta": program.huber_delta})
    if program.task == "classification":
        correct = (losses.predict_classes(program.loss_name, outputs) == y).astype(jnp.float32)
    else:
        correct = jnp.full(per_example.shape, jnp.nan)
    measures = {"loss": per_example, "accuracy": correct}
    if program.task in IMAGE_TASKS:
        measures["pixel_mse"] = pixel_mse(program, losses.reconstruction(program.loss_name, outputs), y)
    return measures


def pixel_mse(program: Program, images, clean):
    """Per example, the mean squared error of `images` against `clean` on [0, 1] pixels."""
    error = (images - clean).reshape(images.shape[0], -1) / program.pixel_peak
    return jnp.mean(jnp.square(error), axis=-1)


def layer_grad_norms(grads) -> dict:
    """Return the L2 norm of the gradient of each layer, in the network's order."""
    squares: dict = {}
    for module, tree in grads.items():
        total = sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree))
        squares[layer_of(module)] = squares.get(layer_of(module), 0.0) + total
    return {layer: jnp.sqrt(value) for layer, value in squares.items()}


def train_step(program: Program, state: TrainState, x, y, key):
    """One update on one mini-batch. Returns the new state and this step's metrics."""
    augment_key, dropout_key = jax.random.split(key)
    x, y = training_pair(program, x, y, augment_key, state.hparams["noise_std"])

    def objective(params):
        outputs, updates = _forward(
            program, params, state.batch_stats, x, True, state.hparams["dropout"], dropout_key
        )
        measures = batch_metrics(program, outputs, y)
        data_loss = jnp.mean(measures["loss"])
        penalty = state.hparams["l2"] * l2_penalty(params, program.frozen)
        return data_loss + penalty, (data_loss, measures, updates)

    grads, (data_loss, measures, updates) = jax.grad(objective, has_aux=True)(state.params)
    step_updates, opt_state = program.optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, step_updates),
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
    )
    layer_norms = layer_grad_norms(grads)
    grad_norm = jnp.sqrt(sum(jnp.square(norm) for norm in layer_norms.values()))
    metrics = {
        **{name: jnp.mean(values) for name, values in measures.items()},
        "loss": data_loss,
        "grad_norm": grad_norm,
        "layer_grad_norms": layer_norms,
        # sow() stores a tuple per name; each layer sows once per call
        "stats": {name: sown[0] for name, sown in updates.get("stats", {}).items()},
    }
    return new_state, metrics


def _reduce_epoch(metrics):
    """Reduce per-step metrics: means, except 'ever active' which is an OR over steps."""
    stats = metrics.pop("stats")
    reduced = jax.tree_util.tree_map(lambda v: jnp.mean(v, axis=0), metrics)
    active = [jnp.any(v, axis=0) for k, v in stats.items() if k.endswith("_active")]
    saturated = [jnp.mean(v) for k, v in stats.items() if k.endswith("_saturated")]
    units = sum(a.size for a in active)
    reduced["dead_fraction"] = sum(jnp.sum(~a) for a in active) / units if units else jnp.float32(jnp.nan)
    reduced["saturated_fraction"] = jnp.mean(jnp.stack(saturated)) if saturated else jnp.float32(jnp.nan)
    return reduced


def train_epoch(program: Program, state: TrainState, x, y, key, order_key=None):
    """One epoch: shuffle, then scan `train_step` over `steps_per_epoch` full mini-batches.

    The last partial batch is dropped so every step has the same shape (one compiled program).
    `order_key` (default: drawn from `key`) shuffles; a group whose trials share it passes it
    unbatched under vmap, so each batch is gathered once and the first layer sees one input for
    all trials. Returns the new state and the epoch's metrics, reduced on the device.
    """
    own_order_key, steps_key = jax.random.split(key)
    order_key = own_order_key if order_key is None else order_key
    used = program.steps_per_epoch * program.batch_size
    order = jax.random.permutation(order_key, x.shape[0])[:used]
    batches = order.reshape(program.steps_per_epoch, program.batch_size)
    step_keys = jax.random.split(steps_key, program.steps_per_epoch)

    def body(carry, inputs):
        indices, step_key = inputs
        return train_step(program, carry, x[indices], y[indices], step_key)

    lr = epoch_lr(program, state)
    new_state, metrics = jax.lax.scan(body, state, (batches, step_keys))
    if program.mask_updates:
        finite = jnp.all(jnp.isfinite(metrics["loss"])) & jnp.all(jnp.isfinite(metrics["grad_norm"]))
        keep = state.active & finite
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(keep, new, old), new_state, state
        ).replace(active=keep)
    return new_state, {**_reduce_epoch(metrics), "lr": lr}


def epoch_lr(program: Program, state: TrainState):
    """The lr of the epoch's first step, read from the state: its injected lr times the schedule."""
    injected = optim.injected_hyperparams(state.opt_state)["learning_rate"]
    return injected * (program.schedule(state.step) if program.schedule else 1.0)


def evaluate(program: Program, params, batch_stats, x_batches, y_batches, mask, probabilities: bool = False):
    """Return mean loss and accuracy over pre-batched, padded data (`mask` marks real examples).

    With `probabilities` also return the class probabilities [batches, batch, classes] (for
    votes) from the same forward pass: the test set is run through each trial once.
    """

    def body(totals, inputs):
        index, x, y, valid = inputs
        x, y, measures = eval_pair(program, x, y, index)
        outputs, _ = _forward(program, params, batch_stats, x, False, 0.0, jax.random.PRNGKey(0))
        measures.update(batch_metrics(program, outputs, y))
        sums = {name: jnp.sum(jnp.where(valid, values, 0.0)) for name, values in measures.items()}
        kept = class_probabilities(program, outputs) if probabilities else None
        return jax.tree_util.tree_map(jnp.add, totals, sums), kept

    names = ["loss", "accuracy", *IMAGE_MEASURES.get(program.task, ())]
    totals = {name: jnp.zeros((), jnp.float32) for name in names}
    indices = jnp.arange(x_batches.shape[0])
    sums, kept = jax.lax.scan(body, totals, (indices, x_batches, y_batches, mask))
    count = jnp.sum(mask)
    metrics = {name: total / count for name, total in sums.items()}
    return (metrics, kept) if probabilities else metrics


# what the evaluation of an image task measures besides the loss: the output's error on pixels,
# and for denoise the noisy input's own (what the model has to improve on)
IMAGE_MEASURES = {"reconstruct": ("pixel_mse",), "denoise": ("pixel_mse", "noisy_input_mse")}


def eval_pair(program: Program, x, y, index):
    """(the model's input, its target, measures of the input) for evaluation batch `index`: the
    batch and its labels, or the clean image as target, its input noisy for denoise (drawn from
    the program's noise seed and the batch index: the same noisy copy every epoch)."""
    x = prepare_inputs(program, x)
    if program.task not in IMAGE_TASKS:
        return x, y, {}
    if program.task == "reconstruct":
        return x, x, {}
    key = jax.random.fold_in(jax.random.PRNGKey(program.noise_seed), index)
    inputs = noisy(x, key, program.denoise_std)
    return inputs, x, {"noisy_input_mse": pixel_mse(program, inputs, x)}


def class_probabilities(program: Program, outputs):
    if losses.LOSSES[program.loss_name].binary_only:  # one logit: p(class 1)
        p = jax.nn.sigmoid(outputs[:, 0])
        return jnp.stack([1 - p, p], axis=-1)
    return jax.nn.softmax(outputs, axis=-1)
