"""A run folder rebuilt for inspection: its config, model, best checkpoint and test split.

The model is built again from the run's `config.yaml` (the user's module imported as for
`--resume`, from the config folder the run recorded) with the convolutions in XLA's own NHWC
lowering: the parameters do not depend on the lowering (dlrun/models/layers.py), and every
layer's maps are then [batch, height, width, channels], which the probes read. The data are
loaded as training loaded them, so the test split is the same examples in the same order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig

from dlrun import data, models, results
from dlrun.config.load import load_run_config
from dlrun.errors import ConfigError, DataError
from dlrun.models import losses, tasks
from dlrun.training.program import pixel_peak
from dlrun.training.resume import in_recorded_config_dir

# Test examples per compiled forward pass: one program for the whole split, small enough that
# the activations of a ResNet on CIFAR fit a laptop's memory.
PREDICT_BATCH = 500


@dataclass(frozen=True)
class LoadedRun:
    """What inspecting a run needs; `x_test` as the data set holds it (uint8 images stay uint8)."""

    folder: Path
    cfg: DictConfig
    spec: data.DataSpec
    model: object  # a Linen module, or dlrun's wrapper of the user's (dlrun/models/user.py)
    variables: dict  # {"params": ..., "batch_stats": ...} of the best epoch
    x_test: np.ndarray
    y_test: np.ndarray
    x_offset: float
    x_scale: float
    task: str = "classification"  # or an image task's (tasks.IMAGE_TASKS): an autoencoder
    pixel_peak: float = 1.0  # a full-scale pixel in the model's units (PSNR's peak)

    @property
    def class_names(self) -> tuple:
        names = tuple(self.spec.class_names)
        return names if len(names) == self.spec.num_classes else tuple(map(str, range(self.spec.num_classes)))

    def inputs(self, x) -> jax.Array:
        """Raw examples scaled as the training step scales them (dlrun/training/step.py)."""
        return (jnp.asarray(x).astype(jnp.float32) - self.x_offset) * self.x_scale

    def is_image(self) -> bool:
        return len(self.spec.input_shape) == 3

    def outputs_images(self) -> bool:
        return self.task in tasks.IMAGE_TASKS


def _refuse(folder, why: str) -> ConfigError:
    return ConfigError(f"inspect {folder}: {why}")


def _nhwc(cfg: DictConfig) -> DictConfig:
    cfg = copy.deepcopy(cfg)
    if "conv_lowering" in cfg.model:
        cfg.model.conv_lowering = "xla"
    return cfg


def _checkpoint(folder: Path) -> dict:
    best = folder / results.BEST_CHECKPOINT
    if not best.is_file():
        raise _refuse(folder, f"the run has no {results.BEST_CHECKPOINT} (no epoch finished)")
    try:
        restored = flax.serialization.msgpack_restore(best.read_bytes())
    except Exception as error:
        raise _refuse(folder, f"{results.BEST_CHECKPOINT} cannot be read ({type(error).__name__})") from None
    if not isinstance(restored, dict) or not isinstance(restored.get("params"), dict):
        raise _refuse(folder, f"{results.BEST_CHECKPOINT} holds no parameters")
    return {"params": restored["params"], "batch_stats": restored.get("batch_stats") or {}}


def _check_fits(folder: Path, model, spec, variables: dict) -> None:
    """Refuse a checkpoint whose parameters are not the model's (an edited config.yaml)."""
    dummy = jax.ShapeDtypeStruct((1, *spec.input_shape), jnp.float32)
    wanted = jax.eval_shape(lambda x: model.init({"params": jax.random.PRNGKey(0)}, x, train=False), dummy)
    shapes = lambda tree: jax.tree_util.tree_map(np.shape, tree)  # noqa: E731
    if shapes(dict(wanted["params"])) != shapes(variables["params"]):
        raise _refuse(folder, f"{results.BEST_CHECKPOINT} does not hold the parameters of its config's model")


def load_run(folder) -> LoadedRun:
    """The run in `folder` rebuilt: ConfigError in one line for a folder that is no classifier's
    or autoencoder's run."""
    folder = Path(folder)
    if not (folder / results.CONFIG_FILE).is_file():
        what = "no such folder" if not folder.is_dir() else f"not a run folder (no {results.CONFIG_FILE})"
        raise _refuse(folder, f"{what}; give a run folder that `dlrun train` or a sweep wrote")
    with in_recorded_config_dir(folder):
        try:
            cfg = load_run_config(folder)
        except (OSError, ValueError) as error:
            raise _refuse(folder, f"its {results.CONFIG_FILE} cannot be read ({error})") from None
        spec = data.describe(cfg.data)
        task = tasks.resolve_task(cfg, spec)
        if task not in ("classification", *tasks.IMAGE_TASKS):
            raise _refuse(
                folder,
                f"a {task} run (data {spec.name}); inspect reads classifiers (confusions and "
                f"heatmaps are of classes) and autoencoders ({'|'.join(tasks.IMAGE_TASKS)})",
            )
        model = models.build_model(_nhwc(cfg), spec)
        variables = _checkpoint(folder)
        _check_fits(folder, model, spec, variables)
        try:
            dataset = data.load(cfg.data)
        except DataError as error:
            raise _refuse(folder, str(error)) from None
    return LoadedRun(
        folder,
        cfg,
        dataset.spec,
        model,
        variables,
        dataset.x_test,
        np.asarray(dataset.y_test),
        float(dataset.x_offset),
        float(dataset.x_scale),
        task,
        pixel_peak(dataset),
    )


def logits_fn(run: LoadedRun):
    """The model's jitted eval-mode forward: raw examples -> logits."""
    return jax.jit(lambda variables, x: run.model.apply(variables, run.inputs(x), train=False))


def probabilities(run: LoadedRun, outputs) -> np.ndarray:
    """Class probabilities from the logits, as the test pass computes them (one logit: sigmoid)."""
    if losses.LOSSES[losses.resolve_loss(run.cfg.loss, run.spec)].binary_only:
        p = jax.nn.sigmoid(outputs[:, 0])
        return np.asarray(jnp.stack([1 - p, p], axis=-1))
    return np.asarray(jax.nn.softmax(outputs, axis=-1))


def predict(run: LoadedRun) -> np.ndarray:
    """The test split's class probabilities [n, classes]: one compiled program, fixed batches."""
    forward, x = logits_fn(run), run.x_test
    batch = min(PREDICT_BATCH, len(x))
    pad = -len(x) % batch
    padded = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    outputs = [forward(run.variables, padded[i : i + batch]) for i in range(0, len(padded), batch)]
    return probabilities(run, jnp.concatenate(outputs))[: len(x)]
