"""The Python objects the API takes for `model=` and `data=`, turned into the overrides that the
CLI would be given for them, so that they go through the same checks as a `_target_` and a file.

- A model (a Flax module class, NNX or Linen, or a function returning one) becomes
  `model=user model._target_=module.QualName`; the name is handed over (dlrun/targets.py), so
  this process resolves it to the object itself, even one defined in a notebook. It is then
  traced by `jax.eval_shape` on the data's shape as any `_target_` is (dlrun/models/user.py).
  Its arguments may come with it: `functools.partial(WideMLP, width=64)`, or a Linen module
  object `LinenMLP(width=64)` (a dataclass of its arguments, holding no parameters), each
  argument becoming `+model.NAME=VALUE` as if typed. An NNX module object is refused: its
  parameters are drawn already, and each trial draws its own from its seed.
- Arrays (`(x, y)`, or a dict of the arrays an .npz holds) are written once as an .npz in the
  cache, named by a digest of their contents, and become `data=npz data.path=FILE`: read,
  checked and split as any user's file, and recorded with its sha256 in summary.json.

A process that cannot see this one's handed-over names (a sweep's worker processes, a Ray task)
imports the class by its name instead: `worker_problem` refuses, in one line, one that it could
not import, rather than let each worker fail on it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import math
from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
import numpy as np
from flax import nnx

from dlrun import results
from dlrun.backend import cache_root
from dlrun.errors import ConfigError
from dlrun.models.user import GIVEN
from dlrun.targets import TARGET, give, importable
from dlrun.text import clip

# The arrays an .npz may hold (dlrun/data/files.py reads them): x and y, or the three splits.
ARRAY_NAMES = ("x", "y", "x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
# Where handed-over arrays are written, under the cache (beside the downloaded data sets).
ARRAYS_FOLDER = "arrays"


def quoted(text: str) -> str:
    """`text` as one Hydra override value, whatever characters a path or a name holds."""
    quote = "'" if "'" not in text else '"'
    return f"{quote}{text}{quote}"


def model_overrides(model, overrides: list[str]) -> list[str]:
    """The overrides that name `model` (a class or a function returning a Flax module, bare or
    with its arguments: a functools.partial of one, a Linen module object)."""
    target, arguments = model_parts(model)
    _refuse_both("model", overrides, ("model=", f"model.{TARGET}="))
    for name in arguments:
        _refuse_both(f"model.{name}", overrides, (f"model.{name}=",))
    given = [f"+model.{name}={_override_value(name, value)}" for name, value in arguments.items()]
    return ["model=user", f"model.{TARGET}={quoted(give(target))}", *given]


def model_parts(model) -> tuple:
    """(the class or function `model` calls, the keyword arguments it comes with)."""
    if isinstance(model, str):
        raise ConfigError(
            f"model={model!r} is text: give the class itself, or name it by the override "
            f"model._target_={model}"
        )
    if isinstance(model, functools.partial):
        if model.args:
            raise ConfigError(
                f"model=partial({getattr(model.func, '__name__', model.func)}, ...) gives positional "
                "arguments: give them by name, as the config records them"
            )
        target, arguments = model_parts(model.func)
        return target, {**arguments, **model.keywords}
    if isinstance(model, nnx.Module):
        name = type(model).__name__
        raise ConfigError(
            f"model= is an NNX {name} object, whose parameters are drawn already: give the class "
            f"(each trial draws its own from its seed), with its arguments as functools.partial("
            f"{name}, width=...) or as overrides +model.NAME=VALUE"
        )
    if isinstance(model, nn.Module):
        return type(model), _linen_arguments(model)
    if not (inspect.isclass(model) or inspect.isfunction(model)):
        raise ConfigError(
            f"model= is a {type(model).__name__} object: give a Flax module class, a function "
            "returning a module, a functools.partial of one, or a Linen module object"
        )
    return model, {}


def _linen_arguments(module) -> dict:
    """A Linen module object's fields set away from their defaults: the arguments it was made with
    (those dlrun gives, such as `outputs`, are sized for the data and left to it)."""
    arguments = {}
    for field in dataclasses.fields(module):
        if not field.init or field.name in ("parent", "name", *GIVEN):
            continue
        value = getattr(module, field.name)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if default is dataclasses.MISSING or not _same(value, default):
            arguments[field.name] = value
    return arguments


def _same(value, default) -> bool:
    try:
        return bool(value == default)
    except Exception:  # an array's == is elementwise, another object's may raise
        return value is default


def _override_value(name: str, value) -> str:
    """`value` in Hydra's override grammar; ConfigError for one the config cannot record."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(name, item) for item in value) + "]"
    raise ConfigError(
        f"model argument {name}={clip(repr(value))} is a {type(value).__name__}, which config.yaml "
        "cannot record: give numbers, text, booleans or lists of them (and build the rest "
        "inside the module)"
    )


def data_overrides(data, overrides: list[str]) -> list[str]:
    """The overrides that name `data` (arrays), written as an .npz in the cache."""
    _refuse_both("data", overrides, ("data=", "data.path="))
    return ["data=npz", f"data.path={quoted(str(write_arrays(_arrays(data))))}"]


def worker_problem(model, where: str) -> str | None:
    """Why the processes `where` names cannot import `model` by its name (None: they can)."""
    if model is None:
        return None
    model, _ = model_parts(model)
    if importable(model):
        return None
    module = getattr(model, "__module__", "?")
    why = (
        "is defined in __main__ (a notebook or a script)"
        if module == "__main__"
        else "is not an attribute of its module"
    )
    return (
        f"model={getattr(model, '__qualname__', model)} {why}, which {where} cannot import: put it "
        "in a module of its own (nets.py) and import it from there, or sweep in this process "
        "(jobs=None, executor='local')"
    )


def _refuse_both(key: str, overrides: list[str], prefixes: tuple) -> None:
    for text in overrides:
        if text.lstrip("+~").startswith(prefixes):
            raise ConfigError(f"{key}= and the override {text} both say what {key} to use: give one")


def _arrays(data) -> dict:
    """{name: array} of `(x, y)` or a mapping of ARRAY_NAMES; ConfigError for anything else."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = {"x": data[0], "y": data[1]}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"data= is a {type(data).__name__}: give (x, y), or a dict of arrays ({', '.join(ARRAY_NAMES)})"
        )
    unknown = [str(name) for name in data if name not in ARRAY_NAMES]
    if unknown:
        raise ConfigError(f"data= has no array '{unknown[0]}' (choose from: {', '.join(ARRAY_NAMES)})")
    arrays = {name: np.asarray(value) for name, value in data.items()}
    for name, array in arrays.items():
        if array.dtype.kind == "O":
            raise ConfigError(
                f"data= array {name} holds Python objects (dtype object): give numbers, or text labels"
            )
    return arrays


def write_arrays(arrays: dict) -> Path:
    """The .npz holding `arrays`, written once (atomically) under the cache, named by a digest
    of the contents: the same arrays again are the same file, so the same run's config."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    path = cache_root() / ARRAYS_FOLDER / f"{digest.hexdigest()}.npz"
    if not path.is_file():
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            results.atomic_write_bytes(path, buffer.getvalue())
        except OSError as error:
            raise ConfigError(f"{path}: cannot write the arrays there ({error.strerror or error})") from None
    return path
