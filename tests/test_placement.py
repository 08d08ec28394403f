"""A group over several devices trains each trial as one device does; padding rows never show.

The devices are CPU devices forced with XLA_FLAGS, which must be set before JAX starts: the
sharded group runs in a subprocess and writes its folders, compared here with a one-device run.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dlrun import data, results
from dlrun.config.load import compose_config
from dlrun.training.group import GroupRun, run_group
from dlrun.training.placement import SIDE_BY_SIDE_ENV, TRIALS_PER_PASS_ENV, Placement
from dlrun.training.program import step_flops

# lr x seed: 4 trials that draw their own batches; 3 devices pad them to 6 rows
OVERRIDES = [
    [
        "data=moons",
        "data.n_samples=1100",
        "data.val_size=100",
        "model.hidden=[32,16]",
        "epochs=2",
        "batch_size=64",
        "optim=momentum",
        f"lr={lr}",
        f"seed={seed}",
    ]
    for lr in (0.01, 0.1)
    for seed in (0, 1)
]
COLUMNS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm"]

SHARDED = textwrap.dedent("""
    import json, sys
    import jax
    from dlrun.config.load import compose_config
    from dlrun.training.group import run_group
    overrides, out = json.loads(sys.argv[1]), sys.argv[2]
    cfgs = [compose_config(o) for o in overrides]
    dirs = [f"{out}/t{i}" for i in range(len(cfgs))]
    summaries = run_group(cfgs, dirs)
    print(json.dumps({"devices": jax.local_device_count(),
                      "status": [s["status"] for s in summaries]}))
""")


def sharded_run(devices: int, out) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED, json.dumps(OVERRIDES), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    dirs = [out / f"t{i}" for i in range(len(OVERRIDES))]
    run_group([compose_config(o) for o in OVERRIDES], dirs)
    return [results.read_metrics(d)[COLUMNS].to_numpy() for d in dirs]


@pytest.mark.parametrize("devices", [2, 3])
def test_a_group_over_several_devices_trains_as_on_one(devices, one_device, tmp_path):
    report = sharded_run(devices, tmp_path)
    assert report == {"devices": devices, "status": ["completed"] * len(OVERRIDES)}
    # the padding rows (3 devices: 2 rows) wrote nothing: only the trials' folders exist
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"t{i}" for i in range(len(OVERRIDES))]
    for index, expected in enumerate(one_device):
        got = results.read_metrics(tmp_path / f"t{index}")[COLUMNS].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        assert results.read_summary(tmp_path / f"t{index}")["group_size"] == len(OVERRIDES)


@pytest.mark.parametrize(
    "per_pass, shared, side_by_side",
    [(1, False, 1), (1, False, 2), (1, True, 2), (3, False, 1), (3, True, 1)],
)
def test_a_group_trained_in_passes_trains_as_vmapped(per_pass, shared, side_by_side, tmp_path, monkeypatch):
    """Passes of `per_pass` trials inside one program (3 of 5: a pass and a remainder), or one
    trial a pass run `side_by_side` from threads, give each trial the curves and status of the
    all-at-once vmapped group, a trial that diverges (skipped from then on when a pass is one
    trial) included; with one seed the passes share one batch order."""
    overrides = [*OVERRIDES, [*OVERRIDES[0][:-2], "lr=1e4", "seed=1"]]
    if shared:
        overrides = [[*o[:-1], "seed=0"] for o in overrides]

    def run(folder: str) -> tuple:
        dirs = [tmp_path / folder / f"t{i}" for i in range(len(overrides))]
        summaries = run_group([compose_config(o) for o in overrides], dirs)
        return ([s["status"] for s in summaries], [results.read_metrics(d)[COLUMNS].to_numpy() for d in dirs])

    monkeypatch.setenv(TRIALS_PER_PASS_ENV, str(len(overrides)))
    expected_status, expected = run("vmapped")
    monkeypatch.setenv(TRIALS_PER_PASS_ENV, str(per_pass))
    monkeypatch.setenv(SIDE_BY_SIDE_ENV, str(side_by_side))
    status, curves = run("passes")
    assert status == expected_status == ["completed"] * len(OVERRIDES) + ["diverged"]
    for got, want in zip(curves, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(expected[0], expected[2])  # lr 0.01 and 0.1 train differently


def test_trials_per_pass_fills_the_cpu_cores_and_no_more(monkeypatch):
    monkeypatch.delenv(TRIALS_PER_PASS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    placement = Placement(8, devices=jax.local_devices()[:1])
    # 2 cores want 1e8 FLOP a step in a pass
    assert placement.trials_per_pass(8, 3.2e8) == 1  # MLP 784-512-256-10 at batch 128
    assert placement.trials_per_pass(8, 2.5e7) == 4
    assert placement.trials_per_pass(8, 1e4) == 8  # tiny steps: the whole group at once
    assert placement.trials_per_pass(8, 0.0) == 8  # no cost analysis: as before, all at once
    monkeypatch.setenv(TRIALS_PER_PASS_ENV, "3")
    assert placement.trials_per_pass(8, 3.2e8) == 3
    assert placement.trials_per_pass(2, 3.2e8) == 2


def test_one_trial_passes_run_a_core_each_at_once_on_a_cpu(monkeypatch):
    monkeypatch.delenv(SIDE_BY_SIDE_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    placement = Placement(8, devices=jax.local_devices()[:1])
    assert placement.side_by_side(8) == 2 and placement.side_by_side(1) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert placement.side_by_side(5) == 5
    monkeypatch.setenv(SIDE_BY_SIDE_ENV, "1")
    assert placement.side_by_side(8) == 1


def test_step_flops_match_the_closed_form_of_an_mlp(tmp_path):
    """XLA's count for one step of an MLP 2-512-256-2 at batch B: the forward and the weight
    gradients are 2*B*MACs each, the input gradients of the two upper layers 2*B*their MACs
    (the first layer's input needs none); elementwise work adds under 10%."""
    cfg = compose_config(["data=moons", "model.hidden=[512,256]", "batch_size=128"])
    group = GroupRun([cfg], [tmp_path / "t0"], data.load(cfg.data))
    macs = [2 * 512, 512 * 256, 256 * 2]
    closed_form = 128 * (2 * sum(macs) * 2 + 2 * (macs[1] + macs[2]))
    flops = step_flops(group.program, group.states[0], group.x, group.y)
    assert closed_form <= flops <= 1.1 * closed_form
    assert not (tmp_path / "t0").exists()  # measuring writes nothing
