"""Models from the user's own code: `model=user model._target_=nets.WideMLP +model.width=64`.

The contract a user's module keeps (this is its one statement; conf/model/user.yaml points here):

1. `_target_` names a Flax module class, NNX (`nnx.Module`, what Flax recommends) or Linen
   (`nn.Module`), or a function returning one, as `module.name`: `nets.WideMLP` is WideMLP in
   ./nets.py (or the package ./nets/), imported from the working directory.
2. It is called with the option's other fields as keyword arguments (`+model.width=64` gives
   `width=64`; lists arrive as tuples) and, where its signature names them:
   `outputs` (the output units the loss and the data ask for: 10 for MNIST's classes),
   `input_shape` (one example's shape, e.g. `(28, 28, 1)`), and for NNX `rngs` (an `nnx.Rngs`
   drawn from the trial's seed, with `params` and `dropout` streams). The top-level `init`,
   `init_scale`, `bias_init`, `bias_scale`, `activation`, `activation_slope` and
   `maxout_pieces` reach it the same way, by name, as the config's values; a module that names
   none of them leaves them to the built-in models, and setting one away from its default is
   refused.
3. It is applied to a batch as `module(x)`, or `module(x, train=...)` where its `__call__`
   takes `train` (True in a training step: dropout on, batch statistics updated), with `x`
   float32 of shape `(batch, *input_shape)`, scaled as for the built-in models, and returns the
   logits (or regression outputs) of shape `(batch, outputs)`.
4. Its state: NNX `nnx.Param` train and `nnx.BatchStat` are the batch statistics (through
   Flax's own `nnx.bridge.ToLinen`, so the engine's Linen collections hold them); a Linen
   module's `params` and `batch_stats` alike, its dropout drawing from the `dropout` rng.
5. Its layers (`model.trainable`, `--init-from`, the per-layer gradient norms) are its
   top-level parameter modules: attribute names in NNX (which orders them alphabetically), the
   submodules' names in Linen (in creation order). A name's part before the first `_` is its
   layer (`conv1_bn` belongs to `conv1`), and `model.trainable=head` trains the one named `output`.
6. It is checked before any data loads: imported, called with its arguments and traced on a
   batch of the data's shape with `jax.eval_shape` (nothing allocated or compiled). A module
   that cannot be imported, does not take its arguments, fails or returns the wrong shape is
   one line naming its file and the problem (exit 2).
7. Its fields are program shape: two values of a field train as two groups; lr, seed and the
   other per-trial keys (dlrun/training/hparams.py) vary inside one compiled group, as for any
   model.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from contextlib import contextmanager
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict
from omegaconf import OmegaConf

from dlrun.errors import ConfigError
from dlrun.targets import TARGET, first_line, given_serial, import_target, source_of
from dlrun.text import clip

# The option's own keys, which are not the module's arguments.
OWN_KEYS = ("name", "trainable", TARGET)
# The arguments dlrun gives where a signature names them (and never takes from the option).
GIVEN = ("outputs", "input_shape", "rngs")
# Top-level knobs that only the built-in layers read, with their defaults (dlrun/config/schema.py):
# a user's module gets those its signature names; any other set away from its default is refused.
BUILT_IN_KNOBS = {
    "init": "auto",
    "init_scale": None,
    "bias_init": "zeros",
    "bias_scale": 0.0,
    "activation": "relu",
    "activation_slope": 0.01,
    "maxout_pieces": 2,
}
# Examples in the batch the check traces: two, so that a module mixing up the batch axis with
# another axis of size one shows as the wrong shape.
CHECK_BATCH = 2


@dataclasses.dataclass(frozen=True)
class UserModel:
    """A user's module in the calling convention the engine has for the built-in models.

    `init` and `apply` take and return the Linen variables (`params`, `batch_stats`) and pass
    `train` only to a module that takes it; the dropout rate the engine passes is the built-in
    layers' (a user's module holds its own). `use_dropout` is carried for the program's key.
    """

    module: nn.Module  # the user's Linen module, or an NNX one inside nnx.bridge.ToLinen
    bridged: bool
    takes_train: bool  # a Linen module's (a bridged one's is read when it is made)
    label: str  # `nets.py: WideMLP(width=64, ...)`, for messages
    use_dropout: bool = False

    def clone(self, **changes) -> UserModel:
        return dataclasses.replace(self, **changes)

    def init(self, rngs, x, train: bool = False, **kwargs):
        rngs = rngs if isinstance(rngs, dict) else {"params": rngs}
        # a module that builds nnx.Dropout asks for the `dropout` stream when it is made
        rngs = {"dropout": rngs["params"], **rngs}
        return self.module.init(rngs, x, **self._mode(train), **kwargs)

    def apply(self, variables, x, train: bool = False, dropout_rate=0.0, rngs=None, **kwargs):
        rngs = {"dropout": jax.random.PRNGKey(0), **(rngs or {})}
        return self.module.apply(variables, x, **self._mode(train), rngs=rngs, **kwargs)

    def _mode(self, train) -> dict:
        if self.bridged:
            return {"nnx_method": _call_nnx, "train": train}
        return {"train": train} if self.takes_train else {}


def _call_nnx(module, x, train=False):
    # an NNX factory's module is not known until the bridge makes it: its __call__ is read here
    with _observed_layers(module):
        return module(x, train=train) if _takes_train(type(module)) else module(x)


# hook(layer name, output) -> output, for each call of a top-level layer of a bridged NNX
# module while `observing` holds it: what `nn.intercept_methods` gives for Linen submodules,
# which never sees inside the bridge (dlrun inspect reads and shifts a layer's maps with it)
_OBSERVERS: list = []


@contextmanager
def observing(hook):
    """Call `hook(name, output)` on every top-level layer's output of a user's NNX module while
    it runs (traced or not), the layer named by its attribute; the hook returns the output."""
    _OBSERVERS.append(hook)
    try:
        yield
    finally:
        _OBSERVERS.pop()


@contextmanager
def _observed_layers(module):
    """While the module runs, its top-level layers' calls go through the observer. By their
    classes' `__call__`, patched for the call and told apart by identity: setting attributes
    on the merged module would change its graph, which the bridge splits again afterwards."""
    if not _OBSERVERS:
        yield
        return
    hook = _OBSERVERS[-1]
    names = {id(sub): name for name, sub in vars(module).items() if isinstance(sub, nnx.Module)}
    classes = {type(sub) for sub in vars(module).values() if isinstance(sub, nnx.Module)}
    originals = {cls: cls.__dict__.get("__call__") for cls in classes}
    # each read before any is patched: a subclass must not wrap its base's observed call
    calls = {cls: cls.__call__ for cls in classes}

    def observed(call):
        def observed_call(self, *args, **kwargs):
            out = call(self, *args, **kwargs)
            name = names.get(id(self))
            return hook(name, out) if name is not None else out

        return observed_call

    try:
        for cls in classes:
            cls.__call__ = observed(calls[cls])
        yield
    finally:
        for cls, original in originals.items():
            if original is None:  # inherited: the class's own attribute goes again
                del cls.__call__
            else:
                cls.__call__ = original


def _takes_train(cls) -> bool:
    return "train" in inspect.signature(cls.__call__).parameters


@dataclasses.dataclass(frozen=True)
class Target:
    """What `_target_` names, read once: the object, its file and how it is called."""

    obj: Any
    file: str
    nnx: bool  # an NNX class or a factory taking rngs (built through the bridge)
    parameters: tuple  # the names its signature takes
    var_keyword: bool  # it takes **kwargs
    required: tuple  # the names it takes with no default

    @property
    def name(self) -> str:
        return getattr(self.obj, "__name__", str(self.obj))


def resolve(target: str) -> Target:
    """Import `_target_` and read its signature; ConfigError in one line when it is no module."""
    obj, file = import_target(target, f"model.{TARGET}")
    if inspect.isclass(obj) and not issubclass(obj, (nnx.Module, nn.Module)):
        raise ConfigError(
            f"{source_of(obj)}: {obj.__name__} is not a Flax module (nnx.Module or nn.Module) "
            f"nor a function returning one (model.{TARGET}={clip(target)})"
        )
    if not callable(obj):
        raise ConfigError(f"{file}: {clip(target)} is a {type(obj).__name__}, not a Flax module class")
    signature = _signature(obj)
    values = signature.parameters.values()
    named = [p for p in values if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return Target(
        obj=obj,
        file=source_of(obj),
        nnx=issubclass(obj, nnx.Module) if inspect.isclass(obj) else "rngs" in signature.parameters,
        parameters=tuple(p.name for p in named),
        var_keyword=any(p.kind == p.VAR_KEYWORD for p in values),
        required=tuple(p.name for p in named if p.default is p.empty),
    )


def _signature(obj) -> inspect.Signature:
    if inspect.isclass(obj) and issubclass(obj, nnx.Module):  # its metaclass hides __init__'s
        signature = inspect.signature(obj.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])
    signature = inspect.signature(obj)
    if inspect.isclass(obj):  # a Linen dataclass: parent and name are Flax's, not the user's
        kept = [p for name, p in signature.parameters.items() if name not in ("parent", "name")]
        return signature.replace(parameters=kept)
    return signature


def arguments(cfg, spec, outputs: int, target: Target) -> dict:
    """The keyword arguments the module is called with (rngs aside: the bridge gives them).

    Raises ConfigError for a field it does not take, an argument it needs and is not given,
    and a built-in knob set away from its default for a module that does not take it."""
    fields = {key: _frozen(value) for key, value in _plain(cfg.model).items() if key not in OWN_KEYS}
    for key in fields:
        if key in GIVEN:
            raise ConfigError(
                f"{_about(target)}: model.{key} is dlrun's to give (sized for the data); leave it out"
            )
        if key not in target.parameters and not target.var_keyword:
            raise ConfigError(
                f"{_about(target)} takes no argument '{clip(key)}' (set by model.{clip(key)}; it takes: "
                f"{', '.join(target.parameters) or 'none'})"
            )
    given = {"outputs": outputs, "input_shape": tuple(spec.input_shape)}
    given.update({knob: _plain(cfg[knob]) for knob in BUILT_IN_KNOBS})
    kwargs = {**fields, **{name: value for name, value in given.items() if name in target.parameters}}
    for name in target.required:
        if name not in kwargs and not (name == "rngs" and target.nnx):
            raise ConfigError(f"{_about(target)} needs argument '{name}': give it with +model.{name}=VALUE")
    for knob, default in BUILT_IN_KNOBS.items():
        if knob not in target.parameters and _plain(cfg[knob]) != default:
            raise ConfigError(
                f"{knob}={clip(cfg[knob])} is for the built-in models: {_about(target)} takes no "
                f"'{knob}' argument (leave {knob} at {default}, or give the module one)"
            )
    return kwargs


def build(cfg, spec, outputs: int) -> UserModel:
    """The user's module for `cfg.model` in the engine's calling convention (see the contract)."""
    if OmegaConf.is_missing(cfg.model, TARGET):
        raise ConfigError(
            f"model=user needs model.{TARGET}=module.name, e.g. model.{TARGET}=nets.WideMLP for "
            f"class WideMLP in ./nets.py"
        )
    target = resolve(cfg.model[TARGET])
    kwargs = arguments(cfg, spec, outputs, target)
    label = f"{_about(target)}({clip(', '.join(f'{k}={v!r}' for k, v in kwargs.items()))})"
    if target.nnx:
        skip_rng = "rngs" not in target.parameters
        module = nnx.bridge.ToLinen(target.obj, kwargs=FrozenDict(kwargs), skip_rng=skip_rng)
        return UserModel(module, bridged=True, takes_train=True, label=label)
    try:
        module = target.obj(**kwargs)
    except Exception as error:  # the user's constructor: any type
        raise ConfigError(_failed(label, error)) from None
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"{label} returned a {type(module).__name__}, not a Flax module (a function making an "
            f"NNX module must take rngs, so that the trial's seed draws its parameters)"
        )
    return UserModel(module, bridged=False, takes_train=_takes_train(type(module)), label=label)


# the configs whose module passed `check` in this process: a sweep validates every trial, and
# its lr x seed trials share one module
_CHECKED: set = set()


def check(cfg, spec, outputs: int) -> None:
    """Raise ConfigError unless the module imports, takes its arguments and maps a batch of the
    data's shape to `(batch, outputs)`, traced by `jax.eval_shape` (nothing runs)."""
    knobs = {knob: _plain(cfg[knob]) for knob in BUILT_IN_KNOBS}
    node = _plain(cfg.model)
    serial = given_serial(node.get(TARGET))  # a class handed over again under the same name
    key = json.dumps([node, serial, knobs, list(spec.input_shape), outputs], sort_keys=True, default=str)
    if key in _CHECKED:
        return
    model = build(cfg, spec, outputs)
    batch = jax.ShapeDtypeStruct((CHECK_BATCH, *spec.input_shape), jnp.float32)
    try:
        result = jax.eval_shape(partial(_forward, model), batch)
    except Exception as error:  # the user's code, traced: any type
        raise ConfigError(_failed(model.label, error, batch.shape)) from None
    shape = tuple(getattr(result, "shape", ()))
    if not hasattr(result, "shape") or shape != (CHECK_BATCH, outputs):
        got = f"shape {shape}" if hasattr(result, "shape") else f"a {type(result).__name__}"
        raise ConfigError(
            f"{model.label} returns {got} for a batch of shape {batch.shape}; it must return "
            f"(batch, outputs) = {(CHECK_BATCH, outputs)}"
        )
    _CHECKED.add(key)


def _forward(model: UserModel, x):
    """Both ways the engine calls the module: initialised in eval mode, applied in training."""
    key = jax.random.PRNGKey(0)
    variables = model.init({"params": key}, x, train=False)
    outputs, _ = model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    return outputs


def _about(target: Target) -> str:
    return f"{target.file}: {target.name}"


def _failed(label: str, error: Exception, shape=None) -> str:
    on = f" on a batch of shape {shape}" if shape else ""
    return f"{label} raised {type(error).__name__}{on}: {clip(first_line(error))}"


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _frozen(value):
    """Lists as tuples (hashable, as Flax module attributes want), dicts as FrozenDicts."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return FrozenDict({key: _frozen(item) for key, item in value.items()})
    return value
