"""Every GPU figure of issue 12 in one call: a 64-trial LeNet-5 sweep, against one process per
trial, and on one GPU against all of the host's GPUs.

    python benchmarks/bench_gpu.py [--per-process-runs 4] [--allow-cpu --trials 4 --epochs 1]

Workload: LeNet-5 on MNIST, 10 epochs, an 8 x 8 grid of lr x seed (64 trials, one group).
Figures, all wall seconds of whole `dlrun` commands with a warm compilation cache:
  1. the 64-trial sweep (target: under 30 s);
  2. one process per trial (what Hydra's basic launcher amounts to): `--per-process-runs` of
     the 64 `dlrun train` commands, scaled to 64 (target: the sweep at least 25x faster);
  3. with several GPUs: the same sweep on one GPU (CUDA_VISIBLE_DEVICES=0) and on all of them.
Not measured in the session that wrote it (no GPU there): run it where one is at hand.
`--allow-cpu` runs it on a CPU with a smaller workload, only to check that the script works.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-process-runs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=64, help="a square number: lr x seed grid")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--allow-cpu", action="store_true")
    args = parser.parse_args()
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.allow_cpu:
        sys.exit("bench_gpu.py: no GPU visible to JAX (install jax[cuda12]); nothing measured")
    side = int(round(args.trials**0.5))
    lrs = [f"{0.0003 * 2**i:.5f}" for i in range(side)]
    workload = ["model=lenet", "data=mnist", f"epochs={args.epochs}", "optim=adam"]
    sweep = ["sweep", *workload, f"lr={','.join(lrs)}", f"seed=range({side})"]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "DLRUN_CACHE_DIR": str(scratch / "cache")}
        timed([*sweep, "--out", str(scratch / "warm")], env)
        timed(["train", *workload, "--out", str(scratch / "warm1")], env)
        figures = {f"{side * side}-trial sweep, all GPUs": timed([*sweep, "--out", str(scratch / "s")], env)}
        singles = [
            timed(
                [
                    "train",
                    *workload,
                    f"lr={lrs[i % side]}",
                    f"seed={i // side}",
                    "--out",
                    str(scratch / f"p{i}"),
                ],
                env,
            )
            for i in range(args.per_process_runs)
        ]
        processes = side * side * sum(singles) / len(singles)
        figures[f"one process per trial (x{side * side}, from {len(singles)})"] = processes
        if len(gpus) > 1:
            one = {**env, "CUDA_VISIBLE_DEVICES": "0"}
            timed([*sweep, "--out", str(scratch / "warm0")], one)
            figures[f"{side * side}-trial sweep, one GPU"] = timed(
                [*sweep, "--out", str(scratch / "s0")], one
            )
    devices = ", ".join(sorted({d.device_kind for d in (gpus or jax.devices())}))
    print(f"{len(gpus)} GPU(s) [{devices}]; wall seconds of whole commands, warm compilation cache")
    for name, seconds in figures.items():
        print(f"{name:<45}{seconds:>9.1f}")
    sweep_s = figures[f"{side * side}-trial sweep, all GPUs"]
    print(f"{'sweep speed-up over one process per trial':<45}{processes / sweep_s:>9.1f}x")
    if len(gpus) > 1:
        print(
            f"{'all GPUs over one GPU':<45}{figures[f'{side * side}-trial sweep, one GPU'] / sweep_s:>9.2f}x"
        )


if __name__ == "__main__":
    main()
