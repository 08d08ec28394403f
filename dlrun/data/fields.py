"""A data config's fields read with the checks every data set shares: one line naming the
field and its bad value (DataError), for the built-in sets and the user's files alike."""

from __future__ import annotations

from numbers import Integral
from typing import Any

from dlrun.errors import DataError


def field(cfg: Any, name: str) -> Any:
    try:
        return getattr(cfg, name)
    except (AttributeError, KeyError):
        raise DataError(f"data config has no field '{name}'") from None


def int_field(cfg: Any, name: str, minimum: int) -> int:
    value = field(cfg, name)
    # bool is an int subclass, but `subset=true` is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise DataError(f"data.{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def choice_field(cfg: Any, name: str, choices: tuple) -> str:
    value = field(cfg, name)
    if value not in choices:
        raise DataError(f"data.{name}={value!r} is not one of: {', '.join(choices)}")
    return value
