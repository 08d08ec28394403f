"""`dlrun inspect RUN`: confusions that add up, and Grad-CAM that finds what decides the class.

The Grad-CAM check is a data set where the answer is known: a bright patch whose position
decides the class (one of four quadrants, jittered inside it), the rest noise, and a fifth
class of noise alone. Without that fifth class a network may learn one quadrant as "no patch
elsewhere", and Grad-CAM rightly finds no evidence for it in the image. After training, the
heatmap's peak must fall inside each test image's patch. Its arithmetic is checked apart
from any training against central differences on a tiny network.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx
from rich.console import Console
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.inspection import confusion, probes
from dlrun.models import user

runner = CliRunner()
SIDE, PATCH, JITTER = 28, 6, 3
# Top-left corners of the patch per class before the jitter: the four quadrants' centres.
CORNERS = [(4, 4), (4, 18), (18, 4), (18, 18)]
NOISE = len(CORNERS)  # the class of images without a patch
TRAIN, TEST = 600, 150


def dlrun(*args):
    return runner.invoke(app, [str(a) for a in args])


def patch_images(count: int, rng):
    """(images [n, 28, 28, 1] uint8, labels, patch corners [n, 2]): noise, and a bright square
    at the class's quadrant, moved by up to JITTER pixels each way (none for class NOISE)."""
    labels = rng.integers(0, len(CORNERS) + 1, count)
    corners = np.asarray([*CORNERS, (0, 0)])[labels] + rng.integers(-JITTER, JITTER + 1, (count, 2))
    images = rng.integers(0, 100, (count, SIDE, SIDE, 1), dtype=np.uint8)
    for image, label, (row, col) in zip(images, labels, corners):
        if label != NOISE:
            image[row : row + PATCH, col : col + PATCH] = 255
    return images, labels.astype(np.int64), corners


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    """A small CNN trained on the patch images through the CLI, and the test patches' corners.
    3x3 convolutions, padded: a LeNet's unpadded 5x5 conv2 sees 14 of the 28 pixels per map
    position, so its heatmap may peak a few pixels beside a 6-pixel patch it rightly finds."""
    folder = tmp_path_factory.mktemp("inspect")
    rng = np.random.default_rng(0)
    x_train, y_train, _ = patch_images(TRAIN, rng)
    x_test, y_test, corners = patch_images(TEST, rng)
    path = folder / "patches.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    run = folder / "cnn"
    trained = dlrun(
        "train", "model=cnn", "model.channels=[8,16]", "model.dense=[32]", "data=npz",
        f"data.path={path}", "data.val_size=100", "epochs=8", "batch_size=50", "lr=0.003",
        "augment.shift=0", "--out", run,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    return run, corners, y_test


@pytest.fixture(scope="module")
def inspected(patches):
    run, _, _ = patches
    result = dlrun("inspect", run, "--examples", TEST)
    assert result.exit_code == 0, result.output
    return run / "inspect", result.output


@pytest.mark.slow
def test_gradcam_peaks_inside_the_patch_that_decides_the_class(patches, inspected):
    _, corners, y_test = patches
    saved = np.load(inspected[0] / "gradcam.npz")
    heatmaps, index = saved["heatmaps"], saved["index"]
    assert heatmaps.shape == (TEST, SIDE, SIDE) and sorted(index) == list(range(TEST))
    assert np.array_equal(saved["label"], y_test[index])
    assert np.mean(saved["pred"] == saved["label"]) >= 0.95
    patched = index[y_test[index] != NOISE]
    flat = heatmaps[y_test[index] != NOISE].reshape(len(patched), -1)
    peaks = np.stack(np.unravel_index(flat.argmax(axis=1), (SIDE, SIDE)), 1)
    inside = np.all((peaks >= corners[patched]) & (peaks < corners[patched] + PATCH), axis=1)
    assert inside.mean() >= 0.9, f"{inside.mean():.0%} of the peaks inside the patch"
    # it moves with the patch: the peak follows the jitter inside each quadrant
    for axis in range(2):
        assert np.corrcoef(peaks[:, axis], corners[patched, axis])[0, 1] > 0.95


@pytest.mark.slow
def test_the_confusion_matrix_adds_up_to_the_test_predictions(patches, inspected):
    run, _, y_test = patches
    frame = pd.read_csv(inspected[0] / "confusion.csv", index_col="true")
    assert list(frame.columns) == ["0", "1", "2", "3", "4"] and frame.to_numpy().sum() == TEST
    # the training's own test pass (test_predictions.npz) gives the same counts
    with np.load(run / "test_predictions.npz") as saved:
        preds, labels = saved["probabilities"].argmax(axis=1), saved["labels"]
    direct = np.zeros((5, 5), int)
    for true, pred in zip(labels, preds):
        direct[true, pred] += 1
    assert np.array_equal(frame.to_numpy(), direct)
    assert np.array_equal(frame.to_numpy().sum(axis=1), np.bincount(y_test, minlength=5))


@pytest.mark.slow
def test_inspect_writes_every_picture_and_an_offline_page(inspected):
    folder, output = inspected
    expected = ["confusion.png", "filters_conv1.png", "feature_maps_conv1.png", "feature_maps_conv2.png"]
    for name in [*expected, "gradcam.png", "index.html"]:
        assert (folder / name).is_file(), name
    wrong = "every test image is classified right" not in output  # the patches are easy
    assert (folder / "misclassified.png").is_file() == wrong and (
        folder / "confused_pairs.png"
    ).is_file() == wrong
    page = (folder / "index.html").read_text()
    assert "http" not in page and "src='gradcam.png'" in page
    assert "true \\ predicted" in output and str(folder / "index.html") in output.replace("\n", "")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--gradcam", "--layer", "fc1"], "no conv layer 'fc1'; its conv layers: conv1, conv2"),
        (["--examples", "0"], "--examples 0: give 1 or more examples"),
        (["--index", "3,x"], "--index 3,x: give test indices joined by commas"),
        (["--index", f"{TEST}"], f"--index {TEST}: the test split has {TEST} examples"),
    ],
)
def test_bad_requests_are_one_line(patches, args, message):
    result = dlrun("inspect", patches[0], *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


class Tiny(nn.Module):
    """conv 3x3 (4 maps) -> ReLU -> conv 3x3 (3 maps) -> ReLU -> mean -> 2 logits."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(nn.Conv(4, (3, 3), name="conv1")(x))
        x = nn.relu(nn.Conv(3, (3, 3), padding="VALID", name="conv2")(x))
        return nn.Dense(2, name="output")(x.mean(axis=(1, 2)))


def test_gradcam_equals_its_definition_with_finite_difference_gradients():
    model, x = Tiny(), jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 1))
    variables = model.init(jax.random.PRNGKey(0), x)
    classes = jnp.asarray([0, 1, 1])
    assert probes.conv_layers(model, variables, (8, 8, 1)) == ["conv1", "conv2"]
    heatmaps, maps = probes.gradcam(model, variables, x, classes, "conv1")
    # the gradient of each class score by central differences in float64, one map entry at a time
    eps, grad = 1e-4, np.zeros(maps.shape)
    with jax.enable_x64(True):
        wide = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float64), variables)
        x64 = jnp.asarray(x, jnp.float64)
        score = jax.jit(lambda delta: probes.class_scores(model, wide, x64, classes, "conv1", delta)[0])
        for position in np.ndindex(maps.shape[1:]):
            delta = np.zeros(maps.shape)
            delta[(slice(None), *position)] = eps
            grad[(slice(None), *position)] = (score(delta) - score(-delta)) / (2 * eps)
    cams = np.maximum(np.einsum("nhwk,nk->nhw", maps, grad.mean(axis=(1, 2))), 0)
    assert cams.max() > 0
    # conv1 keeps the 8x8 size: the upsampling is the identity, the heatmap the cam itself
    np.testing.assert_allclose(heatmaps, cams, rtol=1e-4, atol=1e-6 * cams.max())


class NnxTiny(nnx.Module):
    """Tiny's twin in NNX, as a user writes one (layers by attribute names)."""

    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(4, 3, (3, 3), padding="VALID", rngs=rngs)
        self.output = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        return self.output(x.mean(axis=(1, 2)))


def test_a_users_nnx_module_shows_its_conv_layers_and_the_same_gradcam_as_its_linen_twin():
    """Inside the bridge the NNX layers are observed by their attribute names: the conv layers
    are found, and with the Linen twin's weights the maps and heatmaps are the twin's."""
    x, classes = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 1)), jnp.asarray([0, 1, 1])
    linen = Tiny()
    weights = linen.init(jax.random.PRNGKey(0), x)
    bridged = user.UserModel(nnx.bridge.ToLinen(NnxTiny), bridged=True, takes_train=True, label="NnxTiny")
    variables = bridged.init({"params": jax.random.PRNGKey(2)}, x)
    assert probes.conv_layers(bridged, variables, (8, 8, 1)) == ["conv1", "conv2"]
    assert jax.tree_util.tree_structure(variables["params"]) == jax.tree_util.tree_structure(
        weights["params"]
    )
    for layer in ("conv1", "conv2"):
        expected = probes.gradcam(linen, weights, x, classes, layer)
        got = probes.gradcam(bridged, {"params": weights["params"]}, x, classes, layer)
        for ours, theirs in zip(got, expected):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    maps = probes.feature_maps(bridged, {"params": weights["params"]}, x, ["conv1", "conv2"])
    assert {name: m.shape for name, m in maps.items()} == {"conv1": (3, 8, 8, 4), "conv2": (3, 6, 6, 3)}
    plain = bridged.apply({"params": weights["params"]}, x)  # nothing observed: as trained
    np.testing.assert_allclose(plain, linen.apply(weights, x), rtol=1e-5, atol=1e-6)


def test_an_mlp_has_no_conv_layer_to_probe():
    class Mlp(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(2, name="output")(nn.Dense(4, name="hidden1")(x.reshape(len(x), -1)))

    model = Mlp()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
    assert probes.conv_layers(model, variables, (8, 8, 1)) == []
    with pytest.raises(Exception, match="model mlp has no conv layer"):
        probes.check_layer(None, [], "mlp")


def test_worst_pairs_and_the_80_column_table():
    labels = np.repeat(np.arange(10), 100)
    preds = labels.copy()
    preds[:7] = 6  # seven 0s taken for 6
    preds[100:103] = 7  # three 1s taken for 7
    matrix = confusion.confusion_matrix(labels, preds, 10)
    assert matrix.sum() == 1000 and matrix[0, 6] == 7 and matrix[1, 1] == 97
    assert confusion.worst_pairs(matrix) == [(0, 6, 7), (1, 7, 3)]
    console = Console(width=80, record=True)
    names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    console.print(confusion.matrix_table(matrix, names))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80 and any(line.strip().startswith("0 T-shirt/top") for line in lines)


@pytest.mark.slow
def test_the_html_report_links_an_inspected_run_to_its_page(inspected, tmp_path):
    folder, _ = inspected
    page = tmp_path / "report.html"
    result = dlrun("report", folder.parent, "--format", "html", "-o", page)
    assert result.exit_code == 0, result.output
    assert f"href='{(folder / 'index.html').absolute().as_uri()}'>inspect</a>" in page.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "train, args, message",
    [
        (["model=mlp", "data=rosenbrock"], [], "a regression run (data rosenbrock)"),
        (
            ["model=mlp", "model.hidden=[8]", "data=mnist", "data.subset=300"],
            ["--gradcam"],
            "has no conv layer",
        ),
    ],
    ids=["regression", "mlp-gradcam"],
)
def test_runs_it_cannot_look_inside_are_one_line_exit_2_and_nothing_written(tmp_path, train, args, message):
    trained = dlrun("train", *train, "data.val_size=100", "epochs=1", "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    result = dlrun("inspect", tmp_path / "run", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run" / "inspect").exists()
