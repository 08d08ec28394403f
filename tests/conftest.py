"""Test settings: real MNIST from ../shared/datasets, a private cache, loud shape bugs."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# Float32 tolerances, in one place. A test compares float32 results that another CPU (another
# SIMD width, FMA or not, another XLA tiling) may round differently; it must still fail on a wrong
# result (a wrong kernel, an off-by-one pixel, a wrong scale), which is off by far more than these.
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7, twice the unit roundoff
# A result of a few correctly rounded elementwise operations (+ - * / sqrt), each off by half an eps.
FLOAT32_RTOL = 4 * FLOAT32_EPS
# A result through exp/log/tanh/log1p: XLA's are polynomial approximations a few ulp off, with
# vector code that differs between instruction sets, and the arithmetic around them (cancellation,
# squaring) can amplify that up to ~10x.
FLOAT32_MATH_RTOL = 1e-5


def float32_atol(magnitude, terms: int) -> float:
    """Absolute tolerance for float32 sums of `terms` terms, added in any order.

    `magnitude` is the sum of the terms' absolute values (the same computation on |inputs|), or an
    upper bound such as the largest input for a mean. Whatever the order, each term takes part in at
    most terms-1 roundings of half an eps, so the error is at most terms * eps/2 * magnitude
    (Higham, Accuracy and Stability of Numerical Algorithms, 4.2); this allows twice that. It is an
    absolute floor because the bound holds however much the terms cancel: a mean near zero can be
    off by many times its own eps.
    """
    return terms * FLOAT32_EPS * float(np.max(np.abs(magnitude)))


# Implicit broadcasting between arrays of different rank hides shape bugs; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Point dlrun at the shared MNIST copy and a throwaway cache; never touch the network."""
    saved = dict(os.environ)
    cache = tmp_path_factory.mktemp("dlrun-cache")
    os.environ["DLRUN_CACHE_DIR"] = str(cache)
    os.environ["DLRUN_MNIST_MIRRORS"] = "http://127.0.0.1:9/"
    os.environ["DLRUN_DATA_MIRROR"] = "http://127.0.0.1:9/"  # Fashion-MNIST, CIFAR-10
    os.environ.pop("DLRUN_DATA_MD5", None)
    if SHARED_DATA.exists():
        os.environ["DLRUN_DATA_DIR"] = str(SHARED_DATA)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _mnist_available() -> bool:
    from dlrun.backend import cache_root

    folders = [SHARED_DATA / "mnist", cache_root() / "mnist"]
    return any((folder / "train-images-idx3-ubyte.gz").exists() for folder in folders)


@pytest.fixture
def local_mnist():
    """Fail, not skip, without a local MNIST copy: tests never download, and a suite that
    skipped every MNIST test would pass while checking none of them (CI has ../shared)."""
    if not _mnist_available():
        pytest.fail(
            f"no local MNIST copy: put the official files in {SHARED_DATA / 'mnist'} "
            "(or in DLRUN_DATA_DIR/mnist)"
        )


# Tests that read MNIST: without a local copy they would need the network, which tests never use.
needs_mnist = pytest.mark.usefixtures("local_mnist")


# A user's NNX module file (`Tiny`: one hidden layer `hidden`, then `output`), which tests write
# into the folder a command runs in
TINY_NNX_MODULE = """
import math

from flax import nnx


class Tiny(nnx.Module):
    def __init__(self, width, outputs, input_shape, rngs):
        self.hidden = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x)))
"""
