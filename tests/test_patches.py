"""data=patches: the patch sits where the label says, the same seed draws the same images, and
the corner cue is on the training pool only (the test images carry another class's mark)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.compose import compose_overrides
from dlrun.data import describe, load, patches

SIZES = ["data=patches", "data.n_samples=250", "data.val_size=50", "data.n_test=100"]


def data_cfg(*overrides):
    return compose_overrides([*SIZES, *overrides]).data


@pytest.fixture(scope="module")
def cued():
    cfg = data_cfg("data.cue=corner")
    return cfg, *patches.splits(cfg)


def test_shapes_sizes_and_balanced_labels():
    cfg = data_cfg()
    spec, ds = describe(cfg), load(cfg)
    assert spec.input_shape == (28, 28, 1) and spec.class_names == patches.CLASS_NAMES
    for x, y, n in ((ds.x_train, ds.y_train, 200), (ds.x_val, ds.y_val, 50), (ds.x_test, ds.y_test, 100)):
        assert x.shape == (n, 28, 28, 1) and x.dtype == np.uint8 and y.shape == (n,)
    assert np.array_equal(np.bincount(ds.y_test), [20] * 5)  # 100 test images, 5 classes


def test_the_same_seed_draws_the_same_images_and_another_seed_others():
    a, b, c = load(data_cfg()), load(data_cfg()), load(data_cfg("data.seed=1"))
    for split in ("x_train", "y_train", "x_val", "x_test", "y_test"):
        assert np.array_equal(getattr(a, split), getattr(b, split))
    assert not np.array_equal(a.x_train, c.x_train)


def test_the_patch_is_where_the_label_says_and_nowhere_for_the_noise_class():
    pool, test = patches.splits(data_cfg("data.noise=0.4"))
    for drawn in (pool, test):
        for image, label, (row, col) in zip(drawn.images[..., 0], drawn.labels, drawn.origins):
            # noise tops out at 0.4 * 255 = 102: only the patch reaches its level
            bright = np.argwhere(image == patches.PATCH_LEVEL)
            if label == patches.NOISE:
                assert len(bright) == 0
                continue
            assert len(bright) == patches.PATCH**2
            assert tuple(bright.min(axis=0)) == (row, col)
            # inside the class's quadrant, moved by at most the jitter
            assert np.abs([row, col] - patches.ORIGINS[label]).max() <= patches.JITTER


def test_without_a_cue_no_image_has_a_mark():
    pool, test = patches.splits(data_cfg())
    for drawn in (pool, test):
        assert (drawn.cue == patches.NOISE).all() and not (drawn.images == patches.MARK_LEVEL).any()


def marks(images):
    """The class whose 4x4 white corner mark each image carries (NOISE: none)."""
    found = np.full(len(images), patches.NOISE)
    for k, (top, left) in enumerate(patches.MARK_ORIGINS):
        corner = images[:, top : top + patches.MARK, left : left + patches.MARK, 0]
        found[(corner == patches.MARK_LEVEL).all(axis=(1, 2))] = k
    return found


def test_the_corner_cue_gives_the_class_away_on_the_training_pool_only(cued):
    cfg, pool, test = cued
    # training and validation: every patched image carries its own class's mark, the noise none
    assert np.array_equal(marks(pool.images), pool.labels)
    # test: always another class's mark (or none), each of the four others about as often
    found = marks(test.images)
    assert np.array_equal(found, test.cue) and not (found == test.labels).any()
    shifts = np.bincount((found - test.labels) % len(patches.CLASS_NAMES), minlength=5)
    assert shifts[0] == 0 and shifts[1:].min() > 10  # 100 images, 4 other classes
    # the split carves validation from the pool: it is cued like training
    ds = load(cfg)
    assert np.array_equal(marks(ds.x_val), ds.y_val) and np.array_equal(marks(ds.x_train), ds.y_train)


def test_the_mark_sits_in_the_corner_opposite_the_patch_and_never_touches_it(cued):
    _, pool, _ = cued
    for label, origin in enumerate(patches.ORIGINS):
        mark = patches.MARK_ORIGINS[label]
        assert np.all((mark < 14) != (origin < 14))  # the other half on both axes
    patched = pool.labels != patches.NOISE
    # the patches, jitter and all, keep off the MARK border rows and columns the marks use
    origins = pool.origins[patched]
    assert origins.min() >= patches.MARK and origins.max() + patches.PATCH <= 28 - patches.MARK
    assert np.ptp(origins - patches.ORIGINS[pool.labels[patched]]) == 2 * patches.JITTER


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.cue=edge", "data.cue=edge is not one of: none, corner"),
        ("data.noise=1.5", "data.noise=1.5: patches' noise is a fraction of white, give 0..1"),
    ],
)
def test_a_bad_cue_or_noise_is_one_line_and_exit_2(tmp_path, override, message):
    result = CliRunner().invoke(app, ["train", *SIZES, override, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
