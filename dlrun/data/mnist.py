"""MNIST from the four official IDX files: looked up, else downloaded into a cache, checksummed.

Lookup order: $DLRUN_DATA_DIR/mnist, then the cache ($DLRUN_CACHE_DIR, else
$XDG_CACHE_HOME/dlrun, else ~/.cache/dlrun). Mirrors: $DLRUN_MNIST_MIRRORS (comma-separated)
or DEFAULT_MIRRORS.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

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
DOWNLOAD_TIMEOUT_S = 15.0

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


def _gunzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"MNIST file '{path.name}' at {path} is not a valid gzip file ({e})") from None


def _cache_root() -> Path:
    if os.environ.get("DLRUN_CACHE_DIR"):
        return Path(os.environ["DLRUN_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "dlrun"


def _mnist_dirs() -> list[Path]:
    """Return the directories searched for MNIST files, in lookup order; the last is the cache."""
    dirs = []
    if os.environ.get("DLRUN_DATA_DIR"):
        dirs.append(Path(os.environ["DLRUN_DATA_DIR"]).expanduser() / "mnist")
    return dirs + [_cache_root() / "mnist"]


def _mirrors() -> list[str]:
    env = os.environ.get("DLRUN_MNIST_MIRRORS")
    urls = env.split(",") if env else DEFAULT_MIRRORS
    return [u.strip().rstrip("/") + "/" for u in urls if u.strip()]


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
    dirs = _mnist_dirs()
    path = next((d / name for d in dirs if (d / name).is_file()), None)
    if path is None:
        path = _download(name, dirs[-1], dirs)
    st = path.stat()
    return _read_verified(str(path), (st.st_size, st.st_mtime_ns), MNIST_FILES[name])


def _download(name: str, dest_dir: Path, searched: list[Path]) -> Path:
    """Download `name` into dest_dir from the first mirror with a good copy; return its path."""
    reasons = []
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reasons.append(f"cannot create {dest_dir}: {e.strerror or e}")
    else:
        for base in _mirrors():
            reason = _try_mirror(base + name, dest_dir / name)
            if reason is None:
                return dest_dir / name
            reasons.append(f"{urllib.parse.urlsplit(base).netloc or base}: {reason}")
    where = ", ".join(str(d) for d in searched)
    raise DataError(
        f"MNIST file '{name}' not found in {where} and could not be downloaded "
        f"({'; '.join(reasons) or 'no mirrors configured'}); "
        "set DLRUN_DATA_DIR or connect to the network"
    )


def _try_mirror(url: str, dest: Path) -> str | None:
    """Fetch url to dest atomically after verifying it; return None, or a short failure reason."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        return f"cannot write to {dest.parent}: {e.strerror or e}"
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out)
        raw = gzip.decompress(tmp.read_bytes())
        if hashlib.md5(raw).hexdigest() != MNIST_FILES[dest.name]:
            return "checksum mismatch"
        os.replace(tmp, dest)
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except urllib.error.URLError as e:
        return str(getattr(e.reason, "strerror", None) or e.reason)
    except TimeoutError:
        return "timed out"
    except (OSError, EOFError, zlib.error, ValueError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        # A failed or rejected download must never be left where lookup could find it.
        tmp.unlink(missing_ok=True)


def _fetch(url: str, out) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
        total = resp.headers.get("Content-Length")
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        # stderr keeps stdout clean for the runner's own output.
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
            task = progress.add_task(f"downloading {name}", total=int(total) if total else None)
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                progress.advance(task, len(chunk))



def arrays(cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_pool, y_pool, x_test, y_test): uint8 NHWC images and int32 labels."""
    arrays = [_mnist_file(name) for name in MNIST_FILES]
    x_train, y_train, x_test, y_test = arrays
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(f"MNIST files have unexpected shapes {images.shape} and {labels.shape}")
    return x_train[..., None], y_train.astype(np.int32), x_test[..., None], y_test.astype(np.int32)
