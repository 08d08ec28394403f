"""The user's own code, named in a config by `_target_` (Hydra's instantiate convention).

`module.attribute` is imported from the working directory, as a Hydra app imports its user's
code, and every way that can fail is one line naming the file and what is wrong. A leaf module
(no JAX, no OmegaConf), so that the config schema and every floor above it can read it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
import sys
from pathlib import Path

from dlrun.errors import ConfigError
from dlrun.layout import import_roots
from dlrun.text import clip

TARGET = "_target_"

# Objects handed over in Python (`dlrun.train(model=WideMLP)`), by the `_target_` that names them,
# each with the serial of its handing over: a class defined in a notebook has no file to import
# it from, and a cell run again hands over a new class under the same name.
_GIVEN: dict[str, tuple[object, int]] = {}
_SERIALS = itertools.count(1)


def names_code(node) -> bool:
    """Whether a config node (DictConfig or dict) names the user's code by `_target_`."""
    # keys(), not `in`: a DictConfig hides a key whose value is missing (`_target_: ???`) from `in`
    return hasattr(node, "keys") and TARGET in node.keys()


def shown(path) -> str:
    """A file as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, TypeError, OSError):
        return str(path)


def source_of(obj) -> str:
    """The file that defines `obj`, as `shown` writes it ('?' for one Python cannot tell)."""
    try:
        return shown(inspect.getsourcefile(obj) or inspect.getfile(obj))
    except TypeError:
        return "?"


def give(obj) -> str:
    """Return the `_target_` naming `obj` (`module.QualName`); in this process that name now
    resolves to `obj` itself, whether or not its module can be imported."""
    name = f"{obj.__module__}.{obj.__qualname__}"
    held = _GIVEN.get(name)
    if held is None or held[0] is not obj:
        _GIVEN[name] = (obj, next(_SERIALS))
    return name


def given_serial(target) -> int | None:
    """Which handing over `target` names (None for a name only an import resolves): checks
    cached by the name alone would skip a class redefined under it."""
    held = _GIVEN.get(str(target))
    return held[1] if held else None


def importable(obj) -> bool:
    """Whether a fresh process (a sweep's worker, a Ray task) imports `obj` by its `_target_`:
    not from `__main__` (a notebook, a script), not nested, and its module's own attribute."""
    module_name, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module_name or module_name == "__main__" or "." in qualname:
        return False
    module = sys.modules.get(module_name)
    return bool(getattr(module, "__file__", None)) and getattr(module, qualname, None) is obj


def import_target(target: str, key: str):
    """The object `key=target` names (`nets.WideMLP`: WideMLP from ./nets.py) and its file.

    Raises ConfigError in one line for a target that is not `module.attribute`, a module that
    is not there or fails to import (a syntax error, a missing dependency), or a name it lacks.
    A name `give` handed over resolves to its object, imported or not.
    """
    if str(target) in _GIVEN:
        obj = _GIVEN[str(target)][0]
        return obj, source_of(obj)
    module_name, _, attribute = str(target).rpartition(".")
    if not module_name or not attribute:
        raise ConfigError(
            f"{key}={clip(target)}: give module.name, e.g. nets.WideMLP for class WideMLP in ./nets.py"
        )
    module = _import(module_name, f"{key}={clip(target)}")
    if not hasattr(module, attribute):
        defined = [name for name, value in vars(module).items() if _defined_in(value, module)]
        raise ConfigError(
            f"{shown(module.__file__)} has no '{clip(attribute)}' ({key}={clip(target)}; "
            f"it defines: {', '.join(defined) or 'no class or function'})"
        )
    return getattr(module, attribute), shown(module.__file__)


def _import(module_name: str, setting: str):
    # the working directory first, as `python -m` and Hydra apps have it: the user's nets.py
    # wins over an installed package of the same name
    roots = import_roots()
    here = roots[0]
    for root in reversed(roots):
        if root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
    try:
        return importlib.import_module(module_name)
    except SyntaxError as error:
        where = f"{shown(error.filename)} line {error.lineno}" if error.filename else module_name
        raise ConfigError(f"{where}: {error.msg} ({setting})") from None
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(f"{error.name}.")):
            top = error.name.replace(".", "/")
            raise ConfigError(
                f"{setting}: no {top}.py (nor package {top}/) in the working directory {here}"
                + (f" or {roots[1]}" if len(roots) > 1 else "")
            ) from None
        raise ConfigError(
            f"{_file_of(module_name)}: importing it failed: {clip(error)} ({setting})"
        ) from None
    except Exception as error:  # the user's module raised while it ran: any type
        raise ConfigError(
            f"{_file_of(module_name)}: importing it raised {type(error).__name__}: "
            f"{clip(first_line(error))} ({setting})"
        ) from None


def _file_of(module_name: str) -> str:
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:  # a parent package that itself fails to import
        spec = None
    return shown(spec.origin) if spec and spec.origin else module_name


def _defined_in(value, module) -> bool:
    return (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == module.__name__


def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def import_root(target: str) -> str | None:
    """The folder `target`'s top-level module is imported from: the first import root holding
    it as a file or a package; None for an installed package, which each node has itself."""
    top = str(target).partition(".")[0]
    for root in import_roots():
        if (Path(root) / f"{top}.py").is_file() or (Path(root) / top / "__init__.py").is_file():
            return root
    return None
