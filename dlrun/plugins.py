"""Options that installed packages add, by entry points (the plugin convention of pytest and
friends): `wide = my_pkg.nets:WideMLP` in group `dlrun.models` makes `model=wide` a model, and
`digits = my_pkg.data:load` in group `dlrun.data` makes `data=digits` a data set.

The contract a package keeps:

1. Its entry point's value is `module:name`; `name` is what `_target_` would name: a Flax module
   class or factory (dlrun/models/user.py) in `dlrun.models`, a loader function
   (dlrun/data/loader.py) in `dlrun.data`.
2. Its option is the group's user option (model=user, data=loader) with `_target_` set and the
   option's name its own: `model=wide +model.width=64` passes `width=64`, and a field it is not
   given takes the class's or the function's default.
3. An option of conf/ wins over an entry point of the same name, and two distributions may not
   give one name; such an entry point, or one that is no `module:name`, is listed (`dlrun list`,
   marked with its distribution) but choosing it is one line naming the distribution and the
   problem (exit 2), as is one that does not import.

A leaf module (importlib.metadata only), so that the config floor and the report can read it.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from importlib import metadata

from dlrun.errors import ConfigError
from dlrun.targets import first_line
from dlrun.text import clip

# config group -> the entry-point group whose entry points add options to it
ENTRY_GROUPS = {"model": "dlrun.models", "data": "dlrun.data"}
# what Hydra reads as one option name on a command line (`model=wide-mlp`)
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class EntryOption:
    """One entry point as an option of a config group."""

    group: str  # the config group: model | data
    name: str  # the option's name: `model=NAME`
    value: str  # module:name, as the package wrote it
    distribution: str  # the distribution that gives it, with its version: "my-pkg 0.1"
    problem: str = ""  # why it cannot be chosen; "" when it can

    @property
    def target(self) -> str:
        """The `_target_` it names: my_pkg.nets:WideMLP as my_pkg.nets.WideMLP."""
        return self.value.replace(":", ".")

    @property
    def about(self) -> str:
        """Where it comes from, for messages."""
        return f"entry point {self.name} = {self.value} ({ENTRY_GROUPS[self.group]}) of {self.distribution}"


def entry_options(group: str) -> dict[str, EntryOption]:
    """{name: EntryOption} of the entry points that add options to a config group (none for
    a group without an entry-point group), in name order."""
    return dict(_entry_options(group)) if group in ENTRY_GROUPS else {}


@functools.lru_cache(maxsize=None)
def _entry_options(group: str) -> tuple:
    # cached: reading every installed distribution's metadata costs ~10 ms, once per process
    found: dict[str, list] = {}
    for entry in metadata.entry_points(group=ENTRY_GROUPS[group]):
        found.setdefault(entry.name, []).append(entry)
    return tuple((name, _option(group, name, entries)) for name, entries in sorted(found.items()))


def _option(group: str, name: str, entries: list) -> EntryOption:
    entry = entries[0]
    option = EntryOption(group, name, entry.value, _distribution(entry))
    if len(entries) > 1:
        others = ", ".join(_distribution(other) for other in entries[1:])
        return _broken(option, f"{others} gives {group}={name} too; uninstall one of them")
    if not OPTION_NAME.match(name):
        return _broken(option, f"'{clip(name)}' is no option name (letters, digits, _ and -)")
    if not re.fullmatch(r"[\w.]+:\w+", entry.value.strip()):
        return _broken(option, "give module:name, e.g. my_pkg.nets:WideMLP")
    return option


def _distribution(entry) -> str:
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _broken(option: EntryOption, problem: str) -> EntryOption:
    return EntryOption(option.group, option.name, option.value, option.distribution, problem)


def check(option: EntryOption) -> None:
    """Raise ConfigError in one line naming the distribution if the option cannot be chosen:
    a problem of its entry point, or one that does not import (which this tries)."""
    if option.problem:
        raise ConfigError(f"{option.about}: {option.problem}")
    module, _, attribute = option.value.strip().partition(":")
    try:
        loaded = importlib.import_module(module)
    except Exception as error:  # the package's code ran: any type
        raise ConfigError(
            f"{option.about}: importing {module} raised {type(error).__name__}: {clip(first_line(error))}"
        ) from None
    if not hasattr(loaded, attribute):
        raise ConfigError(f"{option.about}: {module} has no '{clip(attribute)}'")
