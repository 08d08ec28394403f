"""Small helpers for the words dlrun prints and the names it gives folders (no dlrun imports,
so any module can use them)."""

from __future__ import annotations

import os

# How much of a value a message quotes: enough to recognise it, and a 5,000-character value
# pasted by mistake still leaves a one-line error.
QUOTED_CHARS = 80


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 run', '0 runs', '2 runs'; `many` for irregular words (plural(2, 'entry', 'entries'))."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def clip(value, limit: int = QUOTED_CHARS) -> str:
    """`value` as text for a message: whole up to `limit` characters, else its start and '…'."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The longest name of one folder or file that file systems take (ext4, APFS, NTFS alike).
NAME_MAX_BYTES = 255


def name_bytes(name: str) -> int:
    """How long `name` is as a file system sees it (NAME_MAX_BYTES at most for one folder)."""
    return len(os.fsencode(name))
