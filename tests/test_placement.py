"""A group over several devices trains each trial as one device does; padding rows never show.

The devices are CPU devices forced with XLA_FLAGS, which must be set before JAX starts: the
sharded group runs in a subprocess and writes its folders, compared here with a one-device run.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dlrun import results
from dlrun.config.load import compose_config
from dlrun.training.group import run_group

# lr x seed: 4 trials that draw their own batches; 3 devices pad them to 6 rows
OVERRIDES = [["data=moons", "data.n_samples=1100", "data.val_size=100", "model.hidden=[32,16]",
              "epochs=2", "batch_size=64", "optim=momentum", f"lr={lr}", f"seed={seed}"]
             for lr in (0.01, 0.1) for seed in (0, 1)]
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
    done = subprocess.run([sys.executable, "-c", SHARDED, json.dumps(OVERRIDES), str(out)],
                          env=env, capture_output=True, text=True, check=True)
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
