"""One number format for every format of the report (terminal, HTML, the sweep's table)."""

from __future__ import annotations

import math


def cell_text(column: str, value) -> str:
    """A report cell as text: accuracies as percentages, the gap signed, counts whole."""
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if column in ("epochs_run", "best_epoch") and value.is_integer():
            return str(int(value))
        if "accuracy" in column:
            return f"{value:.1%}"
        if column == "gap":
            return f"{value:+.3g}"
        return f"{value:.3g}"
    return str(value)
