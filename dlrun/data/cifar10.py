"""CIFAR-10 from the official python archive `cifar-10-python.tar.gz` (checksummed, cached).

The archive holds `cifar-10-batches-py/` with five pickled training batches, `test_batch` and
`batches.meta`; each batch is a dict of b"data" (N x 3072 uint8, the red, green then blue planes
of each 32x32 image) and b"labels". Images are returned NHWC uint8, like MNIST's.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data import download
from dlrun.errors import DataError

ARCHIVE = "cifar-10-python.tar.gz"
# The URL and MD5 on the official page (www.cs.toronto.edu/~kriz/cifar.html, "Download");
# torchvision's CIFAR10.tgz_md5 is the same.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
# The label_names of batches.meta, fixed here so describe() needs no file.
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _unpickle(tar: tarfile.TarFile, member: str) -> dict:
    try:
        f = tar.extractfile(f"{FOLDER}/{member}")
    except KeyError:
        raise DataError(
            f"CIFAR-10 archive {tar.name} has no {FOLDER}/{member}; delete it to download a fresh copy"
        ) from None
    # As the official page's Python 3 snippet loads them: the Python 2 pickles have bytes keys.
    return pickle.load(f, encoding="bytes")


def _batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(tar, member)
    try:
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"labels"], dtype=np.int32)
    except (KeyError, ValueError) as e:
        raise DataError(f"CIFAR-10 batch {member} in {tar.name} is malformed ({e})") from None
    if len(x) != len(y) or y.min(initial=0) < 0 or y.max(initial=0) >= len(CLASS_NAMES):
        raise DataError(
            f"CIFAR-10 batch {member} in {tar.name} has {len(x)} images, "
            f"{len(y)} labels in {y.min(initial=0)}..{y.max(initial=0)}"
        )
    return x, y


@lru_cache(maxsize=2)
def _read(path: str, stamp: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Return the read-only (x_pool, y_pool, x_test, y_test) of a checked archive."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            train = [_batch(tar, member) for member in TRAIN_BATCHES]
            test = _batch(tar, "test_batch")
    except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError) as e:
        raise DataError(
            f"CIFAR-10 archive {path} cannot be read ({type(e).__name__}: {e}); "
            "delete it to download a fresh copy"
        ) from None
    arrays = (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *test)
    for a in arrays:
        a.setflags(write=False)  # shared between calls through the cache
    return arrays


def arrays(cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_pool, y_pool, x_test, y_test): uint8 32x32x3 NHWC images and int32 labels."""
    urls = download.mirror_urls("cifar10", ARCHIVE, (URL,))
    md5 = download.expected_md5("cifar10", ARCHIVE, MD5)
    path = download.locate("cifar10", ARCHIVE, urls, download.md5_check(md5))
    st = path.stat()
    return _read(str(Path(path)), (st.st_size, st.st_mtime_ns))
