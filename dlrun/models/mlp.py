"""The multi-layer perceptron: flattened inputs, `hidden` dense layers, one output layer.

`model.hidden=[]` is a linear model (logistic regression with cross-entropy).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn

from dlrun.errors import ConfigError
from dlrun.models.activations import width_factor
from dlrun.models.layers import ActivationSpec, activate, check_dropout, dropout


class MLP(nn.Module):
    hidden: Sequence[int]
    outputs: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    batch_norm: bool = False
    use_dropout: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        x = x.reshape(x.shape[0], -1)
        for index, width in enumerate(self.hidden, start=1):
            name = f"hidden{index}"
            units = width * width_factor(self.act)
            x = nn.Dense(units, kernel_init=self.kernel_init, bias_init=self.bias_init, name=name)(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, name=f"{name}_bn")(x)
            x = activate(self, x, self.act, name)
            if self.use_dropout:
                x = dropout(self, x, dropout_rate, train)
        return nn.Dense(self.outputs, kernel_init=self.kernel_init, bias_init=self.bias_init, name="output")(
            x
        )


def build(model, outputs: int, common: dict) -> MLP:
    """Return the MLP for the config node `model` (cfg.model) with `outputs` output units."""
    return MLP(
        hidden=tuple(model.hidden),
        outputs=outputs,
        batch_norm=model.batch_norm,
        use_dropout=model.dropout > 0,
        **common,
    )


def check_hidden(key: str, widths) -> None:
    if any(width <= 0 for width in widths):
        raise ConfigError(f"{key} widths must be > 0, got {list(widths)}")


OPTIONS = {"hidden": check_hidden, "dropout": check_dropout}


def check_fits(model, spec) -> None:
    """Any input shape fits: the MLP flattens it."""
