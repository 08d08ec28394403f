"""The model of this example, a small NNX network as a project of yours would hold it.

dlrun imports it from the folder it runs in (`_target_: nets.RingNet`, conf/model/ringnet.yaml)
and calls it with that option's fields (`width`, `depth`) and with what it sizes from the data:
`outputs` (one logit per class), `input_shape` (`(6,)`: the CSV's feature columns) and `rngs`
(drawn from the trial's seed). The whole contract is the docstring of dlrun/models/user.py.
"""

import math

from flax import nnx


class RingNet(nnx.Module):
    """`depth` hidden ReLU layers of `width` units, then one logit per class."""

    def __init__(self, width: int, depth: int, outputs: int, input_shape: tuple, rngs: nnx.Rngs):
        sizes = [math.prod(input_shape), *[width] * depth]
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.output = nnx.Linear(sizes[-1], outputs, rngs=rngs)

    def __call__(self, x):
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.output(x)
