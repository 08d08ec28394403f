"""A command-line usage error (unknown option, bad option value) as one line, like every other
refusal: Typer's default draws a multi-line box."""

from __future__ import annotations

from dlrun.text import QUOTED_CHARS, clip


def one_line(error, argv: list[str]) -> str:
    """The error's message, the value given when an option's value was bad, and where help is.

    A long argument is quoted only in part, in Click's own words too."""
    message = error.format_message()
    for arg in argv:
        if len(arg) > QUOTED_CHARS:
            message = message.replace(arg, clip(arg))
    return f"{message}{_given(error, argv)} (see {_help_hint(error)})"


def _given(error, argv: list[str]) -> str:
    """`, got 'abc'` for a bad option value: Typer's message names the option, not the value."""
    options = getattr(getattr(error, "param", None), "opts", None) or []
    for index, arg in enumerate(argv):
        for option in options:
            if arg == option and index + 1 < len(argv):
                return f", got '{clip(argv[index + 1])}'"
            if arg.startswith(f"{option}="):
                return f", got '{clip(arg.partition('=')[2])}'"
    return ""


def _help_hint(error) -> str:
    context = getattr(error, "ctx", None)
    return f"'{context.command_path} --help'" if context else "'dlrun --help'"
