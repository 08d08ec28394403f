"""Data from the user's own function: `data=loader data._target_=loaders.digits +data.n=500`.

The contract a loader keeps (this is its one statement; conf/data/loader.yaml points here):

1. `_target_` names a function (any callable) as `module.name`: `loaders.digits` is digits in
   ./loaders.py (or the package ./loaders/), imported from the working directory.
2. It is called with the option's other fields as keyword arguments (`+data.n=500` gives
   `n=500`); dlrun's own fields (OWN_KEYS: the splits, the classes, the scaling) are not passed.
3. It returns the arrays an `.npz` of `data=npz` holds: a pair `(x, y)`, or a dict with `x` and
   `y`, or `x_train` and `y_train` and, where it has them, `x_val`, `y_val`, `x_test`, `y_test`.
   Anything `np.asarray` takes will do (NumPy, JAX, lists).
4. They go through the same checks and the same carving as a file's (dlrun/data/files.py):
   the splits it lacks are carved from its training examples, and `data.task`, `data.classes`,
   `data.per_class` and `data.subset` work as for a file.
5. It is called once per config in a process (a sweep's trials share the call) and before
   anything trains; `summary.json` records under `data_source` its `_target_`, its file and the
   sha256 of what it returned (checksum() says how), to tell when the data changed.
6. A loader that cannot be imported, does not take its arguments, raises, or returns the wrong
   thing is one line naming its file and the problem (exit 2).
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from dlrun.data import files
from dlrun.errors import ConfigError, DataError
from dlrun.targets import TARGET, first_line, import_target, source_of
from dlrun.text import clip

# The option's own fields (conf/data/loader.yaml, LoaderDataConfig), which are dlrun's and not
# the loader's arguments; tests/test_data_loader.py checks that they are the schema's.
OWN_KEYS = (
    "name",
    TARGET,
    "subset",
    "val_size",
    "scaling",
    "seed",
    "task",
    "test_size",
    "classes",
    "per_class",
    "target_scaling",
)
EXPECTED = (
    "expected (x, y), or a dict with x and y, or x_train and y_train "
    "(and x_val, y_val, x_test, y_test where it has them)"
)

# One call and one config prepared, as for a file (dlrun/data/files.py): a sweep calls once.
_CALLED: dict = {}
_PREPARED: dict = {}


def prepare(cfg: Any) -> files.Prepared:
    """Return the checked, split data that cfg._target_'s function returns (see the contract)."""
    if OmegaConf.is_config(cfg) and OmegaConf.is_missing(cfg, TARGET):
        raise DataError(
            f"data={cfg.name} needs data.{TARGET}=module.function, e.g. data.{TARGET}=loaders.digits "
            f"for def digits() in ./loaders.py"
        )
    target = str(cfg[TARGET])
    kwargs = arguments(cfg)
    call_key = (target, repr(kwargs))
    key = (call_key, tuple(repr(files.plain_field(cfg, name)) for name in files.PREPARE_FIELDS))
    if key not in _PREPARED:
        if call_key not in _CALLED:
            _CALLED.clear()
            _CALLED[call_key] = _call(target, kwargs)
        raw, source, where = _CALLED[call_key]
        try:
            prepared = files.prepare_arrays(cfg, raw, source)
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
        _PREPARED.clear()
        _PREPARED[key] = prepared
    return _PREPARED[key]


def arguments(cfg: Any) -> dict:
    """The keyword arguments the loader is called with: the option's fields that are not dlrun's."""
    node = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    return {key: value for key, value in node.items() if key not in OWN_KEYS}


def _call(target: str, kwargs: dict) -> tuple[dict, tuple, str]:
    """({split: (x, y)}, the source for the run folder, `file: target` for messages) of one
    call of the loader."""
    try:
        function, _ = import_target(target, f"data.{TARGET}")
    except ConfigError as error:  # the data's problems are DataErrors, as a file's are
        raise DataError(str(error)) from None
    file = source_of(function)
    if not callable(function):
        raise DataError(f"{file}: {clip(target)} is a {type(function).__name__}, not a function")
    _check_arguments(function, file, target, kwargs)
    try:
        returned = function(**kwargs)
    except Exception as error:  # the user's function: any type
        raise DataError(
            f"{file}: {clip(target)} raised {type(error).__name__}: {clip(first_line(error))}"
        ) from None
    where = f"{file}: {clip(target)}"
    arrays = _arrays(returned, where)
    raw = files.named_splits(where, arrays)
    source = (("target", target), ("file", _absolute(function, file)), ("sha256", checksum(arrays)))
    return raw, source, where


def _check_arguments(function, file: str, target: str, kwargs: dict) -> None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the call will tell
        return
    named = {p.name: p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
        for key in kwargs:
            if key not in named:
                raise DataError(
                    f"{file}: {clip(target)} takes no argument '{clip(key)}' (set by data.{clip(key)}; "
                    f"it takes: {', '.join(named) or 'none'})"
                )
    for name, parameter in named.items():
        if parameter.default is parameter.empty and name not in kwargs:
            raise DataError(
                f"{file}: {clip(target)} needs argument '{name}': give it with +data.{name}=VALUE"
            )


def _arrays(returned, where: str) -> dict:
    """The returned arrays by their .npz names; DataError saying what came back otherwise."""
    if isinstance(returned, (tuple, list)) and len(returned) == 2:
        named = {"x": returned[0], "y": returned[1]}
    elif isinstance(returned, dict):
        named = dict(returned)
    elif isinstance(returned, (tuple, list)):
        raise DataError(f"{where} returned a {type(returned).__name__} of {len(returned)} items; {EXPECTED}")
    else:
        raise DataError(f"{where} returned {_what(returned)}; {EXPECTED}")
    arrays = {}
    for name, value in named.items():
        try:
            arrays[str(name)] = np.asarray(value)
        except Exception as error:  # ragged lists and objects NumPy cannot stack: any type
            raise DataError(f"{where} returned {name} that is no array ({clip(first_line(error))})") from None
    return arrays


def _what(value) -> str:
    return "None" if value is None else f"a {type(value).__name__} ({clip(repr(value), 40)})"


def checksum(arrays: dict) -> str:
    """The sha256 of the arrays in name order: each one's name, dtype, shape and C-order bytes
    (a word label array of Python objects as its text)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        values = arrays[name]
        values = values.astype(str) if values.dtype.kind == "O" else values
        digest.update(f"{name} {values.dtype.str} {values.shape}\n".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def _absolute(function, file: str) -> str:
    try:
        return str(Path(inspect.getsourcefile(function) or file).resolve())
    except TypeError:  # a callable Python cannot place
        return file
