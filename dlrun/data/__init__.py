"""Data sets for dlrun: MNIST, Fashion-MNIST and CIFAR-10 from their official files, small
generated sets, the user's own .npz and CSV files and image folders, and the user's own
loader function.

`describe(cfg)` answers static questions (shapes, sizes, task) without touching
the disk or the network, so the CLI can validate a run and build a model before
paying for data; for a user's file it reads and checks the file once (dlrun/data/files.py),
so that a bad file is refused before anything trains. `load(cfg)` returns the split, subset
and scaled arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from dlrun.data import cifar10, classes, fields, files, generated, images, loader, mnist, patches
from dlrun.data.generated import Arrays
from dlrun.errors import DataError
from dlrun.registry import Registry
from dlrun.targets import names_code


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
    class_names: tuple = ()  # of labels 0..num_classes-1 (after data.classes), for labelled sets
    source: tuple = ()  # where a user's file or loader's data came from, for the run folder


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
    fixed_sizes (pool, test) marks file-backed sets that ignore n_samples/n_test; their
    class_counts (per class: pool, test) size a class subset without reading the files.
    `prepare` marks a user's file: it returns the file's checked splits (files.Prepared), which
    stand for every other fact.
    """

    task: str
    input_shape: tuple
    arrays: Callable[[Any], Arrays]
    num_classes: int | None = 0
    fixed_sizes: tuple[int, int] | None = None
    targets_nonnegative: bool = False
    class_names: tuple = ()
    class_counts: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    prepare: Callable[[Any], files.Prepared] | None = None
    check: Callable[[Any], None] | None = None  # the set's own fields, checked by describe()


def file_source(read: Callable) -> Source:
    """A set of the user's own file, read by `read(path, cfg)` (dlrun/data/files.py)."""
    return Source("from the file", (), _no_arrays, prepare=functools.partial(files.prepare, read=read))


def _no_arrays(cfg: Any) -> Arrays:
    raise AssertionError("a file's or a loader's set is loaded from its prepared splits")


def image_source(
    input_shape: tuple, arrays: Callable[[Any], Arrays], names: tuple, pool_counts: tuple, test_counts: tuple
) -> Source:
    """A file-backed labelled image set whose official files hold these examples per class."""
    return Source(
        "classification",
        input_shape,
        arrays,
        len(names),
        fixed_sizes=(sum(pool_counts), sum(test_counts)),
        class_names=names,
        class_counts=(pool_counts, test_counts),
    )


SCALINGS = ("standardize", "unit", "none")
TARGET_SCALINGS = ("standardize", "none")


def _source(cfg: Any) -> Source:
    # a data node with `_target_` names the user's loader, whatever its name (an entry point's)
    return DATASETS[LOADER] if names_code(cfg) else DATASETS.get(fields.field(cfg, "name"))


def _sizes(cfg: Any, src: Source, chosen: tuple | None) -> tuple[int, int]:
    """Return (pool size, test size), validating the generated-set fields."""
    if src.class_counts is not None:
        return tuple(classes.static_counts(counts, chosen) for counts in src.class_counts)
    if src.fixed_sizes is not None:
        return src.fixed_sizes
    pool = fields.int_field(cfg, "n_samples", 1)
    n_test = fields.int_field(cfg, "n_test", 1)
    noise = fields.field(cfg, "noise")
    if isinstance(noise, bool) or not isinstance(noise, Real) or not noise >= 0:
        raise DataError(f"data.noise={noise!r} must be a number >= 0")
    return pool, n_test


def _num_classes(cfg: Any, src: Source) -> int:
    if src.num_classes is not None:
        return src.num_classes
    return fields.int_field(cfg, "classes", 2)


def describe(cfg: Any) -> DataSpec:
    """Validate cfg and return the DataSpec of the data set, without loading any data (a user's
    file is read and checked, once per version of it: dlrun/data/files.py)."""
    src = _source(cfg)
    if src.prepare is not None:
        return _file_spec(cfg, src.prepare(cfg))
    chosen = classes.chosen_classes(cfg, src.class_names) if src.class_names else None
    per_class = classes.chosen_per_class(cfg) if src.class_names else None
    pool, n_test = _sizes(cfg, src, chosen)
    val_size = fields.int_field(cfg, "val_size", 0)
    if val_size >= pool:
        raise DataError(
            f"data.val_size={val_size} leaves no training data: "
            f"the {cfg.name} training pool has {pool} examples"
        )
    subset = fields.field(cfg, "subset")
    n_train = pool - val_size
    if subset is not None:
        n_train = min(n_train, fields.int_field(cfg, "subset", 1))
    names = tuple(src.class_names[c] for c in chosen) if chosen else tuple(src.class_names)
    if per_class is not None:
        _check_per_class(src, chosen, per_class)
        n_train = per_class * len(names)
    fields.choice_field(cfg, "scaling", SCALINGS)
    # a classification set's own schema need not have it: only regression targets are scaled
    if src.task == "regression" or hasattr(cfg, "target_scaling"):
        fields.choice_field(cfg, "target_scaling", TARGET_SCALINGS)
    fields.int_field(cfg, "seed", 0)
    if src.check is not None:
        src.check(cfg)
    return DataSpec(
        name=cfg.name,
        task=src.task,
        input_shape=tuple(src.input_shape),
        num_classes=len(names) if names else _num_classes(cfg, src),
        n_train=n_train,
        n_val=val_size,
        n_test=n_test,
        targets_nonnegative=src.targets_nonnegative,
        class_names=names,
    )


def _file_spec(cfg: Any, prepared: files.Prepared) -> DataSpec:
    fields.choice_field(cfg, "scaling", SCALINGS)
    if prepared.task == "regression":
        fields.choice_field(cfg, "target_scaling", TARGET_SCALINGS)
    sizes = {split: len(y) for split, (_, y) in prepared.splits.items()}
    return DataSpec(
        name=cfg.name,
        task=prepared.task,
        input_shape=prepared.input_shape,
        num_classes=len(prepared.class_names),
        n_train=sizes["train"],
        n_val=sizes["val"],
        n_test=sizes["test"],
        class_names=prepared.class_names,
        source=prepared.source,
    )


def _check_per_class(src: Source, chosen: tuple | None, per_class: int) -> None:
    """Refuse a per_class above what the official pool holds of a class (the exact count left
    after the validation split is known only from the labels: load() checks that)."""
    for c in chosen or range(len(src.class_names)):
        if per_class > src.class_counts[0][c]:
            raise DataError(
                f"data.per_class={per_class}: class {c} ({src.class_names[c]}) has only "
                f"{src.class_counts[0][c]} examples in the training pool"
            )


# The last data set loaded while a command reuses its loads (see reused_loads), by its key.
_REUSED: dict | None = None


@contextmanager
def reused_loads():
    """Within this block, loading the data config loaded last returns that same Dataset.

    A sweep loads its data for every group and every adaptive round (the split, subset and
    scaling cost ~0.15 s each time for a 10,000-image MNIST subset), and its files do not change
    under it. One data set is kept, so a sweep over data sets holds no more than one extra.
    """
    global _REUSED
    outer = _REUSED
    _REUSED = {} if outer is None else outer
    try:
        yield
    finally:
        _REUSED = outer


def load(cfg: Any) -> Dataset:
    """Return the Dataset described by cfg: split, subset and scaled per the config."""
    if _REUSED is None:
        return _load(cfg)
    from omegaconf import OmegaConf

    text = repr(OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg)
    # where the files come from too (DLRUN_DATA_DIR, the mirrors, the cache)
    key = (text, sorted((name, value) for name, value in os.environ.items() if name.startswith("DLRUN_")))
    key = repr(key)
    if key not in _REUSED:
        _REUSED.clear()
        _REUSED[key] = _load(cfg)
    return _REUSED[key]


def _load(cfg: Any) -> Dataset:
    spec = describe(cfg)
    src = _source(cfg)
    if src.prepare is not None:
        # copies, as for the built-in sets: the prepared arrays stay cached for the next trial
        splits = src.prepare(cfg).splits  # once: a folder's check stats every image
        arrays = [np.array(a) for split in ("train", "val", "test") for a in splits[split]]
        return _scaled(cfg, Dataset(spec, *arrays))
    x_pool, y_pool, x_test, y_test = src.arrays(cfg)
    chosen = classes.chosen_classes(cfg, src.class_names) if src.class_names else None
    if chosen is not None:
        x_pool, y_pool = classes.keep_classes(x_pool, y_pool, chosen)
        x_test, y_test = classes.keep_classes(x_test, y_test, chosen)
    val_idx, train_idx = _split(cfg, spec, y_pool)
    ds = Dataset(
        # sizes from the arrays: files served by a mirror with its own checksums may be smaller
        spec=dataclasses.replace(spec, n_train=len(train_idx), n_test=len(y_test)),
        x_train=x_pool[train_idx],
        y_train=y_pool[train_idx],
        x_val=x_pool[val_idx],
        y_val=y_pool[val_idx],
        # A copy, as for the fancy-indexed splits: file arrays are shared and read-only.
        x_test=np.array(x_test),
        y_test=np.array(y_test),
    )
    return _scaled(cfg, ds)


def _scaled(cfg: Any, ds: Dataset) -> Dataset:
    _scale_inputs(ds, cfg.scaling)
    if ds.spec.task == "regression" and cfg.target_scaling == "standardize":
        _standardize_targets(ds)
    return ds


def _split(cfg: Any, spec: DataSpec, y_pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (validation, training) indices into the pool: a seeded split, then the cap."""
    if spec.n_val >= len(y_pool):
        raise DataError(
            f"data.val_size={spec.n_val} leaves no training data: "
            f"the {spec.name} training pool has {len(y_pool)} examples"
        )
    # The split uses its own stream so it does not shift when generation changes.
    perm = generated.streams(cfg.seed)[2].permutation(len(y_pool))
    val_idx, train_idx = perm[: spec.n_val], perm[spec.n_val :]
    per_class = classes.chosen_per_class(cfg) if spec.class_names else None
    if per_class is not None:
        return val_idx, classes.first_per_class(y_pool, train_idx, per_class, spec.class_names, spec.n_val)
    return val_idx, train_idx[: spec.n_train]


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


# The option of the user's loader (dlrun/data/loader.py), in conf/data/ as for any data set.
LOADER = "loader"
# A data set is its Source (shape facts and a loader) and one line here.
DATASETS = Registry(
    "data",
    {
        "mnist": image_source((28, 28, 1), mnist.arrays, mnist.CLASS_NAMES, *mnist.CLASS_COUNTS),
        "fashion_mnist": image_source(
            (28, 28, 1), mnist.fashion_arrays, mnist.FASHION_CLASS_NAMES, (6000,) * 10, (1000,) * 10
        ),
        "cifar10": image_source((32, 32, 3), cifar10.arrays, cifar10.CLASS_NAMES, (5000,) * 10, (1000,) * 10),
        "xor": Source("classification", (2,), generated.loader(generated.xor_points), 2),
        "moons": Source("classification", (2,), generated.loader(generated.moons_points), 2),
        "circles": Source("classification", (2,), generated.loader(generated.circles_points), 2),
        "spirals": Source("classification", (2,), generated.loader(generated.spirals_points), 2),
        "blobs": Source("classification", (2,), generated.loader(generated.blobs_points), None),
        "rosenbrock": Source(
            "regression", (2,), generated.loader(generated.rosenbrock_points), 0, targets_nonnegative=True
        ),
        "poly1d": Source("regression", (1,), generated.loader(generated.poly1d_points), 0),
        "patches": Source(
            "classification",
            (patches.SIDE, patches.SIDE, 1),
            patches.arrays,
            5,
            class_names=patches.CLASS_NAMES,
            check=patches.check,
        ),
        "npz": file_source(files.read_npz),
        "csv": file_source(files.read_csv),
        "image_folder": Source("classification", (), _no_arrays, prepare=images.prepare),
        LOADER: Source("from the loader", (), _no_arrays, prepare=loader.prepare),
    },
    error=DataError,
)
