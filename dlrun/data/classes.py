"""Class subsets and per-class sampling of the labelled image sets: `data.classes`, `data.per_class`.

`data.classes=[5,6,7,8,9]` keeps those classes, relabelled 0..k-1 in the order given (so a
transfer study can line up two disjoint halves of a set); `data.per_class=N` keeps N training
examples of each class. The choice of the N is the first N of each class in the seeded order the
validation split already drew: stratified, reproducible from data.seed, and nested (the 10 per
class of per_class=10 are among the 20 of per_class=20), with the validation set untouched by N.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from dlrun.errors import DataError

MIN_CLASSES = 2  # one class leaves nothing to classify: every prediction is right


def _choices(names: Sequence[str]) -> str:
    if list(names) == [str(i) for i in range(len(names))]:  # digits: their names add nothing
        return f"0..{len(names) - 1}"
    return ", ".join(f"{i}={name}" for i, name in enumerate(names))


def chosen_classes(cfg: Any, names: Sequence[str]) -> tuple[int, ...] | None:
    """Return the validated `data.classes` (original indices, in order), or None for all."""
    value = getattr(cfg, "classes", None)  # folders written before the key existed lack it
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise DataError(
            f"data.classes={value!r} must be a list of class indices, e.g. [0,1]; choices: {_choices(names)}"
        )
    picked = list(value)
    for c in picked:
        if isinstance(c, bool) or not isinstance(c, Integral) or not 0 <= c < len(names):
            raise DataError(f"data.classes: {c!r} is not a class of {cfg.name}; choices: {_choices(names)}")
    repeated = sorted({int(c) for c in picked if picked.count(c) > 1})
    if repeated:
        raise DataError(
            f"data.classes lists class {repeated[0]} ({names[repeated[0]]}) "
            "more than once; give each class once"
        )
    if len(picked) < MIN_CLASSES:
        raise DataError(
            f"data.classes={picked} keeps {len(picked)} class; a classifier needs at least {MIN_CLASSES}"
        )
    return tuple(int(c) for c in picked)


def chosen_per_class(cfg: Any) -> int | None:
    """Return the validated `data.per_class`, or None when every training example is kept."""
    value = getattr(cfg, "per_class", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise DataError(f"data.per_class={value!r} must be an integer >= 1")
    if getattr(cfg, "subset", None) is not None:
        raise DataError(
            f"data.per_class={value} and data.subset={cfg.subset} both cap the "
            "training set; set one of them (data.subset=null or data.per_class=null)"
        )
    return int(value)


def keep_classes(x: np.ndarray, y: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the examples of `classes` in their original order, labels relabelled 0..k-1."""
    table = np.full(int(max(y.max(initial=0), *classes)) + 1, -1, np.int32)
    table[list(classes)] = np.arange(len(classes), dtype=np.int32)
    keep = table[y] >= 0
    return x[keep], table[y[keep]]


def first_per_class(
    y: np.ndarray, order: np.ndarray, per_class: int, names: Sequence[str], n_val: int
) -> np.ndarray:
    """Return the indices of the first `per_class` examples of each class along `order`,
    in that order (classes stay mixed). Raises DataError naming a class that has too few."""
    labels = y[order]
    keep = np.zeros(len(order), bool)
    for c, name in enumerate(names):
        where = np.flatnonzero(labels == c)
        if len(where) < per_class:
            raise DataError(
                f"data.per_class={per_class}: class {c} ({name}) has only {len(where)} "
                f"training examples after the validation split of {n_val}; "
                "lower data.per_class or data.val_size"
            )
        keep[where[:per_class]] = True
    return order[keep]


def static_counts(counts: Sequence[int], classes: Sequence[int] | None) -> int:
    """Return how many examples the official files hold of the chosen classes (all if None)."""
    return int(sum(counts if classes is None else (counts[c] for c in classes)))
