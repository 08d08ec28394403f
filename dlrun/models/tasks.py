"""What a run's outputs are trained to be: the data's own task, or an image.

`task=auto` is what the data says (classification or regression), except for a model whose
output is an image the size of its input (model=autoencoder), which reconstructs it. The image
tasks compare the outputs with the clean input pixels: `reconstruct` sees that image,
`denoise` sees it with gaussian noise of `augment.noise_std` added on the device. Their
measure besides the loss is the PSNR, 10 log10(peak^2 / MSE), on pixels scaled to [0, 1].
"""

from __future__ import annotations

import math

from dlrun.errors import ConfigError
from dlrun.targets import names_code

IMAGE_TASKS = ("reconstruct", "denoise")
# the families whose output is an image the size of the input
IMAGE_MODELS = frozenset({"autoencoder"})


def outputs_images(cfg) -> bool:
    """Whether the config's model outputs an image (a user's module is taken to output scores)."""
    model = getattr(cfg, "model", None)
    return model is not None and not names_code(model) and str(model.get("name")) in IMAGE_MODELS


def resolve_task(cfg, spec) -> str:
    """The run's task: `cfg.task`, with auto resolved (a config written before `task` existed
    has none: auto)."""
    task = str(getattr(cfg, "task", "auto"))
    if task != "auto":
        return task
    return IMAGE_TASKS[0] if outputs_images(cfg) else spec.task


def check(cfg, spec) -> None:
    """Raise ConfigError when the task does not fit the model or the noise."""
    task = resolve_task(cfg, spec)
    noise = float(cfg.augment.noise_std)
    if task in IMAGE_TASKS and not outputs_images(cfg):
        name = cfg.model.get("_target_") or cfg.model.name
        raise ConfigError(
            f"task={task} needs a model whose output is an image: model=autoencoder "
            f"(model={name} outputs {spec.task} scores)"
        )
    if task == "denoise" and noise <= 0:
        raise ConfigError(
            f"task=denoise needs augment.noise_std > 0 (the noise the model learns to remove), got {noise:g}"
        )
    if task == "reconstruct" and noise > 0:
        raise ConfigError(
            f"task=reconstruct with augment.noise_std={noise:g}: a noisy input with the clean "
            "image as target is task=denoise"
        )


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on pixels in [0, 1]."""
    if not math.isfinite(mse):
        return math.nan
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)
