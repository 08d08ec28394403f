"""What `dlrun inspect` measures of an autoencoder (task=reconstruct|denoise).

1. The test pass again, batch by batch as training ran it: for denoise each batch's noisy copy
   is drawn from data.seed and the batch's index (dlrun/training/step.py's eval_pair), so the
   PSNRs here are the summary's own, and the images drawn are the inputs the model was scored on.
2. The checkerboard: the output for a flat image (every pixel the test images' mean, scaled as
   the model sees inputs). An upsampler whose output pixels all get the same kernel taps gives
   a flat map back; a transposed conv whose kernel the stride does not divide leaves a period-2
   pattern, whose share of the output's variance is checkerboard_energy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dlrun import results
from dlrun.inspection.loaded import LoadedRun
from dlrun.models import losses, tasks
from dlrun.models.upsample import checkerboard_energy
from dlrun.training.step import noisy

CHECKERBOARD_JSON = "checkerboard.json"


@dataclass(frozen=True)
class Reconstructed:
    """The test split in the model's units: the clean images (the targets), the model's inputs
    (noisy for denoise) and the pixels its outputs stand for."""

    clean: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray


def _forward(run: LoadedRun):
    loss = losses.resolve_loss(run.cfg.loss, run.spec, run.task)
    return jax.jit(
        lambda variables, x: losses.reconstruction(loss, run.model.apply(variables, x, train=False))
    )


def reconstruct_test_split(run: LoadedRun) -> Reconstructed:
    """The test split through the model in the training's evaluation batches (padded alike)."""
    forward, x = _forward(run), run.x_test
    batch = min(int(run.cfg.eval_batch_size), len(x))
    padded = np.concatenate([x, np.zeros((-len(x) % batch, *x.shape[1:]), x.dtype)])
    std, seed = float(run.cfg.augment.noise_std), int(run.cfg.data.get("seed", 0))
    clean, inputs, outputs = [], [], []
    for index, start in enumerate(range(0, len(padded), batch)):
        images = run.inputs(padded[start : start + batch])
        given = images
        if run.task == "denoise":
            given = noisy(images, jax.random.fold_in(jax.random.PRNGKey(seed), index), std)
        clean.append(np.asarray(images))
        inputs.append(np.asarray(given))
        outputs.append(np.asarray(forward(run.variables, given)))
    return Reconstructed(*(np.concatenate(part)[: len(x)] for part in (clean, inputs, outputs)))


def pixel_psnr(run: LoadedRun, images: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each image's PSNR in dB against its clean twin, on pixels scaled to [0, 1]."""
    mse = np.mean(np.square((images - clean) / run.pixel_peak).reshape(len(images), -1), axis=1)
    return np.asarray([tasks.psnr(float(m)) for m in mse])


def split_psnr(run: LoadedRun, images: np.ndarray, clean: np.ndarray) -> float:
    """The PSNR of the mean squared error over the whole split (as the summary's test_psnr)."""
    return tasks.psnr(float(np.mean(np.square((images - clean) / run.pixel_peak))))


def as_pixels(run: LoadedRun, values: np.ndarray) -> np.ndarray:
    """Model-unit images as the data set holds them: 8-bit images back to uint8 (so that the
    pictures share one fixed scale), anything else as raw floats."""
    raw = np.asarray(values, np.float64) / run.x_scale + run.x_offset
    if run.x_test.dtype == np.uint8:
        return np.clip(np.rint(raw), 0, 255).astype(np.uint8)
    return raw


def checkerboard(run: LoadedRun) -> dict:
    """The trained model's output for a flat image: the share of its variance in the period-2
    pattern (`energy`, 0 flat .. 1 a pure checkerboard) and its PSNR against the flat input."""
    mean = np.mean(run.x_test.reshape(-1, run.x_test.shape[-1]).astype(np.float64), axis=0)
    flat = run.inputs(np.broadcast_to(mean, (1, *run.x_test.shape[1:])))
    output = _forward(run)(run.variables, flat)
    model = run.cfg.model
    return {
        "energy": float(checkerboard_energy(output)),
        "flat_psnr": split_psnr(run, np.asarray(output), np.asarray(flat)),
        "flat_pixel": [float(m) for m in mean],
        "output_std": float(jnp.std(output)),
        "upsample": str(model.upsample),
        "kernel": int(model.kernel),
        "stride": int(model.stride),
    }


def write_checkerboard(path: Path, measured: dict) -> Path:
    results.atomic_write_text(path, json.dumps(measured, indent=2) + "\n")
    return path


def measure_lines(psnr: dict, board: dict | None) -> list[str]:
    """An autoencoder's measures in words (the terminal and the page say the same)."""
    lines = [f"test PSNR {psnr['output']:.2f} dB"]
    if "noisy_input" in psnr:
        lines[0] += f" (its noisy input: {psnr['noisy_input']:.2f} dB)"
    if board is not None:
        lines.append(
            f"checkerboard energy {board['energy']:.3f} on a flat image "
            f"(upsample={board['upsample']} kernel {board['kernel']} stride {board['stride']}; "
            f"0 flat, 1 a pure period-2 pattern), its output's PSNR {board['flat_psnr']:.2f} dB"
        )
    return lines
