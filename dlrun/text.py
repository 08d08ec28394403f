"""Small helpers for the words dlrun prints (no dlrun imports, so any module can use them)."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 run', '0 runs', '2 runs'; `many` for irregular words (plural(2, 'entry', 'entries'))."""
    return f"{count} {word if count == 1 else many or word + 's'}"
