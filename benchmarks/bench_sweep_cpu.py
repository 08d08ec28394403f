"""16 trials of one shape: one vectorised `dlrun sweep` against one trial, and against one
process per trial (what Hydra's basic multirun launcher amounts to), side by side.

    python benchmarks/bench_sweep_cpu.py [--workload small|mnist|both] [--baseline-runs 4]

Every number is the wall time of real `dlrun` commands in fresh processes (imports, compile
with a warm persistent cache, training, evaluation, writing the run folders). The baseline
runs `--baseline-runs` of the 16 single-trial processes and scales to 16 (they are alike).
Target (issue 4): the 16-trial sweep in at most 3x the time of one trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    # the lessons' scale: a small MLP on a generated data set
    "small": ["data=spirals", "model.hidden=[64,64]", "epochs=20", "batch_size=32"],
    # the default MLP 784-512-256-10 on 5,000 MNIST images
    "mnist": ["data=mnist", "data.subset=5000", "epochs=3"],
}
LRS, SEEDS = ["0.003", "0.001", "0.0003", "0.0001"], ["0", "1", "2", "3"]


def timed(args: list[str], cache: Path) -> float:
    env = {**os.environ, "DLRUN_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def measure(workload: list[str], baseline_runs: int, scratch: Path) -> dict:
    cache = scratch / "cache"
    sweep_args = ["sweep", *workload, f"lr={','.join(LRS)}", f"seed={','.join(SEEDS)}"]
    # warm the persistent compilation cache for both program shapes (1 trial, 16 trials)
    timed(["train", *workload, "--out", str(scratch / "warm1")], cache)
    timed([*sweep_args, "--out", str(scratch / "warm16")], cache)
    one = timed(["train", *workload, "lr=0.001", "--out", str(scratch / "one")], cache)
    group = timed([*sweep_args, "--out", str(scratch / "sweep")], cache)
    singles = [
        timed(
            [
                "train",
                *workload,
                f"lr={LRS[i % 4]}",
                f"seed={SEEDS[i // 4]}",
                "--out",
                str(scratch / f"p{i}"),
            ],
            cache,
        )
        for i in range(baseline_runs)
    ]
    per_process = sum(singles) / len(singles)
    return {"one": one, "sweep16": group, "processes16": 16 * per_process}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=(*WORKLOADS, "both"), default="both")
    parser.add_argument("--baseline-runs", type=int, default=4)
    args = parser.parse_args()
    names = list(WORKLOADS) if args.workload == "both" else [args.workload]
    print(f"{os.cpu_count()} cores; wall seconds of whole commands, warm compilation cache")
    print(
        f"{'workload':<9}{'1 trial':>9}{'16 vmapped':>12}{'16 processes':>14}"
        f"{'vmapped/1':>11}{'processes/vmapped':>19}"
    )
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            t = measure(WORKLOADS[name], args.baseline_runs, Path(scratch))
        print(
            f"{name:<9}{t['one']:>9.1f}{t['sweep16']:>12.1f}{t['processes16']:>14.1f}"
            f"{t['sweep16'] / t['one']:>11.2f}{t['processes16'] / t['sweep16']:>19.2f}"
        )


if __name__ == "__main__":
    main()
