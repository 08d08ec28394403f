"""Data sets for dlrun: MNIST from the official IDX files and small generated sets.

`describe(cfg)` answers static questions (shapes, sizes, task) without touching
the disk or the network, so the CLI can validate a run and build a model before
paying for data. `load(cfg)` returns the split, subset and scaled arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from dlrun.data import generated, mnist
from dlrun.data.generated import Arrays
from dlrun.errors import DataError
from dlrun.registry import Registry


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
    return DATASETS.get(_field(cfg, "name"))


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
    # a classification set's own schema need not have it: only regression targets are scaled
    if src.task == "regression" or hasattr(cfg, "target_scaling"):
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


def load(cfg: Any) -> Dataset:
    """Return the Dataset described by cfg: split, subset and scaled per the config."""
    spec = describe(cfg)
    src = DATASETS[spec.name]
    x_pool, y_pool, x_test, y_test = src.arrays(cfg)
    # The split uses its own stream so it does not shift when generation changes.
    perm = generated.streams(cfg.seed)[2].permutation(len(x_pool))
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


# A data set is its Source (shape facts and a loader) and one line here.
DATASETS = Registry("data", {
    "mnist": Source("classification", (28, 28, 1), mnist.arrays, 10, fixed_sizes=(60000, 10000)),
    "xor": Source("classification", (2,), generated.loader(generated.xor_points), 2),
    "moons": Source("classification", (2,), generated.loader(generated.moons_points), 2),
    "circles": Source("classification", (2,), generated.loader(generated.circles_points), 2),
    "spirals": Source("classification", (2,), generated.loader(generated.spirals_points), 2),
    "blobs": Source("classification", (2,), generated.loader(generated.blobs_points), None),
    "rosenbrock": Source("regression", (2,), generated.loader(generated.rosenbrock_points), 0,
                         targets_nonnegative=True),
    "poly1d": Source("regression", (1,), generated.loader(generated.poly1d_points), 0),
}, error=DataError)
