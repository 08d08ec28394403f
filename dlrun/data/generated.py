"""The generated data sets: small 2-D (or 1-D) point clouds whose answer is known.

Each generator maps (rng, n, cfg) to n inputs and targets; `loader` turns one into a data set's
`arrays`, drawing the training pool and the test set from separate streams of `cfg.seed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
PointMaker = Callable[[np.random.Generator, int, Any], tuple[np.ndarray, np.ndarray]]


def streams(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for (pool, test, split), all derived from one seed.

    The third is the train/validation split's, used by data.load for every data set.
    """
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def loader(make: PointMaker) -> Callable[[Any], Arrays]:
    """Wrap a point generator into an `arrays` loader: pool and test from separate streams."""

    def arrays(cfg: Any) -> Arrays:
        pool_rng, test_rng, _ = streams(cfg.seed)
        x_pool, y_pool = make(pool_rng, cfg.n_samples, cfg)
        x_test, y_test = make(test_rng, cfg.n_test, cfg)
        return x_pool, y_pool, x_test, y_test

    return arrays


def _with_noise(rng: np.random.Generator, points: np.ndarray, noise: float) -> np.ndarray:
    return (points + noise * rng.standard_normal(points.shape)).astype(np.float32)


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Return n shuffled int32 labels with class counts differing by at most one."""
    return rng.permutation(np.arange(n) % k).astype(np.int32)


def xor_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (x[:, 0] * x[:, 1] < 0).astype(np.int32)
    return _with_noise(rng, x, cfg.noise), y


def moons_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # As sklearn.make_moons, but with random angles instead of a linspace so
    # that the pool and the test set are distinct draws even without noise.
    y = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, np.pi, size=n)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, outer, inner)
    return _with_noise(rng, x, cfg.noise), y


def circles_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # As sklearn.make_circles(factor=0.5): class 0 is the outer circle.
    y = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, 2.0 * np.pi, size=n)
    radius = np.where(y == 0, 1.0, 0.5)
    x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return _with_noise(rng, x, cfg.noise), y


def spirals_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # Two arms of 1.5 turns, the second a point reflection of the first.
    # sqrt spreads points evenly along the arm instead of crowding the centre.
    y = _balanced_labels(rng, n, 2)
    r = np.sqrt(rng.uniform(0.0, 1.0, size=n))
    angle = 3.0 * np.pi * r
    arm = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = np.where(y[:, None] == 0, arm, -arm)
    return _with_noise(rng, x, cfg.noise), y


BLOB_RADIUS = 3.0


def blob_centres(k: int) -> np.ndarray:
    """Return the (k, 2) blob centres: evenly spaced on a circle of radius BLOB_RADIUS."""
    t = 2.0 * np.pi * np.arange(k) / k
    return BLOB_RADIUS * np.stack([np.cos(t), np.sin(t)], axis=1)


def blobs_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # The cluster spread is `noise` itself (blobs.yaml sets 1.0), so one knob
    # tunes the overlap as for the other sets, and noise=0 gives point masses.
    y = _balanced_labels(rng, n, cfg.classes)
    return _with_noise(rng, blob_centres(cfg.classes)[y], cfg.noise), y


def rosenbrock(x: np.ndarray) -> np.ndarray:
    """Return the Rosenbrock function of the (n, 2) points as an (n, 1) array."""
    z = 100.0 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1.0 - x[:, 0]) ** 2
    return z[:, None]


def rosenbrock_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # The square [0, 2]^2 is centred on the minimum at (1, 1).
    # Targets come from the float32 inputs the model sees, so they match exactly.
    x = rng.uniform(0.0, 2.0, size=(n, 2)).astype(np.float32)
    return x, _with_noise(rng, rosenbrock(x.astype(np.float64)), cfg.noise)


def cubic(x: np.ndarray) -> np.ndarray:
    """Return the poly1d target 2x^3 - x^2 - x + 0.5, same shape as x."""
    return 2.0 * x**3 - x**2 - x + 0.5


def poly1d_points(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
    return x, _with_noise(rng, cubic(x.astype(np.float64)), cfg.noise)
