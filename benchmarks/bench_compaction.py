"""What compaction saves: a group whose trials are mostly pruned after epoch 1, run with the
pruned trials compacted away and with them kept in the stacked state (masked), side by side.

    python benchmarks/bench_compaction.py [--trials 16] [--pruned 12] [--epochs 3] [--subset 5000]

The default MLP on a 5,000-image MNIST subset, SGD with momentum, lrs spread over [1e-3, 0.3];
trials 0..pruned-1 are pruned after epoch 1 by a callback through the group's own stop_trial
(what the search's pruner does). Reported per variant: the wall time of epochs 2.. (the epochs
after pruning, from metrics.csv), the compile time, the stacked sizes compiled, and the largest
difference between the survivors' validation curves in the two variants.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dlrun import results
from dlrun.config.load import compose_config
from dlrun.training.callbacks import EpochCallback
from dlrun.training.group import run_group


class PruneAfterFirst(EpochCallback):
    def __init__(self, pruned: int):
        self.pruned, self.sizes = pruned, []

    def on_epoch(self, group, epoch, rows):
        if epoch == 1:
            for index in range(self.pruned):
                group.stop_trial(index, "pruned", pruned_epoch=epoch)

    def on_end(self, group):
        self.sizes = list(group.compiled)


def run(args, compact: bool, out: Path):
    lrs = np.geomspace(1e-3, 0.3, args.trials)
    cfgs = [
        compose_config(
            [
                "model=mlp",
                "optim=momentum",
                f"data.subset={args.subset}",
                f"epochs={args.epochs}",
                f"lr={lr:.6g}",
            ]
        )
        for lr in lrs
    ]
    dirs = [out / f"trial-{i:03d}" for i in range(args.trials)]
    callback = PruneAfterFirst(args.pruned)
    start = time.perf_counter()
    summaries = run_group(cfgs, dirs, callbacks=[callback], compact=compact)
    wall = time.perf_counter() - start
    # every row of an epoch records the group's epoch time: read the longest-running trial's
    survivor = max((results.read_metrics(d) for d in dirs), key=len)
    after = float(survivor["epoch_time_s"].iloc[1:].sum())
    return {
        "wall": wall,
        "after": after,
        "compile": summaries[-1]["compile_time_s"],
        "sizes": callback.sizes,
        "dirs": dirs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--pruned", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kept = run(args, False, Path(folder) / "kept")
        compacted = run(args, True, Path(folder) / "compacted")
        worst = max(
            float(np.max(np.abs(results.read_metrics(a)["val_loss"] - results.read_metrics(b)["val_loss"])))
            for a, b in zip(kept["dirs"][args.pruned :], compacted["dirs"][args.pruned :])
        )
    print(
        f"{args.trials} trials, {args.pruned} pruned after epoch 1, {args.epochs} epochs, "
        f"MNIST subset {args.subset}"
    )
    for name, result in (("kept (masked)", kept), ("compacted", compacted)):
        print(
            f"{name:>14}: epochs 2-{args.epochs} {result['after']:.2f} s, compile "
            f"{result['compile']:.2f} s, wall {result['wall']:.2f} s, sizes {result['sizes']}"
        )
    print(
        f"epochs after pruning: {kept['after'] / compacted['after']:.2f}x faster compacted; "
        f"survivors' val loss differs by at most {worst:.2g}"
    )


if __name__ == "__main__":
    main()
