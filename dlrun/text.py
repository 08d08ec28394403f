"""Small wording helpers for messages and table titles (no dlrun imports: any module may use them)."""


def plural(count: int, word: str) -> str:
    """Return e.g. "1 trial" or "3 trials": a title that says "1 runs" reads as a bug."""
    return f"{count} {word}{'' if count == 1 else 's'}"
