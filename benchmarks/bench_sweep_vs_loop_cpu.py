"""A 32-trial random search: `dlrun sweep` against a careful hand-written loop, side by side.

    python benchmarks/bench_sweep_vs_loop_cpu.py [--repeats 2] [--trials 32]

Workload (issue 12): the default MLP 784-512-256-10 on a 10,000-image MNIST subset, 3 epochs,
batch 128, SGD with momentum 0.9, constant lr, lr log-uniform in [1e-3, 1] and L2 log-uniform
in [1e-6, 1e-2], one seed for all trials. The peer is the loop a careful user writes: one
process, data on the device, the epoch compiled once with lr and L2 as traced arguments, the
trials one after another, validation accuracy after every epoch, and a trial whose training
loss went non-finite stopped (lr near 1 with momentum diverges: 12 of the 32 draws), as dlrun
stops it. Both sides are timed as whole commands in fresh processes (imports, data, compile,
training, evaluation; dlrun also writes its run folders and evaluates the test set), with the
persistent compilation cache warmed first for dlrun.
Target: dlrun at most 0.8x the loop's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = [
    "data=mnist",
    "data.subset=10000",
    "epochs=3",
    "batch_size=128",
    "optim=momentum",
    "schedule=constant",
    "seed=0",
]
SPACE = ["lr=interval(1e-3,1)", "optim.l2=interval(1e-6,1e-2)"]


def loop(trials: int) -> None:
    """The peer: run the same draws one after another in this process, printing val accuracy."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from dlrun import data
    from dlrun.config.load import compose_config
    from dlrun.sweep.plan import make_plan

    plan = make_plan([*WORKLOAD, *SPACE], trials=trials)  # the very same lr and L2 draws
    draws = [(float(t.cfg.lr), float(t.cfg.optim.l2)) for t in plan.trials]
    dataset = data.load(compose_config(WORKLOAD).data)
    x, y = jax.device_put(
        (dataset.x_train.reshape(len(dataset.x_train), -1).astype("float32"), dataset.y_train)
    )
    xv, yv = jax.device_put((dataset.x_val.reshape(len(dataset.x_val), -1).astype("float32"), dataset.y_val))
    scale = (jnp.float32(dataset.x_offset), jnp.float32(dataset.x_scale))

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, v):
            for width in (512, 256):
                v = nn.relu(nn.Dense(width, kernel_init=nn.initializers.he_normal())(v))
            return nn.Dense(10)(v)

    model, batch, steps = MLP(), 128, len(x) // 128
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)

    def loss_fn(params, xb, yb, l2):
        logits = model.apply({"params": params}, (xb - scale[0]) * scale[1])
        penalty = sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(params) if w.ndim == 2)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean() + l2 * penalty

    @jax.jit
    def epoch(params, opt_state, lr, l2, key):
        opt_state.hyperparams["learning_rate"] = lr
        order = jax.random.permutation(key, len(x))[: steps * batch].reshape(steps, batch)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], l2)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        logits = model.apply({"params": params}, (xv - scale[0]) * scale[1])
        return params, opt_state, jnp.mean(jnp.argmax(logits, -1) == yv), jnp.mean(losses)

    for index, (lr, l2) in enumerate(draws):
        key = jax.random.PRNGKey(0)
        params = model.init(key, x[:1])["params"]
        opt_state = optimizer.init(params)
        accuracies = []
        for e in range(3):
            params, opt_state, acc, loss = epoch(params, opt_state, lr, l2, jax.random.fold_in(key, e))
            accuracies.append(float(acc))
            if not np.isfinite(float(loss)):  # diverged: a careful loop stops it, as dlrun does
                break
        print(f"trial {index}: lr={lr:.4g} l2={l2:.3g} val_accuracy={accuracies}", flush=True)


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Run a command; return its wall seconds and its CPU seconds (user + system).

    The CPU seconds are the steadier figure on a shared machine: a neighbour's load stretches
    the wall time but not (much) the work done.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)  # the peer's process
    args = parser.parse_args()
    if args.loop:
        return loop(args.trials)
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "DLRUN_CACHE_DIR": str(Path(scratch) / "cache")}
        sweep = lambda out: [
            sys.executable,
            "-m",
            "dlrun",
            "sweep",
            *WORKLOAD,
            *SPACE,
            f"--trials={args.trials}",
            "--out",
            str(Path(scratch) / out),
        ]
        peer = [sys.executable, __file__, "--loop", f"--trials={args.trials}"]
        timed(sweep("warm"), env)  # fill the persistent compilation cache
        dlrun, loops = [], []
        for repeat in range(args.repeats):  # interleaved, so that a noisy neighbour hits both
            dlrun.append(timed(sweep(f"run{repeat}"), env))
            loops.append(timed(peer, env))
    print(
        f"{os.cpu_count()} cores; {args.trials} trials; whole commands, each run (wall, CPU "
        f"seconds): dlrun {_rounded(dlrun)}, loop {_rounded(loops)}"
    )
    print(f"{'':<12}{'dlrun sweep':>12}{'loop':>8}{'dlrun/loop':>12}")
    for label, column in (("wall best", 0), ("wall median", 0), ("CPU median", 1)):
        pick = min if label == "wall best" else statistics.median
        ours, peer = pick(t[column] for t in dlrun), pick(t[column] for t in loops)
        print(f"{label:<12}{ours:>12.1f}{peer:>8.1f}{ours / peer:>12.2f}")


def _rounded(times: list) -> list:
    return [(round(wall, 1), round(cpu, 1)) for wall, cpu in times]


if __name__ == "__main__":
    main()
