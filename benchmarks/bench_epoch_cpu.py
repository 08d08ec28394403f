"""One training epoch of dlrun against PyTorch eager, side by side, on this machine's CPU.

    python benchmarks/bench_epoch_cpu.py [--model mlp|lenet|both] [--repeats 3] [--batch-size 128]

Both sides train the same network (MLP 784-512-256-10 or LeNet-5) with Adam on the 55,000
MNIST training images at the same batch size, data already in memory. dlrun's side is the
product's own code path (config -> build_program -> jit(train_epoch)), compile excluded;
the ratio is dlrun / PyTorch epoch time (the issue's targets: MLP <= 0.5, LeNet-5 <= 1.0,
goal 0.7). Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import numpy as np


def dlrun_epoch_seconds(model: str, batch_size: int, repeats: int) -> list[float]:
    from dlrun import data
    from dlrun.config.load import compose_config
    from dlrun.training import group, hparams, step

    cfg = compose_config([f"model={model}", f"batch_size={batch_size}"])
    dataset = data.load(cfg.data)
    program = group.build_program([cfg], dataset)
    state = step.create_state(program, jax.random.PRNGKey(0), hparams.state_hparams(cfg))
    x, y = jax.device_put((dataset.x_train, dataset.y_train))
    epoch = jax.jit(functools.partial(step.train_epoch, program), donate_argnums=0)
    state, metrics = epoch(state, x, y, jax.random.PRNGKey(0))  # compile + warm up
    jax.block_until_ready(metrics)
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        state, metrics = epoch(state, x, y, jax.random.PRNGKey(index + 1))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return times


def torch_model(model: str):
    import torch.nn as tnn

    if model == "mlp":
        return tnn.Sequential(
            tnn.Flatten(),
            tnn.Linear(784, 512),
            tnn.ReLU(),
            tnn.Linear(512, 256),
            tnn.ReLU(),
            tnn.Linear(256, 10),
        )
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )


def torch_epoch_seconds(model: str, batch_size: int, repeats: int) -> list[float]:
    import torch

    from dlrun import data
    from dlrun.config.load import compose_config

    torch.set_num_threads(os.cpu_count() or 1)
    dataset = data.load(compose_config([f"model={model}"]).data)
    images = torch.from_numpy(dataset.x_train).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
    labels = torch.from_numpy(dataset.y_train.astype(np.int64))
    net = torch_model(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = len(images) // batch_size

    def epoch():
        order = torch.randperm(len(images))
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            inputs = (images[index].float() - dataset.x_offset) * dataset.x_scale
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(inputs), labels[index])
            loss.backward()
            optimizer.step()

    epoch()  # warm up allocator and oneDNN kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mlp", "lenet", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    models = ("mlp", "lenet") if args.model == "both" else (args.model,)
    print(
        f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} cores, "
        f"batch {args.batch_size}, Adam, median of {args.repeats} epochs"
    )
    print(f"{'model':<8}{'dlrun s/epoch':>15}{'torch s/epoch':>15}{'ratio':>8}")
    for model in models:
        # alternate the two sides so a noisy neighbour hurts both alike
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours += dlrun_epoch_seconds(model, args.batch_size, 1)
            theirs += torch_epoch_seconds(model, args.batch_size, 1)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{model:<8}{a:>15.2f}{b:>15.2f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
