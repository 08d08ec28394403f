"""`data=patches`: noise images whose class is decided only by where a bright patch sits, so
that where a network looks (`dlrun inspect RUN --gradcam`) can be checked against a known answer.

Five classes: a 6x6 patch near the centre of one of the four quadrants (moved by up to 2 pixels
each way), or noise alone. The fifth class matters: with four, a network may learn one quadrant
as "no patch anywhere else", and Grad-CAM then rightly finds nothing in the image to show.

`data.cue=corner` adds a spurious cue: a 4x4 white mark in the image corner diagonally opposite the
class's quadrant (none for the noise class), on the training pool (training and validation)
only. The test images carry the mark of a random other class instead (or none), so a network
that learnt the mark is right on training and wrong on test, and its heatmaps point at the
corner: the statistical accident learnt in place of the signal, made visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.data import generated
from dlrun.data.generated import Arrays
from dlrun.errors import DataError

SIDE, PATCH, JITTER, MARK = 28, 6, 2, 4
CLASS_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "noise")
NOISE = 4  # the class without a patch (and without a mark)
# Each class's patch origin (top-left pixel) before the jitter: at the extremes of the jitter
# the patches stay off the MARK border rows and columns that the marks use.
_NEAR, _FAR = MARK + JITTER, SIDE - MARK - JITTER - PATCH
ORIGINS = np.asarray([(_NEAR, _NEAR), (_NEAR, _FAR), (_FAR, _NEAR), (_FAR, _FAR)])
# Each class's mark origin: the corner opposite its patch, so that a heatmap on the mark is
# never one on the patch, on training images as on test ones.
MARK_ORIGINS = np.asarray([(SIDE - MARK, SIDE - MARK), (SIDE - MARK, 0), (0, SIDE - MARK), (0, 0)])
# The patch's grey level against noise uniform in 0..noise*255 (0..102 at the default 0.4):
# plain to see, and learnt in 5 epochs without a cue (100% test accuracy), yet dim enough
# beside the white mark that a network given both learns the mark: at 170, or with a 2x2 mark,
# it learnt the patch as well and was still 95% right on the test images (measured with a
# small cnn: tests/test_what_cnns_see.py).
PATCH_LEVEL = 130
MARK_LEVEL = 255
CUES = ("none", "corner")


@dataclass(frozen=True)
class Drawn:
    """One split as drawn: `origins` [n, 2] of each patch (NOISE rows: meaningless), and `cue`
    [n], the class whose mark the image carries (NOISE: none)."""

    images: np.ndarray  # [n, 28, 28, 1] uint8
    labels: np.ndarray  # [n] int32
    origins: np.ndarray
    cue: np.ndarray


def check(cfg: Any) -> None:
    """DataError in one line for a noise level or cue this generator cannot draw."""
    if cfg.noise > 1:
        raise DataError(f"data.noise={cfg.noise!r}: patches' noise is a fraction of white, give 0..1")
    if str(cfg.cue) not in CUES:
        raise DataError(f"data.cue={cfg.cue!r} is not one of: {', '.join(CUES)}")


def draw(rng: np.random.Generator, n: int, noise: float, cue: Callable | None) -> Drawn:
    """n images with balanced, shuffled labels; `cue` maps the labels to the marks drawn
    (None: no marks) and is applied after the labels are known."""
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int32)
    origins = ORIGINS[np.minimum(labels, NOISE - 1)] + rng.integers(-JITTER, JITTER + 1, (n, 2))
    images = rng.integers(0, int(noise * 255) + 1, (n, SIDE, SIDE, 1), dtype=np.uint8)
    marks = np.full(n, NOISE, np.int32) if cue is None else cue(rng, labels)
    for image, label, (row, col), mark in zip(images, labels, origins, marks):
        if label != NOISE:
            image[row : row + PATCH, col : col + PATCH] = PATCH_LEVEL
        if mark != NOISE:
            top, left = MARK_ORIGINS[mark]
            image[top : top + MARK, left : left + MARK] = MARK_LEVEL
    return Drawn(images, labels, origins, marks)


def _honest(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    return labels


def _misleading(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    # any of the other four classes' marks, the noise class's being none, with equal odds
    return (labels + rng.integers(1, len(CLASS_NAMES), len(labels))) % len(CLASS_NAMES)


def splits(cfg: Any) -> tuple[Drawn, Drawn]:
    """(the training pool, the test set) of cfg, from separate streams of cfg.seed."""
    check(cfg)
    pool_rng, test_rng, _ = generated.streams(cfg.seed)
    cued = str(cfg.cue) == "corner"
    pool = draw(pool_rng, cfg.n_samples, cfg.noise, _honest if cued else None)
    return pool, draw(test_rng, cfg.n_test, cfg.noise, _misleading if cued else None)


def arrays(cfg: Any) -> Arrays:
    """The data set's `arrays` loader: (x_pool, y_pool, x_test, y_test)."""
    pool, test = splits(cfg)
    return pool.images, pool.labels, test.images, test.labels
