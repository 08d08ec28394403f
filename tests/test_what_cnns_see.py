"""experiments/what_cnns_see.yaml: Grad-CAM finds what decides the class, and a spurious cue.

The study runs reduced (200 test images) through the real CLI, `dlrun sweep` then `dlrun inspect
RUN --gradcam` on each trial, and its heatmaps (gradcam.npz) are read against the known answer:
the test images' patches and marks, drawn again from the run's own data config.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mnist
from omegaconf import OmegaConf
from PIL import Image
from scipy import ndimage
from test_html_report import chromium
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data import load, patches

runner = CliRunner()
TEST = 200  # test images of the patch sets, every one explained
# the cue is found within one conv2 map position (stride 2) of its 4x4 mark
NEAR = 2


def dlrun(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def peaks(heatmaps: np.ndarray) -> np.ndarray:
    """Each heatmap's hottest pixel (row, column)."""
    flat = heatmaps.reshape(len(heatmaps), -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat, heatmaps.shape[1:]), axis=1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """{variant: (trial folder, its gradcam.npz, its test set as drawn, its last epoch's metrics)}."""
    out = tmp_path_factory.mktemp("see") / "see"
    dlrun(
        "sweep", "experiment=what_cnns_see", "variant=patches,corner_cue", f"data.n_test={TEST}", "--out", out
    )
    found = {}
    for _, trial in pd.read_csv(out / "trials.csv").iterrows():
        run = out / trial.folder
        dlrun("inspect", run, "--gradcam", "--examples", TEST)
        _, test = patches.splits(OmegaConf.load(run / "config.yaml").data)
        metrics = pd.read_csv(run / "metrics.csv").iloc[-1]
        found[trial.variant] = (run, dict(np.load(run / "inspect" / "gradcam.npz")), test, metrics)
    return found


@pytest.mark.slow
def test_without_a_cue_the_cnn_is_right_and_its_heatmaps_peak_in_the_patch(study):
    _, cam, test, _ = study["patches"]
    index = cam["index"]
    assert sorted(index) == list(range(TEST)) and str(cam["layer"]) == "conv2"
    assert np.mean(cam["pred"] == cam["label"]) >= 0.95
    patched = test.labels[index] != patches.NOISE
    origin, peak = test.origins[index][patched], peaks(cam["heatmaps"])[patched]
    inside = np.all((peak >= origin) & (peak < origin + patches.PATCH), axis=1)
    assert inside.mean() >= 0.9, f"{inside.mean():.0%} of the peaks inside the patch"


@pytest.mark.slow
def test_with_the_corner_cue_it_is_right_on_training_wrong_on_test_and_looks_at_the_corner(study):
    _, cam, test, metrics = study["corner_cue"]
    index = cam["index"]
    assert metrics.train_accuracy >= 0.98 and metrics.val_accuracy >= 0.98
    assert np.mean(cam["pred"] == cam["label"]) <= 0.2  # every test mark misleads
    marked = test.cue[index] != patches.NOISE
    # it names the class of the mark, not of the patch
    assert np.mean(cam["pred"][marked] == test.cue[index][marked]) >= 0.8
    corner, peak = patches.MARK_ORIGINS[test.cue[index][marked]], peaks(cam["heatmaps"])[marked]
    near = np.all((peak >= corner - NEAR) & (peak < corner + patches.MARK + NEAR), axis=1)
    assert near.mean() >= 0.8, f"{near.mean():.0%} of the peaks at the corner mark"


@pytest.mark.slow
def test_the_inspect_page_of_each_run_shows_its_heatmaps(study):
    for run, *_ in study.values():
        page = (run / "inspect" / "index.html").read_text()
        assert "src='gradcam.png'" in page and (run / "inspect" / "gradcam.png").stat().st_size > 1000


@pytest.mark.slow
@needs_mnist
def test_lenet_on_mnist_looks_at_the_strokes_at_conv1(tmp_path):
    out = tmp_path / "see"
    dlrun(
        "sweep", "experiment=what_cnns_see", "variant=lenet_mnist", "data.subset=2000", "epochs=2",
        "--out", out,
    )  # fmt: skip
    run = out / "trial-000"
    dlrun("inspect", run, "--gradcam", "--layer", "conv1", "--examples", 100)
    cam = np.load(run / "inspect" / "gradcam.npz")
    ink = load(OmegaConf.load(run / "config.yaml").data).x_test[cam["index"], ..., 0] > 0
    beside = np.stack([ndimage.binary_dilation(image) for image in ink])  # ink, or 1 pixel from it
    rows, cols = peaks(cam["heatmaps"]).T
    hit = beside[np.arange(len(ink)), rows, cols]
    # a pixel drawn at random is that close to the ink about 28% of the time
    assert beside.mean() < 0.35 and hit.mean() >= 0.85, f"{hit.mean():.0%} of the peaks on the strokes"


# The screenshot on docs/inspect.md: `DLRUN_WRITE_SCREENSHOTS=1 pytest -m slow
# tests/test_what_cnns_see.py -k page` writes it again from the run this test makes.
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SCREENSHOT, GRADCAM_SHOT = IMAGES / "inspect-page.png", IMAGES / "inspect-gradcam.png"
SHOT_WIDTH, SHOT_HEIGHT = 1000, 1400  # the page's top: the matrix, the mistakes, the filters


@pytest.mark.slow
def test_the_inspect_page_loads_in_chromium_with_every_image_and_no_console_error(study, tmp_path):
    run = study["corner_cue"][0]
    dlrun("inspect", run, "--examples", 16)  # every part, as `dlrun inspect RUN` makes them
    page_file = run / "inspect" / "index.html"
    problems = []
    with chromium(SHOT_WIDTH) as context:
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.goto(page_file.resolve().as_uri())
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete && i.naturalWidth)")
        if os.environ.get("DLRUN_WRITE_SCREENSHOTS"):
            clip = {"x": 0, "y": 0, "width": SHOT_WIDTH, "height": SHOT_HEIGHT}
            page.screenshot(path=str(SCREENSHOT), full_page=True, clip=clip)
            page.locator("img[src='gradcam.png']").screenshot(path=str(GRADCAM_SHOT))
    assert problems == []
    assert len(widths) >= 5 and all(width and width > 0 for width in widths), widths
    # the committed screenshot: a PNG of the page's width, small enough for the docs
    with Image.open(SCREENSHOT) as shot:
        assert shot.format == "PNG" and shot.size[0] == SHOT_WIDTH and 400 <= shot.size[1] <= SHOT_HEIGHT
        shot.verify()
    for shot in (SCREENSHOT, GRADCAM_SHOT):
        assert 20_000 < shot.stat().st_size < 400_000, shot
