"""Data from the user's own files: `data=npz data.path=F` and `data=csv data.path=F data.target=COLUMN`.

`prepare(cfg)` reads the file, checks it (arrays, shapes, dtypes, NaN/inf, labels, sizes), keeps
`data.classes`, carves the splits the file does not hold (stratified for classes) and caps the
training set (`data.per_class`, `data.subset`). Every problem is one DataError line that starts
with the file's path. A file is read once per (path, size, mtime) and a config prepared once, so
the describe() of every trial of a sweep costs a stat. The checks and the carving
(named_splits, prepare_arrays) serve the arrays a loader of the user's returns too
(dlrun/data/loader.py).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from dlrun.data import classes, generated
from dlrun.data.fields import int_field
from dlrun.errors import DataError

TASKS = ("auto", "classification", "regression")
NPZ_SPLITS = ("train", "val", "test")
# What prepare() depends on besides the file; a change of any of them prepares again.
PREPARE_FIELDS = ("task", "target", "val_size", "test_size", "classes", "per_class", "subset", "seed")


@dataclass(frozen=True)
class Prepared:
    """A file's data, checked and split; y is int32 labels or (n, outputs) float32 targets."""

    task: str
    input_shape: tuple
    class_names: tuple  # of labels 0..k-1 (after data.classes); () for regression
    source: tuple  # where the data came from, as (key, value) pairs for the run folder
    splits: dict  # "train" | "val" | "test" -> (x, y)


# One file read and one config prepared: a sweep over one file's data reads it once.
_READ: dict = {}
_PREPARED: dict = {}


def prepare(cfg: Any, read) -> Prepared:
    """Return the checked, split data of the file cfg.path names, read by `read(path, cfg)`."""
    path = data_path(cfg)
    try:
        stat = path.stat()
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error}); data.path={cfg.path}") from None
    if not path.is_file():
        raise DataError(f"{path}: is a folder, not a file (data.path={cfg.path})")
    file_key = (read.__name__, str(path), stat.st_size, stat.st_mtime_ns, plain_field(cfg, "target"))
    return prepared(cfg, path, file_key, lambda: _read_file(path, cfg, read))


def _read_file(path: Path, cfg: Any, read) -> tuple[dict, str]:
    digest = _sha256(path)  # first: it also tells an unreadable file
    return read(path, cfg), digest


def prepared(cfg: Any, path: Path, read_key: tuple, read: Callable[[], tuple]) -> Prepared:
    """Return cfg's Prepared of the data `read()` returns as (raw splits, sha256): read once per
    read_key (a cheap stamp that changes with the data) and split once per config."""
    key = (read_key, tuple(repr(plain_field(cfg, name)) for name in PREPARE_FIELDS))
    if key not in _PREPARED:
        if read_key not in _READ:
            _READ.clear()
            _READ[read_key] = read()
        raw, digest = _READ[read_key]
        try:
            result = prepare_arrays(cfg, raw, (("path", str(path)), ("sha256", digest)))
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
        _PREPARED.clear()
        _PREPARED[key] = result
    return _PREPARED[key]


def plain_field(cfg: Any, name: str) -> Any:
    """cfg.name as a plain value; None where the config lacks it or leaves it missing (???)."""
    if OmegaConf.is_config(cfg) and (name not in cfg or OmegaConf.is_missing(cfg, name)):
        return None
    value = getattr(cfg, name, None)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def data_path(cfg: Any, wanted: str | None = None) -> Path:
    """Return data.path as an absolute path; `wanted` says what it names where it is missing."""
    if OmegaConf.is_config(cfg) and OmegaConf.is_missing(cfg, "path"):
        raise DataError(f"data={cfg.name} needs data.path={wanted or f'FILE, the {cfg.name} file to read'}")
    # Relative to the working directory, as a shell user means it; recorded absolute.
    return Path(str(cfg.path)).expanduser().absolute()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    return digest.hexdigest()


def read_npz(path: Path, cfg: Any) -> dict:
    """Return {split: (x, y)} of an .npz file's arrays x, y or x_train, y_train (and x_val, y_val,
    x_test, y_test where it has them)."""
    if not zipfile.is_zipfile(path):  # np.load would take it for a pickle or an .npy
        raise DataError(f"{path}: is not an .npz file (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as held:
            arrays = {name: held[name] for name in held.files}
    except ValueError:  # what an object array raises without allow_pickle
        raise DataError(f"{path}: holds Python objects, not numeric arrays") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(f"{path}: is not a readable .npz file ({error})") from None
    return named_splits(str(path), arrays)


def named_splits(where: str, arrays: dict) -> dict:
    """Return {split: (x, y)} of named arrays, as an .npz holds them: x, y or x_train, y_train
    (and x_val, y_val, x_test, y_test where given). DataErrors start with `where` (the file)."""
    names = ", ".join(sorted(arrays)) or "no arrays"
    if {"x", "y"} <= arrays.keys():
        named = {"train": ("x", "y")}
    elif {"x_train", "y_train"} <= arrays.keys():
        named = {split: (f"x_{split}", f"y_{split}") for split in NPZ_SPLITS if f"x_{split}" in arrays}
        for split in NPZ_SPLITS:
            if (f"x_{split}" in arrays) != (f"y_{split}" in arrays):
                raise DataError(f"{where}: has x_{split} or y_{split} but not both; it holds: {names}")
    else:
        raise DataError(f"{where}: has no arrays x and y (nor x_train and y_train); it holds: {names}")
    for x_name, y_name in named.values():
        _check_array(where, x_name, arrays[x_name])
        if arrays[y_name].ndim == 0:
            raise DataError(f"{where}: {y_name} is a single value, not one per example")
        if len(arrays[x_name]) != len(arrays[y_name]):
            raise DataError(
                f"{where}: {x_name} has {len(arrays[x_name])} examples but {y_name} has {len(arrays[y_name])}"
            )
    splits = {split: (arrays[x_name], arrays[y_name]) for split, (x_name, y_name) in named.items()}
    shapes = {x.shape[1:] for x, _ in splits.values()}
    if len(shapes) > 1:
        raise DataError(f"{where}: the splits' examples differ in shape: {sorted(shapes)}")
    return splits


def _check_array(where: str, name: str, x: np.ndarray) -> None:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {name} has dtype {x.dtype}; inputs must be numbers (int, uint or float)")
    if x.ndim < 1 or x.ndim > 4:
        raise DataError(
            f"{where}: {name} has shape {x.shape}; expected (n, features), (n, H, W) or (n, H, W, C)"
        )


def read_csv(path: Path, cfg: Any) -> dict:
    """Return {"train": (x, y)} of a CSV file with a header row: every column but data.target a feature."""
    target = plain_field(cfg, "target")
    if target is None:
        raise DataError(f"{path}: data=csv needs data.target=COLUMN, the column to predict")
    try:
        frame = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: is not a CSV text file ({type(error).__name__})") from None
    if str(target) not in frame.columns:
        raise DataError(
            f"{path}: has no column '{target}' (data.target); its columns: {', '.join(frame.columns)}"
        )
    features = frame.drop(columns=[str(target)])
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]) and not pd.api.types.is_bool_dtype(
            features[column]
        ):
            value = features[column].dropna().iloc[0] if features[column].notna().any() else ""
            raise DataError(
                f"{path}: column '{column}' is not numeric (it holds {value!r}); "
                "every column but data.target must be a number"
            )
    if features.shape[1] == 0:
        raise DataError(f"{path}: has no feature columns besides data.target='{target}'")
    for column in [*features.columns, str(target)]:
        if frame[column].isna().any():
            first = int(np.argmax(frame[column].isna().to_numpy()))
            raise DataError(f"{path}: column '{column}' is empty at example {first} (counting from 0)")
    y = frame[str(target)]
    y = y.to_numpy() if pd.api.types.is_numeric_dtype(y) else y.astype(str).to_numpy()
    return {"train": (features.to_numpy(np.float64), y)}


def prepare_arrays(cfg: Any, raw: dict, source: tuple) -> Prepared:
    """The checked `raw` splits ({split: (x, y)}, from named_splits) with their labels, the
    classes kept, the splits carved and the training cap, as numbered steps; `source` says
    where they came from, for the run folder. DataErrors name no file: the caller prefixes it."""
    # 1. the task, and y as int32 labels or float32 targets
    task, names, splits = _targets(cfg, raw)
    # 2. every value finite
    _check_finite(splits)
    # 3. data.classes keeps and relabels; each class kept needs training examples
    names, splits = _keep_classes(cfg, task, names, splits)
    # 4. the splits the file lacks are carved from its training pool, test first
    pool_rng, test_rng, val_rng = generated.streams(int_field(cfg, "seed", 0))
    for split, rng in (("test", test_rng), ("val", val_rng)):
        if split not in splits:
            splits[split], splits["train"] = _carve(cfg, split, splits["train"], rng, task)
    # 5. the training cap, in a seeded order
    x, y = splits["train"]
    order = _order(pool_rng, y, task == "classification")
    per_class = classes.chosen_per_class(cfg) if task == "classification" else None
    if per_class is not None:
        order = classes.first_per_class(y, order, per_class, names, len(splits["val"][1]))
    elif getattr(cfg, "subset", None) is not None:
        order = order[: int_field(cfg, "subset", 1)]
    splits["train"] = (x[order], y[order])
    # 6. grey images get their channel axis, as conv models expect
    if x.ndim == 3:
        splits = {split: (xs[..., None], ys) for split, (xs, ys) in splits.items()}
    shape = tuple(splits["train"][0].shape[1:])
    return Prepared(task, shape, names, source, splits)


def _check_finite(splits: dict) -> None:
    for split, (x, y) in splits.items():
        for axis, values in (("x", x), ("y", y)):
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
                raise DataError(f"{axis} ({split} split) holds NaN or inf at example {bad} (counting from 0)")


def _keep_classes(cfg: Any, task: str, names: tuple, splits: dict) -> tuple[tuple, dict]:
    if task == "regression":
        for name in ("classes", "per_class"):
            if getattr(cfg, name, None) is not None:
                raise DataError(
                    f"data.{name} picks classes, but the task is regression; set data.{name}=null"
                )
        return names, splits
    chosen = classes.chosen_classes(cfg, names)
    if chosen is not None:
        splits = {split: classes.keep_classes(x, y, chosen) for split, (x, y) in splits.items()}
        names = tuple(names[c] for c in chosen)
    counts = np.bincount(splits["train"][1], minlength=len(names))
    if counts.min() == 0:
        empty = int(np.argmin(counts))
        raise DataError(
            f"no training example of class {empty} ({names[empty]}): labels must be 0..k-1 "
            "(choose the classes present with data.classes, or set data.task=regression)"
        )
    return names, splits


def _carve(cfg: Any, split: str, pool: tuple, rng: np.random.Generator, task: str) -> tuple[tuple, tuple]:
    """Return (the carved split, the rest of the pool), stratified for classes."""
    size = int_field(cfg, f"{split}_size", 1)
    x, y = pool
    order = _order(rng, y, task == "classification")
    if size >= len(order):
        left = "examples" if split == "test" else "examples left after the test split"
        raise DataError(
            f"the {len(order)} {left} are too few for data.{split}_size={size}: "
            "none would be left to train on; lower it"
        )
    return (x[order[:size]], y[order[:size]]), (x[order[size:]], y[order[size:]])


def _targets(cfg: Any, raw: dict) -> tuple[str, tuple, dict]:
    task = getattr(cfg, "task", "auto")
    if str(task) not in TASKS:
        raise DataError(f"data.task={task!r} is not one of: {', '.join(TASKS)}")
    ys = [y for _, y in raw.values()]
    words = any(y.dtype.kind in "OUS" for y in ys)
    whole = not words and all(y.dtype.kind in "biu" or np.array_equal(y, np.round(y)) for y in ys)
    task = str(task) if str(task) != "auto" else ("classification" if words or whole else "regression")
    # uint8 images stay so (data.load scales them on the device); a 1-D x is one feature
    splits = {
        split: (x if x.dtype == np.uint8 else x.reshape(len(x), *(x.shape[1:] or (1,))).astype(np.float32), y)
        for split, (x, y) in raw.items()
    }
    if task == "regression":
        if words:
            raise DataError("y holds words, not numbers: a regression needs numeric targets")
        if any(y.size != len(y) for y in ys):
            raise DataError(f"y has shape {ys[0].shape}: a regression has one target per example")
        return task, (), {s: (x, y.reshape(len(y), -1).astype(np.float32)) for s, (x, y) in splits.items()}
    if words:
        names = tuple(sorted({str(v) for y in ys for v in y}))
        index = {name: i for i, name in enumerate(names)}
        return (
            task,
            names,
            {s: (x, np.array([index[str(v)] for v in y], np.int32)) for s, (x, y) in splits.items()},
        )
    if not whole or any(y.ndim != 1 for y in ys):
        raise DataError(
            "y is not one whole-number label per example: set data.task=regression for numeric targets"
        )
    low = min(int(y.min(initial=0)) for y in ys)
    if low < 0:
        raise DataError(f"y has label {low}: class labels must be 0..k-1")
    k = max(int(y.max(initial=0)) for y in ys) + 1
    return task, tuple(str(i) for i in range(k)), {s: (x, y.astype(np.int32)) for s, (x, y) in splits.items()}


def _order(rng: np.random.Generator, y: np.ndarray, stratify: bool) -> np.ndarray:
    """A seeded order of the examples; stratified, any prefix holds each class in proportion
    (within one example), so a carved split or a subset keeps the class balance."""
    perm = rng.permutation(len(y))
    if not stratify:
        return perm
    shuffled = y[perm]
    position = np.empty(len(perm))
    for c in np.unique(shuffled):
        where = shuffled == c
        position[where] = (np.arange(where.sum()) + 0.5) / where.sum()
    return perm[np.argsort(position, kind="stable")]
