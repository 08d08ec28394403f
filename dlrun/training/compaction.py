"""Which trials stay in a group's stacked state once some stopped training.

A frozen trial (pruned, diverged, stopped early) has its updates masked, yet `vmap` still
computes its forward and backward passes every step. When half or more of the trials in the
stacked state are frozen the group is compacted: the live trials are re-stacked into a smaller
state, and the epoch is compiled for that size, so stopped trials stop costing compute.

Sizes are rounded up to a power of two, padded with frozen trials (masked: their state does not
change). The half-or-more trigger alone already bounds the sizes one group compiles to about
log2(n); powers of two make those sizes the same from group to group, so groups of one shape
(a sweep's many groups, or the same sweep run again) hit JAX's persistent compilation cache
(dlrun/backend.py) instead of compiling each its own odd size. The padding costs at most as
many masked rows as live ones, and only until the next compaction.
"""

from __future__ import annotations


def padded_size(live: int) -> int:
    """The stacked size that holds `live` trials: the next power of two (1 stays 1)."""
    return 1 << max(live - 1, 0).bit_length()


def compacted_slots(slots: list[int], live: list[bool]) -> list[int] | None:
    """The trials (indices into the group) to keep stacked, in their order; None when the
    group stays as it is: fewer than half of `slots` frozen, or nothing left training.

    `slots[i]` is the group index of row i of the stacked state and `live[i]` whether it still
    trains. Rows beyond the live ones pad up to `padded_size`, taken from the frozen trials
    in stacking order.
    """
    alive = [slot for slot, on in zip(slots, live) if on]
    frozen = len(slots) - len(alive)
    if not alive or 2 * frozen < len(slots):
        return None
    size = padded_size(len(alive))
    if size >= len(slots):
        return None
    padding = [slot for slot, on in zip(slots, live) if not on][: size - len(alive)]
    keep = set(alive) | set(padding)
    return [slot for slot in slots if slot in keep]
