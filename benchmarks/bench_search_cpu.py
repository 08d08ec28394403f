"""Adaptive search: `dlrun sweep --search tpe [--pruner hyperband]` against the loop a careful
user writes with Optuna, side by side in one run.

    python benchmarks/bench_search_cpu.py [--seeds 0 1 2] [--trials 32] [--batch 8] [--subset 10000]
    python benchmarks/bench_search_cpu.py --problem spirals --modes random tpe   # search pays?

The peer loop: `study.optimize` with the same TPE sampler, one trial at a time in one process,
the epoch `jit`-compiled once (lr and L2 traced arguments), the data on the device, the best
validation accuracy over the epochs as the objective, a trial whose parameters went
non-finite stopped (as dlrun stops it); the default MLP (784-512-256-10), SGD
with momentum 0.9 and dlrun's cosine schedule, on the same MNIST subset and validation split as
dlrun (read through dlrun's own loader). Both sides are timed as whole commands in fresh
processes, as bench_sweep_vs_loop_cpu.py times them: imports, data, compile, training,
evaluation (dlrun also writes its run folders and evaluates the test set).
Targets (issue 11): tpe no slower than the loop; tpe + hyperband at most 0.5x the loop's wall
time with a best validation accuracy within 0.3 points (mean over 3 seeds) and at most 40 % of
the trial-epochs; TPE >= random at equal trial-epochs on two problems (mean over 3 seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

PROBLEMS = {
    # the workload: lr and L2, both log
    "mnist": ["model=mlp", "optim=momentum", "lr=interval(1e-3,1)", "optim.l2=interval(1e-6,1e-2)"],
    # the MNIST MLP over four keys
    "mnist4": [
        "model=mlp",
        "optim=momentum",
        "lr=interval(1e-3,1)",
        "optim.l2=interval(1e-6,1e-2)",
        "model.dropout=interval(0,0.5)",
        "init=normal",
        "init_scale=interval(1e-3,0.3)",
    ],
    "spirals": [
        "data=spirals",
        "model.hidden=[64,64]",
        "batch_size=32",
        "optim=momentum",
        "lr=interval(1e-3,1)",
        "optim.l2=interval(1e-6,1e-2)",
        "model.dropout=interval(0,0.5)",
    ],
}
MODES = {
    "random": ["--search", "random"],
    "tpe": ["--search", "tpe"],
    "tpe+hyperband": ["--search", "tpe", "--pruner", "hyperband", "--min-epochs", "1"],
}


def run_dlrun(problem: list, mode: str, trials: int, seed: int, batch: int | None) -> dict:
    """One `dlrun sweep` in a fresh process: wall time, best val accuracy, trial-epochs spent."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sweep"
        batching = ["--batch", str(batch)] if batch and mode != "random" else []
        command = [
            sys.executable,
            "-m",
            "dlrun",
            "sweep",
            *problem,
            *MODES[mode],
            "--trials",
            str(trials),
            "--search-seed",
            str(seed),
            *batching,
            "--out",
            str(out),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        index = pd.read_csv(out / "trials.csv")
    return {
        "wall_s": wall,
        "best_val_acc": index.best_val_accuracy.max(),
        "trial_epochs": int(index.epochs_run.sum()),
    }


def run_loop(subset: int, epochs: int, trials: int, seed: int) -> dict:
    """The Optuna loop as a command of its own (this script with --as-loop), timed whole."""
    command = [
        sys.executable,
        __file__,
        "--as-loop",
        "--subset",
        str(subset),
        "--epochs",
        str(epochs),
        "--trials",
        str(trials),
        "--seeds",
        str(seed),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def loop(subset: int, epochs: int, trials: int, seed: int) -> dict:
    """The Optuna loop: one trial at a time, one compiled epoch, lr and L2 traced."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import optuna
    from flax import linen as nn

    from dlrun import data
    from dlrun.config.load import compose_config

    cfg = compose_config(["model=mlp", "optim=momentum", f"data.subset={subset}", f"epochs={epochs}"])
    dataset = data.load(cfg.data)
    scale = lambda x: ((x.astype(np.float32) - dataset.x_offset) * dataset.x_scale).reshape(len(x), -1)
    x, y = jax.device_put((scale(dataset.x_train), dataset.y_train))
    x_val, y_val = jax.device_put((scale(dataset.x_val), dataset.y_val))
    batch, steps = cfg.batch_size, len(dataset.x_train) // cfg.batch_size
    total = steps * epochs

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, h):
            for width in (512, 256):
                h = nn.relu(nn.Dense(width, kernel_init=nn.initializers.he_normal())(h))
            return nn.Dense(10)(h)

    model, momentum = MLP(), optax.trace(decay=0.9)

    def loss_fn(params, xb, yb, l2):
        logits = model.apply(params, xb)
        penalty = sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(params))
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean() + l2 * penalty

    @jax.jit
    def epoch(params, velocity, lr, l2, key, first_step):
        order = jax.random.permutation(key, len(x))[: steps * batch].reshape(steps, batch)

        def step(carry, index):
            params, velocity, t = carry
            grads = jax.grad(loss_fn)(params, x[index], y[index], l2)
            updates, velocity = momentum.update(grads, velocity)
            rate = lr * 0.5 * (1 + jnp.cos(jnp.pi * t / total))  # cosine to 0, as dlrun's default
            params = jax.tree_util.tree_map(lambda p, u: p - rate * u, params, updates)
            return (params, velocity, t + 1), None

        (params, velocity, _), _ = jax.lax.scan(step, (params, velocity, first_step), order)
        return params, velocity

    @jax.jit
    def accuracy(params):
        return jnp.mean(jnp.argmax(model.apply(params, x_val), -1) == y_val)

    finite = jax.jit(
        lambda params: jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)])
        )
    )
    spent = []

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1, log=True)
        l2 = trial.suggest_float("optim.l2", 1e-6, 1e-2, log=True)
        key = jax.random.PRNGKey(trial.number)
        params = model.init(key, x[:1])
        velocity, best = momentum.init(params), 0.0
        for index in range(epochs):
            params, velocity = epoch(params, velocity, lr, l2, jax.random.fold_in(key, index), index * steps)
            best = max(best, float(accuracy(params)))
            if not bool(finite(params)):  # diverged: a careful loop stops it, as dlrun does
                break
        spent.append(index + 1)
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return {"best_val_acc": study.best_value, "trial_epochs": sum(spent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="mnist")
    parser.add_argument(
        "--modes", nargs="+", default=["loop", "tpe", "tpe+hyperband"], choices=["loop", *MODES]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=8, help="dlrun --batch (trials asked at a time)")
    parser.add_argument("--as-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.as_loop:  # the peer's own process: print its result for run_loop
        print(json.dumps(loop(args.subset, args.epochs, args.trials, args.seeds[0])))
        return
    problem = [*PROBLEMS[args.problem], f"epochs={args.epochs}"]
    if args.problem.startswith("mnist"):
        problem.append(f"data.subset={args.subset}")
    rows = []
    for seed in args.seeds:
        for mode in args.modes:
            if mode == "loop":
                result = run_loop(args.subset, args.epochs, args.trials, seed)
            else:
                result = run_dlrun(problem, mode, args.trials, seed, args.batch)
            rows.append({"seed": seed, "mode": mode, **result})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    mean = frame.groupby("mode", sort=False)[["wall_s", "best_val_acc", "trial_epochs"]].mean()
    if "loop" in mean.index:
        mean["wall_vs_loop"] = mean.wall_s / mean.loc["loop", "wall_s"]
        mean["acc_minus_loop_pts"] = 100 * (mean.best_val_acc - mean.loc["loop", "best_val_acc"])
    mean["epochs_share"] = mean.trial_epochs / (args.trials * args.epochs)
    print(f"\n{args.problem}, {args.trials} trials x {args.epochs} epochs, seeds {args.seeds} (means):")
    print(mean.to_string(float_format=lambda v: f"{v:.4g}"))
    print(
        "spread of best val acc over seeds:",
        {mode: round(statistics.pstdev(g.best_val_acc), 4) for mode, g in frame.groupby("mode")},
    )


if __name__ == "__main__":
    main()
