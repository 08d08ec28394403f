"""thresholds.py: overriding thresholds by name, refusing bad ones, and a reason beside each."""

import dataclasses
import inspect

import pytest

from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds


def test_from_dict_overrides_named_thresholds_and_keeps_the_rest():
    thresholds = Thresholds.from_dict({"overfit_rise": 0.2, "window": "5"})
    assert thresholds.overfit_rise == 0.2 and thresholds.window == 5 and isinstance(thresholds.window, int)
    assert thresholds.dead_fraction == DEFAULT_THRESHOLDS.dead_fraction


def test_from_dict_refuses_an_unknown_name_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'overfit_raise'.*valid names: .*overfit_rise"):
        Thresholds.from_dict({"overfit_raise": 0.2})


def test_from_dict_refuses_a_value_that_is_not_a_number():
    with pytest.raises(ValueError, match="'window' must be a number"):
        Thresholds.from_dict({"window": "three"})


def test_every_threshold_has_a_comment_saying_why():
    source = inspect.getsource(Thresholds).splitlines()
    for f in dataclasses.fields(Thresholds):
        line = next(i for i, text in enumerate(source) if text.strip().startswith(f"{f.name}:"))
        assert source[line - 1].strip().startswith("#"), f.name
