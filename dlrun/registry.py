"""The one shape every registry has: entries keyed by the name a config gives.

Models, data sets, optimizers, schedules, inits, activations and losses each hold a `Registry`,
so adding one is one function and one line, and an unknown name is refused with the same
message everywhere: "unknown <kind> '<name>' (choose from: a, b, c)".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, TypeVar

from dlrun.errors import ConfigError

Entry = TypeVar("Entry")


class Registry(Mapping[str, Entry], Generic[Entry]):
    """A read-only mapping name -> entry that names its `kind` when a name is unknown.

    `extra` are names a config may give besides the entries (e.g. `auto`, resolved
    elsewhere): `check` accepts them, `get` does not, since they have no entry. `error` is the
    exception an unknown name raises (the data sets raise DataError, as all their checks do).
    Iteration keeps the order of definition, as a dict does.
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, Entry],
        *,
        extra: tuple[str, ...] = (),
        error: type[Exception] = ConfigError,
    ):
        self.kind = kind
        self._entries = dict(entries)
        self.extra = tuple(extra)
        self.error = error

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    @property
    def names(self) -> tuple[str, ...]:
        """The entries' names, sorted."""
        return tuple(sorted(self._entries))

    @property
    def choices(self) -> tuple[str, ...]:
        """Every name a config may give (the entries and `extra`), sorted."""
        return tuple(sorted({*self._entries, *self.extra}))

    def get(self, name: str) -> Entry:  # type: ignore[override]
        """Return the entry named `name`; raise `error` listing the choices when there is none.

        Unlike Mapping.get there is no default: a config name that is not here is a user error.
        """
        if name not in self._entries:
            raise self.error(self.unknown(name, self.names))
        return self._entries[name]

    def check(self, name: str) -> None:
        """Raise `error` unless `name` is an entry or one of `extra`."""
        if name not in self._entries and name not in self.extra:
            raise self.error(self.unknown(name, self.choices))

    def unknown(self, name: str, choices) -> str:
        """The one message for a name this registry lacks."""
        return f"unknown {self.kind} '{name}' (choose from: {', '.join(choices)})"


# An option check takes the option's dotted key (for the message) and its value.
Check = Callable[[str, Any], None]


def check_options(node, prefix: str, checks: Mapping[str, Check]) -> None:
    """Run `checks[key]` on every field of the config node `node` that has a check.

    Only the fields the node holds are read, so a node typed by its option's own schema (an
    MLP's config has no `pooling`) is checked as it is.
    """
    for key in node:
        if key in checks:
            checks[key](f"{prefix}.{key}", node[key])


def at_least_zero(key: str, value) -> None:
    if value < 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")


def above_zero(key: str, value) -> None:
    if value <= 0:
        raise ConfigError(f"{key} must be > 0, got {value}")


def within_unit(key: str, value) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"{key} must be in [0, 1], got {value}")
