"""Data sets for dlrun: MNIST from the official IDX files and small generated sets.

`describe(cfg)` answers static questions (shapes, sizes, task) without touching
the disk or the network, so the CLI can validate a run and build a model before
paying for data. `load(cfg)` returns the split, subset and scaled arrays.
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
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from dlrun.errors import DataError


@dataclass(frozen=True)
class DataSpec:
    name: str
    task: str
    input_shape: tuple
    num_classes: int
    n_train: int
    n_val: int
    n_test: int
    # Describes the noise-free target function; noise can push samples slightly below 0.
    targets_nonnegative: bool = False


@dataclass
class Dataset:
    """Split arrays; the model sees (x.astype(float32) - x_offset) * x_scale.

    For regression, y arrays are already target-scaled; the raw target is
    y / y_scale + y_offset (offset 0 and scale 1 when no target scaling applies).
    """

    spec: DataSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_offset: float = 0.0
    x_scale: float = 1.0
    y_offset: float = 0.0
    y_scale: float = 1.0


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Source:
    """Registry entry: static facts for describe() plus a loader for load().

    `arrays(cfg)` returns (x_pool, y_pool, x_test, y_test); the pool is split
    into train and validation by load(). num_classes None means cfg.classes.
    fixed_sizes (pool, test) marks file-backed sets that ignore n_samples/n_test.
    """

    task: str
    input_shape: tuple
    arrays: Callable[[Any], Arrays]
    num_classes: int | None = 0
    fixed_sizes: tuple[int, int] | None = None
    targets_nonnegative: bool = False


SCALINGS = ("standardize", "unit", "none")
TARGET_SCALINGS = ("standardize", "none")


def _field(cfg: Any, name: str) -> Any:
    try:
        return getattr(cfg, name)
    except (AttributeError, KeyError):
        raise DataError(f"data config has no field '{name}'") from None


def _int_field(cfg: Any, name: str, minimum: int) -> int:
    value = _field(cfg, name)
    # bool is an int subclass, but `subset=true` is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise DataError(f"data.{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _choice_field(cfg: Any, name: str, choices: tuple) -> str:
    value = _field(cfg, name)
    if value not in choices:
        raise DataError(f"data.{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def _source(cfg: Any) -> Source:
    name = _field(cfg, "name")
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def _sizes(cfg: Any, src: Source) -> tuple[int, int]:
    """Return (pool size, test size), validating the generated-set fields."""
    if src.fixed_sizes is not None:
        return src.fixed_sizes
    pool = _int_field(cfg, "n_samples", 1)
    n_test = _int_field(cfg, "n_test", 1)
    noise = _field(cfg, "noise")
    if isinstance(noise, bool) or not isinstance(noise, Real) or not noise >= 0:
        raise DataError(f"data.noise={noise!r} must be a number >= 0")
    return pool, n_test


def _num_classes(cfg: Any, src: Source) -> int:
    if src.num_classes is not None:
        return src.num_classes
    return _int_field(cfg, "classes", 2)


def describe(cfg: Any) -> DataSpec:
    """Validate cfg and return the DataSpec of the data set, without loading any data."""
    src = _source(cfg)
    pool, n_test = _sizes(cfg, src)
    val_size = _int_field(cfg, "val_size", 0)
    if val_size >= pool:
        raise DataError(
            f"data.val_size={val_size} leaves no training data: "
            f"the {cfg.name} training pool has {pool} examples"
        )
    subset = _field(cfg, "subset")
    n_train = pool - val_size
    if subset is not None:
        n_train = min(n_train, _int_field(cfg, "subset", 1))
    _choice_field(cfg, "scaling", SCALINGS)
    if src.task == "regression":  # only regression sets have targets to scale
        _choice_field(cfg, "target_scaling", TARGET_SCALINGS)
    _int_field(cfg, "seed", 0)
    return DataSpec(
        name=cfg.name,
        task=src.task,
        input_shape=tuple(src.input_shape),
        num_classes=_num_classes(cfg, src),
        n_train=n_train,
        n_val=val_size,
        n_test=n_test,
        targets_nonnegative=src.targets_nonnegative,
    )


def _streams(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for (pool, test, split), all derived from one seed."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def load(cfg: Any) -> Dataset:
    """Return the Dataset described by cfg: split, subset and scaled per the config."""
    spec = describe(cfg)
    src = DATASETS[spec.name]
    x_pool, y_pool, x_test, y_test = src.arrays(cfg)
    # The split uses its own stream so it does not shift when generation changes.
    perm = _streams(cfg.seed)[2].permutation(len(x_pool))
    val_idx, train_idx = perm[: spec.n_val], perm[spec.n_val :][: spec.n_train]
    ds = Dataset(
        spec=spec,
        x_train=x_pool[train_idx], y_train=y_pool[train_idx],
        x_val=x_pool[val_idx], y_val=y_pool[val_idx],
        # A copy, as for the fancy-indexed splits: file arrays are shared and read-only.
        x_test=np.array(x_test), y_test=np.array(y_test),
    )
    _scale_inputs(ds, cfg.scaling)
    if spec.task == "regression" and cfg.target_scaling == "standardize":
        _standardize_targets(ds)
    return ds


def _scale_inputs(ds: Dataset, scaling: str) -> None:
    if ds.x_train.dtype == np.uint8:
        # Integer images stay uint8 (4x smaller on the device); scaling is deferred.
        ds.x_offset, ds.x_scale = _uint8_offset_scale(ds.x_train, scaling)
        return
    if scaling == "standardize":
        shift, spread = ds.x_train.mean(axis=0), ds.x_train.std(axis=0)
    elif scaling == "unit":
        shift = ds.x_train.min(axis=0)
        spread = ds.x_train.max(axis=0) - shift
    else:
        return
    # A constant feature would divide by zero; leave its spread alone instead.
    spread = np.where(spread > 0, spread, 1.0)
    for split in ("x_train", "x_val", "x_test"):
        scaled = (getattr(ds, split) - shift) / spread
        setattr(ds, split, scaled.astype(np.float32))


def _uint8_offset_scale(x: np.ndarray, scaling: str) -> tuple[float, float]:
    """Return (offset, scale) in 0..255 pixel units for the given scaling."""
    if scaling == "unit":
        return 0.0, 1.0 / 255.0
    if scaling == "none":
        return 0.0, 1.0
    # A 256-bin histogram gives exact moments without a float copy of the images.
    counts = np.bincount(x.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    mean = float(counts @ values / counts.sum())
    std = float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    return mean, (1.0 / std if std > 0 else 1.0)


def _standardize_targets(ds: Dataset) -> None:
    mean = float(ds.y_train.mean())
    std = float(ds.y_train.std())
    scale = 1.0 / std if std > 0 else 1.0
    for split in ("y_train", "y_val", "y_test"):
        setattr(ds, split, ((getattr(ds, split) - mean) * scale).astype(np.float32))
    ds.y_offset, ds.y_scale = mean, scale


PointMaker = Callable[[np.random.Generator, int, Any], tuple[np.ndarray, np.ndarray]]


def _generated(make: PointMaker) -> Callable[[Any], Arrays]:
    """Wrap a point generator into an `arrays` loader: pool and test from separate streams."""

    def arrays(cfg: Any) -> Arrays:
        pool_rng, test_rng, _ = _streams(cfg.seed)
        x_pool, y_pool = make(pool_rng, cfg.n_samples, cfg)
        x_test, y_test = make(test_rng, cfg.n_test, cfg)
        return x_pool, y_pool, x_test, y_test

    return arrays


def _with_noise(rng: np.random.Generator, points: np.ndarray, noise: float) -> np.ndarray:
    return (points + noise * rng.standard_normal(points.shape)).astype(np.float32)


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Return n shuffled int32 labels with class counts differing by at most one."""
    return rng.permutation(np.arange(n) % k).astype(np.int32)


def _xor(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (x[:, 0] * x[:, 1] < 0).astype(np.int32)
    return _with_noise(rng, x, cfg.noise), y


def _moons(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # As sklearn.make_moons, but with random angles instead of a linspace so
    # that the pool and the test set are distinct draws even without noise.
    y = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, np.pi, size=n)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, outer, inner)
    return _with_noise(rng, x, cfg.noise), y


def _circles(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # As sklearn.make_circles(factor=0.5): class 0 is the outer circle.
    y = _balanced_labels(rng, n, 2)
    t = rng.uniform(0.0, 2.0 * np.pi, size=n)
    radius = np.where(y == 0, 1.0, 0.5)
    x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return _with_noise(rng, x, cfg.noise), y


def _spirals(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
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


def _blobs(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # The cluster spread is `noise` itself (blobs.yaml sets 1.0), so one knob
    # tunes the overlap as for the other sets, and noise=0 gives point masses.
    y = _balanced_labels(rng, n, cfg.classes)
    return _with_noise(rng, blob_centres(cfg.classes)[y], cfg.noise), y


def rosenbrock(x: np.ndarray) -> np.ndarray:
    """Return the Rosenbrock function of the (n, 2) points as an (n, 1) array."""
    z = 100.0 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1.0 - x[:, 0]) ** 2
    return z[:, None]


def _rosenbrock(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    # The square [0, 2]^2 is centred on the minimum at (1, 1).
    # Targets come from the float32 inputs the model sees, so they match exactly.
    x = rng.uniform(0.0, 2.0, size=(n, 2)).astype(np.float32)
    return x, _with_noise(rng, rosenbrock(x.astype(np.float64)), cfg.noise)


def cubic(x: np.ndarray) -> np.ndarray:
    """Return the poly1d target 2x^3 - x^2 - x + 0.5, same shape as x."""
    return 2.0 * x**3 - x**2 - x + 0.5


def _poly1d(rng: np.random.Generator, n: int, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
    return x, _with_noise(rng, cubic(x.astype(np.float64)), cfg.noise)


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


def _mnist_arrays(cfg: Any) -> Arrays:
    """Return (x_pool, y_pool, x_test, y_test): uint8 NHWC images and int32 labels."""
    arrays = [_mnist_file(name) for name in MNIST_FILES]
    x_train, y_train, x_test, y_test = arrays
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(f"MNIST files have unexpected shapes {images.shape} and {labels.shape}")
    return x_train[..., None], y_train.astype(np.int32), x_test[..., None], y_test.astype(np.int32)


DATASETS: dict[str, Source] = {
    "mnist": Source("classification", (28, 28, 1), _mnist_arrays, 10, fixed_sizes=(60000, 10000)),
    "xor": Source("classification", (2,), _generated(_xor), 2),
    "moons": Source("classification", (2,), _generated(_moons), 2),
    "circles": Source("classification", (2,), _generated(_circles), 2),
    "spirals": Source("classification", (2,), _generated(_spirals), 2),
    "blobs": Source("classification", (2,), _generated(_blobs), None),
    "rosenbrock": Source("regression", (2,), _generated(_rosenbrock), 0, targets_nonnegative=True),
    "poly1d": Source("regression", (1,), _generated(_poly1d), 0),
}
