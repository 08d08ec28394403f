"""model=autoencoder and the image tasks (dlrun/models/autoencoder.py, dlrun/models/tasks.py),
through the real CLI on a small MNIST subset: reconstruct's loss falls and its test PSNR is
10 log10(1 / MSE) of the saved parameters evaluated here; denoise beats its noisy input, whose
own PSNR is the closed form of the noise; a sweep trains lr x seed in one group per upsampling;
the report shows PSNR and a diagnosis; the decoder's geometry at config time."""

import json
import math
import os
import re
import subprocess
import sys

import flax.serialization
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from dlrun import data, models, results
from dlrun.config.load import compose_config, load_run_config
from dlrun.errors import ConfigError
from dlrun.models import autoencoder

# 512 images, 3 epochs of batches of 64: seconds on a CPU, enough for the loss to fall
SMALL = ["model=autoencoder", "data.subset=512", "data.val_size=256", "data.scaling=unit", "batch_size=64"]
SMALL += ["epochs=3", "lr=0.01", "eval_batch_size=2000"]
NOISE_STD = 0.5


def dlrun(*args, cwd=None):
    env = {**os.environ, "DLRUN_DATA_DIR": str(SHARED_DATA), "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", *args], capture_output=True, text=True, env=env, cwd=cwd
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def reconstruct(tmp_path_factory):
    out = tmp_path_factory.mktemp("reconstruct") / "run"
    dlrun("train", *SMALL, "--out", str(out))
    return out


@pytest.fixture(scope="module")
def denoise(tmp_path_factory):
    out = tmp_path_factory.mktemp("denoise") / "run"
    dlrun("train", *SMALL, "task=denoise", f"augment.noise_std={NOISE_STD}", "--out", str(out))
    return out


def test_reconstruct_learns_and_records_psnr_per_epoch(reconstruct):
    summary = results.read_summary(reconstruct)
    curves = results.read_metrics(reconstruct)
    assert summary["task"] == "reconstruct" and summary["status"] == "completed"
    assert summary["test_accuracy"] is None and "test_psnr_noisy_input" not in summary
    assert curves["train_loss"].iloc[-1] < 0.7 * curves["train_loss"].iloc[0]
    # loss=mse (auto) on pixels in [0, 1]: the loss is the pixel MSE, so PSNR = -10 log10(loss)
    for split in ("train", "val"):
        np.testing.assert_allclose(
            curves[f"{split}_psnr"], -10 * np.log10(curves[f"{split}_loss"]), rtol=1e-5
        )


def test_test_psnr_is_that_of_the_saved_parameters_evaluated_directly(reconstruct):
    """The final parameters (last checkpoint) run here on the test images, MSE by numpy."""
    cfg = load_run_config(reconstruct)
    dataset = data.load(cfg.data)
    payload = flax.serialization.msgpack_restore((reconstruct / results.LAST_CHECKPOINT).read_bytes())
    model = models.build_model(cfg, dataset.spec)
    images = dataset.x_test.astype(np.float32) / 255.0  # data.scaling=unit of 8-bit pixels
    outputs = np.concatenate(
        [
            np.asarray(model.apply({"params": payload["state"]["params"]}, jnp.asarray(images[i : i + 2000])))
            for i in range(0, len(images), 2000)
        ]
    )
    assert outputs.shape == images.shape == (10000, 28, 28, 1)
    mse = float(np.mean((outputs.astype(np.float64) - images) ** 2))
    summary = results.read_summary(reconstruct)
    assert summary["test_psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)
    assert summary["test_loss"] == pytest.approx(mse, rel=1e-4)


def test_denoise_beats_its_noisy_input_whose_psnr_is_the_noise_closed_form(denoise):
    summary = results.read_summary(denoise)
    assert summary["task"] == "denoise"
    # unclipped gaussian noise of std 0.5 on [0, 1] pixels: MSE 0.25, PSNR 10 log10(4) = 6.02 dB
    # (7.8 million draws: the sample MSE is within 0.1 % of 0.25)
    assert summary["test_psnr_noisy_input"] == pytest.approx(10 * math.log10(1 / NOISE_STD**2), abs=0.01)
    assert summary["test_psnr"] > summary["test_psnr_noisy_input"] + 2
    assert "val_psnr" in results.read_metrics(denoise)


def test_report_shows_psnr_and_a_diagnosis_without_accuracy(reconstruct, denoise):
    text = dlrun("report", str(reconstruct.parent), str(denoise.parent), "--format", "csv")
    frame = pd.read_csv(pd.io.common.StringIO(text))
    assert frame["test_psnr"].notna().all() and frame["diagnosis"].notna().all()
    assert frame["test_psnr_noisy_input"].notna().sum() == 1
    table = dlrun("report", str(reconstruct.parent), str(denoise.parent))
    assert "test PSNR" in table and "acc" not in table.split("\n\n")[0]


def test_sweep_over_upsampling_trains_lr_and_seed_in_one_group_each(tmp_path):
    out = tmp_path / "sweep"
    dlrun(
        "sweep",
        *SMALL,
        "epochs=1",
        "task=denoise",
        f"augment.noise_std={NOISE_STD}",
        "model.upsample=transposed,nearest",
        "lr=0.01,0.003",
        "seed=0,1",
        "--out",
        str(out),
    )
    summaries = [json.loads(path.read_text()) for path in sorted(out.glob("*/summary.json"))]
    assert len(summaries) == 8 and {s["group_size"] for s in summaries} == {4}
    assert {s["status"] for s in summaries} == {"completed"}
    # the evaluation's noise is drawn from data.seed: one noisy test set for every trial
    assert len({s["test_psnr_noisy_input"] for s in summaries}) == 1
    by_upsample = {}
    for s in summaries:
        by_upsample.setdefault(s["config"]["model"]["upsample"], set()).add(s["test_psnr"])
    assert {len(values) for values in by_upsample.values()} == {4}  # each trial its own


def geometry(*overrides):
    cfg = compose_config(["model=autoencoder", *overrides], check=False)
    return autoencoder.decoder_geometry(cfg.model, data.describe(cfg.data))


def test_decoder_mirrors_the_encoder_and_finds_the_output_padding():
    code, layers = geometry()  # kernel 4, stride 2, padding 1: (7-1)*2 - 2 + 4 = 14, then 28
    assert code == (7, 7) and [(layer.out, layer.output_padding) for layer in layers] == [
        ((14, 14), 0),
        ((28, 28), 0),
    ]
    _, layers = geometry("model.kernel=3")  # (7-1)*2 - 2 + 3 = 13: one row short, added
    assert [layer.output_padding for layer in layers] == [1, 1]
    _, layers = geometry("model.upsample=bilinear", "model.encoder=mlp")
    assert [layer.features for layer in layers] == [16, 1]  # the image's one channel last


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.padding=3"],
            "dec1 (transposed, kernel 4, stride 2, padding 3) gives (7 - 1) * 2 - 2 * 3 + 4 = 10 "
            "(+ output_padding 0..1), but its encoder twin's side is 14",
        ),
        (
            ["model.kernel=3", "model.output_padding=0"],
            "gives (7 - 1) * 2 - 2 * 1 + 3 = 13 (+ output_padding 0), but its encoder twin's side is 14",
        ),
        (
            ["model.upsample=nearest", "model.channels=[8,8,8]"],
            "dec1 (nearest x2) makes a side of 4 into 8, but its encoder twin's is 7",
        ),
    ],
)
def test_a_decoder_that_misses_its_twin_is_refused_with_the_numbers(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        geometry(*overrides)
