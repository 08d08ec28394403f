"""16 trials on Ray: Ray Tune (a Tuner over a function trainable) against `dlrun sweep
--executor ray` and the local `dlrun sweep`, side by side in one run.

    pip install -e '.[bench]'        # ray[tune]
    python benchmarks/bench_ray_tune.py [--cluster]

The workload (issue 12): the default MLP 784-512-256-10 on a 10,000-image MNIST subset, 3 epochs,
SGD, 4 learning rates x 4 seeds. Every figure is the wall time of a whole command in a fresh
process (imports, starting Ray where it is used, compiling with a warm persistent cache,
training, evaluation, the run folders). Tune's trainable trains its trial with dlrun's own
trainer and reports every epoch to Tune, so the two differ only in how the trials are run:
one process and one compiled program per trial in Tune, one vectorised group (one Ray task) in
dlrun. The issue measured Ray Tune 2.60 at ~110 s and `dlrun sweep` at ~28 s (3.9x).

By default each Ray command starts (and stops) a Ray instance of its own, as `dlrun sweep
--executor ray` without --address does: ~3.7 s of Ray's own on this machine. With --cluster a
Ray head is started once (`ray start --head`, as on a cluster) and both Tune and dlrun join it
(`--address auto`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = ["data=mnist", "data.subset=10000", "epochs=3", "optim=sgd"]
LRS, SEEDS = [0.1, 0.03, 0.01, 0.003], [0, 1, 2, 3]
SWEEP = ["sweep", *WORKLOAD, f"lr={','.join(map(str, LRS))}", f"seed={','.join(map(str, SEEDS))}"]


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def tune_trainable(config: dict) -> None:
    """One Tune trial: dlrun's trainer on one config, each epoch reported to Tune."""
    from ray import tune

    from dlrun.config.load import compose_config
    from dlrun.training.callbacks import EpochCallback
    from dlrun.training.group import run_group

    class ReportToTune(EpochCallback):
        def on_epoch(self, group, epoch, rows):
            tune.report(
                {"epoch": epoch, "val_loss": rows[0]["val_loss"], "val_accuracy": rows[0]["val_accuracy"]}
            )

    cfg = compose_config([*WORKLOAD, f"lr={config['lr']}", f"seed={config['seed']}"])
    run_group([cfg], [tempfile.mkdtemp(prefix="tune-trial-")], callbacks=(ReportToTune(),))


def run_tune(storage: str, address: str | None) -> None:
    """The Tune command: a grid of 16 trials, one CPU each (Tune's default)."""
    import ray
    from ray import tune

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune_trainable,
        param_space={"lr": tune.grid_search(LRS), "seed": tune.grid_search(SEEDS)},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min"),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 16 and not results.errors, results.errors


def main() -> None:
    if sys.argv[1:2] == ["--tune"]:  # the Tune side, in a process of its own
        return run_tune(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    cluster = "--cluster" in sys.argv[1:]
    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-tune-"))
    env = {**os.environ, "DLRUN_CACHE_DIR": str(scratch / "cache")}
    ray_cli = [str(Path(sys.executable).with_name("ray"))]
    if cluster:
        subprocess.run(
            [*ray_cli, "start", "--head", "--include-dashboard=false", "--disable-usage-stats"],
            check=True,
            env=env,
            capture_output=True,
        )
    joined = ["auto"] if cluster else []
    try:
        figures = _measure(scratch, env, joined)
    finally:
        if cluster:
            subprocess.run([*ray_cli, "stop"], env=env, capture_output=True)
    import ray

    where = "a running Ray head joined" if cluster else "a Ray instance started per command"
    print(
        f"{os.cpu_count()} cores, Ray {ray.__version__}, {where}; 16 trials, MLP "
        "784-512-256-10, 10,000 MNIST images, 3 epochs, SGD; wall seconds of whole commands"
    )
    tune_s = figures["Ray Tune (Tuner, function trainable)"]
    for name, seconds in figures.items():
        print(f"{name:<40}{seconds:8.1f} s   Tune / this: {tune_s / seconds:4.2f}x")


def _measure(scratch: Path, env: dict, joined: list) -> dict:
    dlrun = [sys.executable, "-m", "dlrun"]
    # warm the persistent compilation cache for both shapes (16 vmapped trials, 1 trial)
    timed([*dlrun, *SWEEP, "--out", str(scratch / "warm16")], env)
    timed([*dlrun, "train", *WORKLOAD, "--out", str(scratch / "warm1")], env)
    address = ["--address", *joined] if joined else []
    return {
        "Ray Tune (Tuner, function trainable)": timed(
            [sys.executable, __file__, "--tune", str(scratch / "tune"), *joined], env
        ),
        "dlrun sweep --executor ray": timed(
            [*dlrun, *SWEEP, "--executor", "ray", *address, "--out", str(scratch / "ray")], env
        ),
        "dlrun sweep (local)": timed([*dlrun, *SWEEP, "--out", str(scratch / "local")], env),
    }


if __name__ == "__main__":
    main()
