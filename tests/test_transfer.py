"""`--init-from RUN_DIR` and `model.trainable`: what loads, what freezes, and what is refused."""

import json

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_NNX_MODULE
from typer.testing import CliRunner

from dlrun import data, optim
from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.errors import ConfigError
from dlrun.models import trainable
from dlrun.training import step, transfer
from dlrun.training.group import GroupRun

runner = CliRunner()
# an MLP with batch norm on three blobs: every kind of module (dense, batch norm, head), seconds
SOURCE = [
    "data=blobs",
    "model=mlp",
    "model.hidden=[16,16]",
    "model.batch_norm=true",
    "epochs=3",
    "lr=0.01",
    "batch_size=64",
]
FROZEN_BY_HEAD = ["hidden1", "hidden1_bn", "hidden2", "hidden2_bn"]


def dlrun(*args):
    return runner.invoke(app, list(args))


def checkpoint(run_dir, name="best"):
    """A run's checkpoint as numpy trees ({'params', 'batch_stats'}; last: the whole state)."""
    tree = flax.serialization.msgpack_restore((run_dir / "checkpoints" / f"{name}.msgpack").read_bytes())
    return tree["state"] if name == "last" else tree


def same(a, b) -> bool:
    """Bit-identical trees: the same structure and exactly equal arrays."""
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    return tree_a == tree_b and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "source"
    result = dlrun("train", *SOURCE, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    "text, trained",
    [
        ("all", ["conv1", "conv2", "fc1", "fc2", "output"]),
        ("head", ["output"]),
        ("last2", ["fc2", "output"]),
        ("last5", ["conv1", "conv2", "fc1", "fc2", "output"]),
        ("conv1+output", ["conv1", "output"]),
        ("output+conv1", ["conv1", "output"]),  # in network order, whatever the order given
    ],
)
def test_trainable_names_layers(text, trained):
    assert trainable.trainable_layers(text, ["conv1", "conv2", "fc1", "fc2", "output"], "lenet") == trained


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "fc9",
            "model.trainable=fc9: model lenet has no layer 'fc9'; its layers: conv1, conv2, fc1, "
            "fc2, output (give all, head, lastN or names joined by +, e.g. fc2+output)",
        ),
        (
            "last6",
            "model.trainable=last6: model lenet has 5 layers (conv1, conv2, fc1, fc2, output); "
            "give last1 to last5",
        ),
        ("last0", "give last1 to last5"),
    ],
)
def test_trainable_refuses_what_the_model_lacks(text, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
    ):
        trainable.trainable_layers(text, ["conv1", "conv2", "fc1", "fc2", "output"], "lenet")


def test_batch_norm_belongs_to_its_layer_and_the_layers_are_in_network_order():
    for hidden in ([16, 16], list(range(1, 12))):  # hidden10 and hidden11 after hidden9
        cfg = compose_config([*SOURCE, f"model.hidden=[{','.join(map(str, hidden))}]"])
        modules = trainable.model_modules(cfg, data.describe(cfg.data))
        assert trainable.model_layers(modules) == [f"hidden{i}" for i in range(1, len(hidden) + 1)] + [
            "output"
        ]
    cfg = compose_config([*SOURCE, "model.trainable=last2"])
    assert trainable.frozen_modules(cfg, data.describe(cfg.data)) == {"hidden1", "hidden1_bn"}


def test_optimizer_state_holds_nothing_for_frozen_layers():
    cfg = compose_config([*SOURCE, "optim=adamw", "model.trainable=head"])
    spec = data.describe(cfg.data)
    params = compose_params(cfg, spec)
    frozen = trainable.frozen_modules(cfg, spec)
    assert frozen == set(FROZEN_BY_HEAD)
    opt_state = transfer.freeze(optim.make_optimizer(cfg, 10), frozen).init(params)
    arrays = [leaf for leaf in jax.tree_util.tree_leaves(opt_state) if leaf.ndim > 0]
    head = params["output"]["kernel"].size + params["output"]["bias"].size
    assert sum(leaf.size for leaf in arrays) == 2 * head  # Adam's two moments, of the head only
    assert float(optim.injected_hyperparams(opt_state)["weight_decay"]) == pytest.approx(1e-4)
    updates, _ = transfer.freeze(optim.make_optimizer(cfg, 10), frozen).update(
        jax.tree_util.tree_map(jnp.ones_like, params), opt_state, params
    )
    for module in frozen:  # no step and no weight decay
        assert all(not np.any(leaf) for leaf in jax.tree_util.tree_leaves(updates[module]))
    assert np.all(np.asarray(updates["output"]["kernel"]) != 0)


def compose_params(cfg, spec):
    from dlrun import models

    model = models.build_model(cfg, spec)
    return model.init(jax.random.PRNGKey(0), jnp.zeros((1, *spec.input_shape)))["params"]


def test_l2_penalty_leaves_frozen_layers_out():
    params = {
        "hidden1": {"kernel": jnp.full((2, 3), 2.0)},
        "output": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
    }
    assert float(step.l2_penalty(params)) == 4.0 * 6 + 6
    assert float(step.l2_penalty(params, frozenset({"hidden1"}))) == 6


def test_loaded_layers_equal_the_source_runs_best_before_training(source, tmp_path):
    cfg = compose_config([*SOURCE, f"init_from={source}", "seed=5"])
    group = GroupRun([cfg], [tmp_path / "run"], data.load(cfg.data))
    best = checkpoint(source)
    assert same(group.states[0].params, best["params"])  # the head too: the same classes
    assert same(group.states[0].batch_stats, best["batch_stats"])
    assert group.trials[0].init_record == {
        "source": str(source),
        "reinitialised": [],
        "loaded": [*FROZEN_BY_HEAD, "output"],
    }
    # a different seed with no init_from draws other parameters: the load is what made them equal
    fresh = GroupRun([compose_config([*SOURCE, "seed=5"])], [tmp_path / "fresh"], group.dataset)
    assert not same(fresh.states[0].params["hidden1"], best["params"]["hidden1"])


def test_head_only_training_keeps_every_other_layer_bit_identical(source, tmp_path):
    out = tmp_path / "head"
    result = dlrun(
        "train",
        *SOURCE,
        "data.classes=4",
        "data.seed=1",
        "model.trainable=head",
        "--init-from",
        str(source),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert (
        f"initialised from {source}: loaded hidden1, hidden1_bn, hidden2, hidden2_bn; re-initialised output"
    ) in " ".join(result.output.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init_from"] == {
        "source": str(source),
        "loaded": FROZEN_BY_HEAD,
        "reinitialised": ["output"],
    }
    assert summary["status"] == "completed" and summary["test_accuracy"] > 0.5
    assert f"init_from: {source}" in (out / "config.yaml").read_text()
    before, after = checkpoint(source), checkpoint(out, "last")
    for module in FROZEN_BY_HEAD:
        assert same(after["params"][module], before["params"][module]), module
    assert after["params"]["output"]["kernel"].shape == (16, 4)  # a new head for four classes
    # frozen batch norm still follows the new data's statistics (documented in transfer.py)
    assert not same(after["batch_stats"]["hidden1_bn"], before["batch_stats"]["hidden1_bn"])


def test_a_sweep_compares_transfer_and_fine_tuning_from_one_source(source, tmp_path):
    out = tmp_path / "sweep"
    result = dlrun(
        "sweep",
        *SOURCE,
        "data.seed=1",
        "model.trainable=head,all",
        "--init-from",
        str(source),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    groups = {row["group"] for row in _rows(out / "trials.csv")}
    assert len(groups) == 2  # the optimizer's structure differs: one group each
    before = checkpoint(source)["params"]
    head, everything = checkpoint(out / "trial-000", "last"), checkpoint(out / "trial-001", "last")
    assert same(head["params"]["hidden1"], before["hidden1"])
    assert not same(head["params"]["output"], before["output"])  # the head (loaded) trained on
    assert not same(everything["params"]["hidden1"], before["hidden1"])
    for trial in ("trial-000", "trial-001"):
        assert json.loads((out / trial / "summary.json").read_text())["init_from"]["source"] == str(source)


def _rows(path):
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


def test_another_architecture_is_refused_layer_by_layer(source):
    wider = compose_config([*SOURCE, "model.hidden=[32,16]", f"init_from={source}"])
    with pytest.raises(
        ConfigError, match=r"its layer hidden1 has shapes .* only the output layer may differ"
    ):
        transfer.check_init(wider)
    linear = compose_config([*SOURCE, "model.hidden=[]", "data.classes=4", f"init_from={source}"])
    with pytest.raises(
        ConfigError,
        match=r"no layer of model mlp \(output\) is in that run \(its "
        r"layers: hidden1, hidden1_bn, hidden2, hidden2_bn, output\)",
    ):
        transfer.check_init(linear)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such folder"),
        ("empty", "not a run folder (no config.yaml or summary.json)"),
        ("no_checkpoint", "the run has no checkpoint (checkpoints/best.msgpack is missing"),
    ],
)
def test_a_bad_source_is_one_line_and_writes_nothing(case, message, tmp_path, source):
    folder = tmp_path / case
    if case != "missing":
        folder.mkdir()
    if case == "no_checkpoint":
        (folder / "config.yaml").write_text((source / "config.yaml").read_text())
    for command in ("train", "sweep"):
        out = tmp_path / f"never-{command}"
        result = dlrun(command, *SOURCE, "--init-from", str(folder), "--out", str(out))
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["model.trainable=fc1"], "model mlp has no layer 'fc1'; its layers: hidden1, hidden2, output"),
        (["model.trainable=last4"], "model mlp has 3 layers (hidden1, hidden2, output); give last1 to last3"),
        (["--resume", "RUN", "--init-from", "RUN"], "--init-from RUN starts a new one"),
    ],
)
def test_bad_trainable_or_flags_are_one_line(args, message, tmp_path, source):
    args = [str(source) if arg == "RUN" else arg for arg in args]
    out = tmp_path / "never"
    extra = [] if "--resume" in args else ["--out", str(out)]
    result = dlrun("train", *SOURCE, *args, *extra)
    assert result.exit_code == 2, result.output
    assert message.replace("RUN", str(source)) in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


def test_resume_cannot_change_where_a_run_started_from(source, tmp_path):
    result = dlrun("train", "--resume", str(source), f"init_from={tmp_path}")
    assert result.exit_code == 2, result.output
    assert "--resume cannot change init_from (None -> " in result.output


# A module of the user's own (NNX) in the working directory; a name of its own, since this
# process keeps each imported module and other tests import other `nets`
TRANSFER_NETS = TINY_NNX_MODULE
USER = [
    "data=blobs",
    "model=user",
    "model._target_=transfer_nets.Tiny",
    "+model.width=16",
    "epochs=3",
    "lr=0.01",
    "batch_size=64",
]


@pytest.fixture(scope="module")
def user_source(tmp_path_factory):
    """(the folder holding transfer_nets.py, a run of its module trained there)."""
    folder = tmp_path_factory.mktemp("user-transfer")
    (folder / "transfer_nets.py").write_text(TRANSFER_NETS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = dlrun("train", *USER, "--out", str(folder / "source"))
    assert result.exit_code == 0, result.output
    return folder, folder / "source"


def test_a_user_modules_frozen_layer_stays_bit_identical_and_its_trainable_one_trains(
    user_source, monkeypatch
):
    folder, source = user_source
    monkeypatch.chdir(folder)
    out = folder / "head"
    result = dlrun(
        "train", *USER, "seed=1", "model.trainable=output", "--init-from", str(source), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init_from"] == {
        "source": str(source),
        "loaded": ["hidden", "output"],
        "reinitialised": [],
    }
    loaded, after = checkpoint(source)["params"], checkpoint(out, "last")["params"]
    assert sorted(after) == ["hidden", "output"]
    assert same(after["hidden"], loaded["hidden"])  # frozen: the source's best, bit for bit
    assert not same(after["output"], loaded["output"])  # loaded, then trained on


def test_a_layer_a_user_module_lacks_is_one_line_listing_its_layers(user_source, monkeypatch, tmp_path):
    folder, source = user_source
    monkeypatch.chdir(folder)
    out = tmp_path / "never"
    result = dlrun("train", *USER, "model.trainable=fc1", "--init-from", str(source), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "model user has no layer 'fc1'; its layers: hidden, output" in result.output
    assert not out.exists()
