"""A user's NNX module against the built-in `model=mlp` of the same architecture, side by side.

    python benchmarks/bench_user_module_cpu.py [--hidden 512,256 64] [--repeats 5] [--pairs 50]

Workload (issue 23): an 8-trial vectorised group (4 learning rates x 2 seeds) on a 5,000-image
MNIST subset, 4 epochs, batch 128, Adam, once as `model=mlp model.hidden=[...]` and once as
`model=user model._target_=bench_nets.MLP +model.hidden=[...]`, an NNX module written below
with the built-in MLP's layers: dense layers of the same widths, ReLU, He-normal kernels (what
`init=auto` picks for ReLU), zero biases. Their parameter counts, read from the run folders'
summary.json, must be equal (asserted). Each side runs as a whole `dlrun sweep` command in a fresh
process with a warm compilation cache; the sides alternate (ABBA) so that a noisy neighbour
hits both. Each run's figure is the median `epoch_time_s` (the group's epoch, compile
excluded) over epochs 2-4; reported are the best run of each side (a busy neighbour only adds
time), the median run and the CPU seconds of the whole command. On a shared machine whole
commands seconds apart see different loads, so the script also times one trial's compiled epoch
of each side in one process, alternating `--pairs` times, and reports the median of the pairs'
ratios (the user's module changes only the compiled step; the group runs the same engine code
around it), with XLA's FLOP count of each side's step. The built-in MLP also sows its units'
activity every step (the report's dead-unit fraction), which a user's module does not: a
little in the user's favour.
Target: the user's module within 10 % of the built-in per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import jax
import pandas as pd

# The built-in MLP's layers in NNX. Layer attributes are named as the built-in's (hidden1,
# hidden2, output), so that both steps record the same per-layer gradient norms.
NETS = """
import math

from flax import nnx

HE_NORMAL = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")  # dlrun's he_normal


class MLP(nnx.Module):
    def __init__(self, hidden, outputs, input_shape, rngs):
        sizes = [math.prod(input_shape), *hidden]
        self.depth = len(hidden)
        for index, (a, b) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"hidden{index}", nnx.Linear(a, b, kernel_init=HE_NORMAL, rngs=rngs))
        self.output = nnx.Linear(sizes[-1], outputs, kernel_init=HE_NORMAL, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for index in range(1, self.depth + 1):
            x = nnx.relu(getattr(self, f"hidden{index}")(x))
        return self.output(x)
"""

BASE = ["data=mnist", "data.subset=5000", "epochs=4", "batch_size=128"]
WORKLOAD = [*BASE, "lr=0.003,0.001,0.0003,0.0001", "seed=0,1"]


def models(hidden: str) -> dict:
    """The two sides' model overrides for hidden widths `hidden` (e.g. "512,256")."""
    return {
        "built-in": ["model=mlp", f"model.hidden=[{hidden}]"],
        "user NNX": ["model=user", "model._target_=bench_nets.MLP", f"+model.hidden=[{hidden}]"],
    }


def sweep(model: list[str], out: Path, scratch: Path) -> tuple[float, float, int]:
    """Run one sweep; return (median epoch seconds after the first, command CPU seconds, params)."""
    env = {**os.environ, "DLRUN_CACHE_DIR": str(scratch / "cache")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "dlrun", "sweep", *WORKLOAD, *model, "--out", str(out)],
        check=True,
        env=env,
        cwd=scratch,  # where bench_nets.py is imported from
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    folders = sorted(path.parent for path in out.glob("*/metrics.csv"))
    assert len(folders) == 8, f"{out}: {len(folders)} trials, expected 8"
    times = pd.concat([pd.read_csv(folder / "metrics.csv") for folder in folders])
    params = {json.loads((folder / "summary.json").read_text())["params"] for folder in folders}
    return float(times[times.epoch > 1].epoch_time_s.median()), cpu, params.pop()


def compiled_epoch(model: list[str], scratch: Path):
    """(a function training one trial one epoch in this process, compiled and warm; XLA's FLOP
    count of its training step), both built as dlrun builds them (build_program, initial_state,
    the jitted train_epoch)."""
    from dlrun import data
    from dlrun.config.load import compose_config
    from dlrun.training import program as programs
    from dlrun.training.step import train_epoch

    here = os.getcwd()
    os.chdir(scratch)  # where bench_nets.py is imported from
    try:
        cfg = compose_config([*BASE, *model])
        dataset = data.load(cfg.data)
        program = programs.build_program([cfg], dataset)
        state, _ = programs.initial_state(program, cfg, dataset.spec)
    finally:
        os.chdir(here)
    flops = programs.step_flops(program, state, dataset.x_train, dataset.y_train)
    x, y = jax.device_put((dataset.x_train, dataset.y_train))
    epoch = jax.jit(partial(train_epoch, program), donate_argnums=0)
    held = [state]

    def run(seed: int) -> float:
        start = time.perf_counter()
        held[0], metrics = epoch(held[0], x, y, jax.random.PRNGKey(seed))
        jax.block_until_ready(metrics)
        return time.perf_counter() - start

    run(0)  # compile and warm up
    return run, flops


def paired(hidden: str, pairs: int, scratch: Path) -> tuple[list, dict]:
    """One trial's epoch of each side, alternating in one process ([(built-in s, user s), ...]),
    and each side's FLOPs a step. Epochs a fraction of a second apart see the same load, so the
    pair's ratio is steady where whole commands seconds apart are not."""
    runs, flops = {}, {}
    for name, model in models(hidden).items():
        runs[name], flops[name] = compiled_epoch(model, scratch)
    times = []
    for index in range(pairs):
        order = ["built-in", "user NNX"] if index % 2 == 0 else ["user NNX", "built-in"]
        seconds = {name: runs[name](index + 1) for name in order}
        times.append((seconds["built-in"], seconds["user NNX"]))
    return times, flops


def measure(hidden: str, repeats: int, scratch: Path) -> dict:
    """Every run of both sides for one architecture: {side: [(epoch s, CPU s, params), ...]}."""
    sides = models(hidden)
    for name, model in sides.items():  # fill the compilation cache and import once
        sweep(model, scratch / f"warm-{name}", scratch)
    seen: dict = {name: [] for name in sides}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in order:
            seen[name].append(sweep(sides[name], scratch / f"{name}-{repeat}", scratch))
    counts = {name: {run[2] for run in runs} for name, runs in seen.items()}
    assert counts["built-in"] == counts["user NNX"] and len(counts["built-in"]) == 1, (
        f"parameter counts differ: {counts}"
    )
    return seen


def verdict(ratio: float) -> str:
    return "within 10 %" if ratio <= 1.10 else "MORE than 10 % slower"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", nargs="+", default=["512,256", "64"], help="hidden widths, a side each")
    parser.add_argument("--repeats", type=int, default=5, help="whole sweep commands a side")
    parser.add_argument("--pairs", type=int, default=50, help="in-process epochs a side, alternating")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; 8 trials (4 lr x 2 seeds), one group")
    header = f"{'hidden':<10}{'params':>10}{'side':>10}{'best s':>8}{'median s':>10}{'CPU s':>7}"
    print(f"{header}  each run's epoch s")
    for hidden in args.hidden:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "bench_nets.py").write_text(NETS)
            seen = measure(hidden, args.repeats, Path(scratch))
            pairs, flops = paired(hidden, args.pairs, Path(scratch))
        best = {name: min(run[0] for run in runs) for name, runs in seen.items()}
        medians = {name: statistics.median(run[0] for run in runs) for name, runs in seen.items()}
        for name, runs in seen.items():
            cpu = statistics.median(run[1] for run in runs)
            each = ", ".join(f"{run[0]:.3f}" for run in runs)
            print(
                f"{hidden:<10}{runs[0][2]:>10,}{name:>10}{best[name]:>8.3f}{medians[name]:>10.3f}"
                f"{cpu:>7.1f}  {each}"
            )
        ratio, work = best["user NNX"] / best["built-in"], flops["user NNX"] / flops["built-in"]
        print(
            f"{hidden:<10}group of 8, user/built-in per epoch: best {ratio:.3f}x ({verdict(ratio)}), "
            f"median {medians['user NNX'] / medians['built-in']:.3f}x"
        )
        each = statistics.median(user / built for built, user in pairs)
        print(
            f"{hidden:<10}one trial in-process, {len(pairs)} pairs: median user/built-in {each:.3f}x "
            f"({verdict(each)}; epochs {statistics.median(b for b, _ in pairs):.3f} s vs "
            f"{statistics.median(u for _, u in pairs):.3f} s); FLOPs a step {work:.4f}x"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
