"""The confusion matrix of a classifier's test predictions, its worst pairs and its terminal table.

Rows are the true classes, columns the predicted ones, so row i sums to the test examples of
class i and the whole matrix to the test set. Pure numpy and pandas: no JAX here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from dlrun.text import clip

# Off-diagonal cells listed as the most confused pairs: enough to see a pattern, few enough to
# print under the matrix in a terminal.
WORST_PAIRS = 5
# A class name longer than this is cut in the terminal, so 10 classes fit in 80 columns.
ROW_LABEL = 12


class Pair(NamedTuple):
    true: int
    pred: int
    count: int


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, classes: int) -> np.ndarray:
    """Counts [true, predicted] as int64."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(preds)), 1)
    return matrix


def confusion_frame(matrix: np.ndarray, names) -> pd.DataFrame:
    """The matrix as a table: rows true, columns predicted, class names as headers."""
    frame = pd.DataFrame(matrix, index=list(names), columns=list(names))
    frame.index.name = "true"
    return frame


def worst_pairs(matrix: np.ndarray, count: int = WORST_PAIRS) -> list[Pair]:
    """The off-diagonal cells with most examples, largest first (ties: lower true, then pred)."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = sorted(np.argwhere(off > 0).tolist(), key=lambda cell: (-off[tuple(cell)], *cell))
    return [Pair(true, pred, int(off[true, pred])) for true, pred in order[:count]]


def _short(name: str) -> str:
    return clip(name, ROW_LABEL)


def matrix_table(matrix: np.ndarray, names) -> Table:
    """The matrix for an 80-column terminal: columns by class index, rows by index and name,
    the correct counts in bold."""
    width = max(len(str(matrix.max())), len(str(len(names) - 1)))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title="true \\ predicted")
    table.add_column("", no_wrap=True)
    for index in range(len(names)):
        table.add_column(str(index), justify="right", min_width=width, no_wrap=True)
    for row, name in enumerate(names):
        label = str(row) if name == str(row) else f"{row} {_short(name)}"
        cells = [
            f"[bold green]{count}[/]" if col == row else (f"[red]{count}[/]" if count else "[dim]·[/]")
            for col, count in enumerate(matrix[row])
        ]
        table.add_row(label, *cells)
    return table


def pairs_lines(pairs: list[Pair], matrix: np.ndarray, names) -> list[str]:
    """One line per confused pair: 'true 4 (name) taken for 9 (name): 12 of 982 (1.2%)'."""
    label = lambda index: str(index) if names[index] == str(index) else f"{index} ({names[index]})"  # noqa: E731
    lines = []
    for pair in pairs:
        total = int(matrix[pair.true].sum())
        share = pair.count / total if total else 0.0
        lines.append(
            f"{label(pair.true)} taken for {label(pair.pred)}: {pair.count} of {total} ({share:.1%})"
        )
    return lines or ["no confusions: every test example is classified right"]
