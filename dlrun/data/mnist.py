"""MNIST and Fashion-MNIST from their four official IDX files (same format, same reader).

Files are looked up, else downloaded into a cache, and checksummed by dlrun/data/download.py.
MNIST mirrors: $DLRUN_MNIST_MIRRORS (comma-separated bases holding the files), else
$DLRUN_DATA_MIRROR (bases holding mnist/<file>), else DEFAULT_MIRRORS.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data import download
from dlrun.errors import DataError

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
CLASS_NAMES = tuple(str(d) for d in range(10))
# Examples per digit in the official train and t10k files (tests/test_data.py counts them).
CLASS_COUNTS = (
    (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
)

# MD5s of the .gz files as the Fashion-MNIST README publishes them
# (github.com/zalandoresearch/fashion-mnist, "Get the Data"; torchvision's FashionMNIST.resources
# lists the same); each file holds 6000 (train) or 1000 (t10k) examples of each class.
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_CLASS_NAMES = (
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

# IDX type codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Return the array stored in decompressed IDX bytes, in native byte order.

    Raises DataError on a bad magic number, an unknown type code or a length
    that does not match the header.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{name}: bad IDX magic number {raw[:4].hex() or '(empty)'}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: IDX header truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{name}: IDX size {len(raw)} bytes, header {dims} implies {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _gunzip(path: Path, what: str = "MNIST") -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{what} file '{path.name}' at {path} is not a valid gzip file ({e})") from None


def _mirror_urls(name: str) -> list[str]:
    env = os.environ.get("DLRUN_MNIST_MIRRORS")
    if env or not os.environ.get(download.MIRROR_ENV):
        urls = env.split(",") if env else DEFAULT_MIRRORS
        return [u.strip().rstrip("/") + "/" + name for u in urls if u.strip()]
    return download.mirror_urls("mnist", name, ())


@lru_cache(maxsize=16)
def _read_verified(path: str, stamp: tuple[int, int], md5: str) -> np.ndarray:
    """Return the parsed, read-only array of one verified file; stamp keys out stale entries."""
    p = Path(path)
    raw = _gunzip(p)
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise DataError(
            f"MNIST file '{p.name}' at {p} has checksum {digest}, expected {md5}; "
            "delete it to download a fresh copy"
        )
    array = parse_idx(raw, f"MNIST file '{p.name}'")
    # Cached arrays are shared between calls; freezing them guards against edits.
    array.setflags(write=False)
    return array


def _mnist_file(name: str) -> np.ndarray:
    """Return the verified array of one MNIST file, downloading it into the cache if absent."""
    dirs = download.search_dirs("mnist")
    path = next((d / name for d in dirs if (d / name).is_file()), None)
    if path is None:
        path = download.download("mnist", name, _mirror_urls(name), dirs, _gunzipped_md5_check(name))
    st = path.stat()
    return _read_verified(str(path), (st.st_size, st.st_mtime_ns), MNIST_FILES[name])


def _gunzipped_md5_check(name: str) -> download.Check:
    # MNIST_FILES holds MD5s of the decompressed bytes: any of the mirrors' gzip encodings passes.
    def check(path: Path) -> str | None:
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as e:
            return f"not a valid gzip file ({e})"
        digest = hashlib.md5(raw).hexdigest()
        return None if digest == MNIST_FILES[name] else "checksum mismatch"

    return check


@lru_cache(maxsize=16)
def _parsed(path: str, stamp: tuple[int, int]) -> np.ndarray:
    """Return the read-only array of one already checked IDX gzip file; stamp keys out stale entries."""
    p = Path(path)
    array = parse_idx(_gunzip(p, "Fashion-MNIST"), f"Fashion-MNIST file '{p.name}'")
    array.setflags(write=False)
    return array


def _fashion_file(name: str) -> np.ndarray:
    urls = download.mirror_urls("fashion_mnist", name, (FASHION_URL + name,))
    md5 = download.expected_md5("fashion_mnist", name, FASHION_FILES[name])
    path = download.locate("fashion_mnist", name, urls, download.md5_check(md5))
    st = path.stat()
    return _parsed(str(path), (st.st_size, st.st_mtime_ns))


def _checked_shapes(what: str, x_train, y_train, x_test, y_test):
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(f"{what} files have unexpected shapes {images.shape} and {labels.shape}")
    return x_train[..., None], y_train.astype(np.int32), x_test[..., None], y_test.astype(np.int32)


def fashion_arrays(cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return Fashion-MNIST's (x_pool, y_pool, x_test, y_test): uint8 NHWC images, int32 labels."""
    return _checked_shapes("Fashion-MNIST", *(_fashion_file(name) for name in FASHION_FILES))


def arrays(cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_pool, y_pool, x_test, y_test): uint8 NHWC images and int32 labels."""
    return _checked_shapes("MNIST", *(_mnist_file(name) for name in MNIST_FILES))
