"""The registry convention (dlrun/registry.py) and that every kind of registry follows it."""

import pytest

from dlrun import data, models, optim
from dlrun.errors import ConfigError, DataError
from dlrun.models import activations, inits, lenet, losses
from dlrun.registry import Registry, at_least_zero, check_options

COLOURS = Registry("colour", {"red": 1, "green": 2, "blue": 3}, extra=("auto",))


def test_a_registry_reads_like_a_dict_in_definition_order():
    assert COLOURS["green"] == 2 and COLOURS.get("blue") == 3
    assert "red" in COLOURS and "auto" not in COLOURS and "pink" not in COLOURS
    assert list(COLOURS) == ["red", "green", "blue"] and len(COLOURS) == 3
    assert dict(COLOURS.items()) == {"red": 1, "green": 2, "blue": 3}
    with pytest.raises(KeyError):
        COLOURS["pink"]


def test_names_are_sorted_and_choices_add_the_extra_names():
    assert COLOURS.names == ("blue", "green", "red")
    assert COLOURS.choices == ("auto", "blue", "green", "red")


def test_an_unknown_name_is_one_line_naming_the_kind_and_the_choices():
    with pytest.raises(ConfigError) as caught:
        COLOURS.get("pink")
    assert str(caught.value) == "unknown colour 'pink' (choose from: blue, green, red)"
    with pytest.raises(ConfigError) as caught:
        COLOURS.check("pink")
    assert str(caught.value) == "unknown colour 'pink' (choose from: auto, blue, green, red)"


def test_an_extra_name_passes_the_check_but_has_no_entry():
    COLOURS.check("auto")
    COLOURS.check("red")
    with pytest.raises(ConfigError, match="unknown colour 'auto'"):
        COLOURS.get("auto")


def test_a_registry_raises_the_error_its_module_raises():
    with pytest.raises(DataError, match="unknown shape 'cube'"):
        Registry("shape", {"square": 4}, error=DataError).get("cube")


def test_check_options_reads_only_the_fields_a_node_holds():
    checks = {"eps": at_least_zero, "gamma": at_least_zero}
    check_options({"eps": 0.0}, "optim", checks)  # no gamma here: not read
    with pytest.raises(ConfigError) as caught:
        check_options({"eps": 0.0, "gamma": -1}, "schedule", checks)
    assert str(caught.value) == "schedule.gamma must be >= 0, got -1"


EVERY_REGISTRY = [
    (models.MODELS, "model"),
    (lenet.POOLINGS, "pooling"),
    (data.DATASETS, "data"),
    (optim.OPTIMIZERS, "optimizer"),
    (optim.SCHEDULES, "schedule"),
    (optim.LR_SCALINGS, "optim.lr_scaling"),
    (inits.INITS, "init"),
    (inits.BIAS_INITS, "bias_init"),
    (activations.ACTIVATIONS, "activation"),
    (losses.LOSSES, "loss"),
]


@pytest.mark.parametrize("registry, kind", EVERY_REGISTRY, ids=[kind for _, kind in EVERY_REGISTRY])
def test_every_registry_follows_the_convention(registry, kind):
    assert isinstance(registry, Registry) and registry.kind == kind
    with pytest.raises((ConfigError, DataError)) as caught:
        registry.get("nope")
    assert str(caught.value) == f"unknown {kind} 'nope' (choose from: {', '.join(sorted(registry))})"
