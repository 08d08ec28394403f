"""Test settings: real MNIST from ../shared/datasets, a private cache, loud shape bugs."""

import os
from pathlib import Path

import jax
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# Implicit broadcasting between arrays of different rank hides shape bugs; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Point dlrun at the shared MNIST copy and a throwaway cache; never touch the network."""
    saved = dict(os.environ)
    cache = tmp_path_factory.mktemp("dlrun-cache")
    os.environ["DLRUN_CACHE_DIR"] = str(cache)
    os.environ["DLRUN_MNIST_MIRRORS"] = "http://127.0.0.1:9/"
    if SHARED_DATA.exists():
        os.environ["DLRUN_DATA_DIR"] = str(SHARED_DATA)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _mnist_available() -> bool:
    from dlrun.backend import cache_root

    folders = [SHARED_DATA / "mnist", cache_root() / "mnist"]
    return any((folder / "train-images-idx3-ubyte.gz").exists() for folder in folders)


# Tests that read MNIST: without a local copy they would need the network, which tests never use.
needs_mnist = pytest.mark.skipif(not _mnist_available(), reason="no local MNIST copy")
