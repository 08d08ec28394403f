"""`dlrun inspect` on an autoencoder's run (dlrun/inspection/reconstructions.py), through the
real CLI on a tiny denoise run: the PSNRs it measures again are the summary's (its noisy inputs
drawn as the training's test pass drew them), the checkerboard of the output for a flat image,
the grid and the page in headless Chromium; the classifier's parts are refused, and the other way."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_mnist
from test_html_report import chromium

from dlrun import results

# 512 images, 1 epoch: seconds on a CPU; what is asserted holds for any trained weights
TINY = ["data=mnist", "data.subset=512", "data.val_size=256", "data.scaling=unit", "batch_size=64"]
TINY += ["epochs=1", "lr=0.003", "eval_batch_size=300"]  # 300: the test split in several batches
DOCS_PNG = Path(__file__).parent.parent / "docs" / "images" / "denoise-inspect.png"


def dlrun(*args, code=0):
    env = {**os.environ, "DLRUN_DATA_DIR": str(SHARED_DATA), "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", *map(str, args)], capture_output=True, text=True, env=env
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def denoise(tmp_path_factory):
    out = tmp_path_factory.mktemp("denoise") / "run"
    dlrun("train", *TINY, "model=autoencoder", "task=denoise", "augment.noise_std=0.5", "--out", out)
    return out, dlrun("inspect", out)


@needs_mnist
def test_the_psnrs_measured_again_are_the_summarys(denoise):
    run, printed = denoise
    summary = results.read_summary(run)
    # unit scaling: noise of std 0.5 alone is 10 log10(1 / 0.25) dB, about (clipping aside)
    assert abs(summary["test_psnr_noisy_input"] - 10 * math.log10(4)) < 0.1
    line = next(line for line in printed.splitlines() if line.startswith("test PSNR"))
    assert f"test PSNR {summary['test_psnr']:.2f} dB" in line
    assert f"(its noisy input: {summary['test_psnr_noisy_input']:.2f} dB)" in line


@needs_mnist
def test_the_checkerboard_is_of_the_output_for_a_flat_image_at_the_mean_pixel(denoise):
    run, printed = denoise
    board = json.loads((run / "inspect" / "checkerboard.json").read_text())
    assert 0 <= board["energy"] <= 1 and board["output_std"] > 0
    assert (board["upsample"], board["kernel"], board["stride"]) == ("transposed", 4, 2)
    # MNIST's mean test pixel is about 33 of 255 (13% of full scale)
    assert 25 < board["flat_pixel"][0] < 40
    assert f"checkerboard energy {board['energy']:.3f} on a flat image" in printed


@needs_mnist
def test_the_page_shows_input_noisy_and_output_in_chromium_without_errors(denoise, tmp_path):
    run, printed = denoise
    folder = run / "inspect"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkerboard.json",
        "index.html",
        "reconstructions.png",
    ]
    page_text = (folder / "index.html").read_text()
    assert "http" not in page_text and "src='reconstructions.png'" in page_text
    with chromium() as context:
        page = context.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((folder / "index.html").resolve().as_uri())
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete && i.naturalWidth)")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert errors == [] and len(widths) == 1 and all(w and w > 0 for w in widths), (errors, widths)
    assert b"\x89PNG" == (tmp_path / "page.png").read_bytes()[:4]


@needs_mnist
def test_parts_of_the_other_kind_are_refused_in_one_line(denoise, tmp_path):
    run, _ = denoise
    said = dlrun("inspect", run, "--confusions", code=2)
    assert said.strip() == (
        "error: inspect confusions: not a part of a task=denoise run (model autoencoder); "
        "its parts: reconstructions, checkerboard"
    )
    mlp = tmp_path / "mlp"
    dlrun("train", *TINY, "model.hidden=[16]", "--out", mlp)
    said = dlrun("inspect", mlp, "--checkerboard", code=2)
    assert (
        len(said.strip().splitlines()) == 1
        and "inspect checkerboard: not a part of a classifier's run" in said
    )
    assert "its parts: confusions, misclassified, filters, feature_maps, gradcam" in said


def test_the_committed_screenshot_of_a_denoising_result_is_a_png():
    data = DOCS_PNG.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(data) < 250_000
    width, height = np.frombuffer(data[16:24], ">u4")
    assert 600 <= width <= 2400 and 400 <= height <= 4000
