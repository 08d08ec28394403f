"""settings.py: the shared settings above a report are what differs from the defaults of the
options in use, for run folders written now and in the old flat format."""

import json

import pytest
import yaml

from dlrun.config import compose
from dlrun.config.load import compose_config
from dlrun.config.schema import plain
from dlrun.report.build import build_report
from dlrun.report.settings import conf_dir, non_default, option_defaults


def write_run(folder, overrides, extra=None):
    """A run folder's config.yaml and summary.json as training writes them (composed for real),
    with `extra` fields merged in as a folder of the old flat format carried them."""
    config = plain(compose_config(overrides))
    for group, fields in (extra or {}).items():
        config[group].update(fields)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "config": config}))


def shared(*folders):
    built = build_report(list(folders))
    return non_default(built.constant, built.rows)


def test_an_mlp_sweep_shows_what_was_set_and_nothing_of_other_options(tmp_path):
    for index, lr in enumerate((0.1, 0.01)):
        write_run(tmp_path / f"trial-{index}", ["data=moons", "model.hidden=[8]", "epochs=3", f"lr={lr}"])
    assert shared(tmp_path) == {"model.hidden": "[8]", "data.name": "moons", "epochs": 3}


def test_a_lenet_run_shows_no_mlp_fields_and_no_defaults(tmp_path):
    write_run(tmp_path / "lenet", ["model=lenet", "model.pooling=avg", "data.subset=500"])
    assert shared(tmp_path) == {"model.name": "lenet", "model.pooling": "avg", "data.subset": 500}


def test_an_old_flat_folder_shows_no_field_its_options_do_not_have(tmp_path):
    # before each option had its own schema, an MLP run on MNIST carried LeNet's and the
    # generated sets' fields too
    old = {"model": {"pooling": "avg", "conv_lowering": "xla"}, "data": {"noise": 0.3, "n_samples": 9}}
    write_run(tmp_path / "old", ["model.hidden=[64]"], extra=old)
    assert shared(tmp_path) == {"model.hidden": "[64]"}


def test_options_that_vary_between_runs_hide_the_defaults_they_share(tmp_path):
    write_run(tmp_path / "a", ["data=moons", "epochs=2"])
    write_run(tmp_path / "b", ["data=circles", "epochs=2"])
    assert shared(tmp_path) == {"epochs": 2}  # not data.subset=None, data.n_test=1000, ...


@pytest.mark.parametrize(
    "group, option, key, value",
    [
        ("data", "moons", "data.val_size", 500),  # the option's YAML overrides the schema's 5000
        ("data", "mnist", "data.val_size", 5000),
        ("model", "mlp", "model.hidden", "[512, 256]"),
        ("optim", "adamw", "optim.weight_decay", 1e-4),
    ],
)
def test_option_defaults_are_what_composing_gives(group, option, key, value):
    assert option_defaults(group, option)[key] == value
    composed = plain(compose_config([f"{group}={option}"]))[group][key.split(".", 1)[1]]
    assert str(composed) == str(value)


def test_conf_dir_is_the_one_composing_reads():
    assert conf_dir() == compose.conf_dir()
