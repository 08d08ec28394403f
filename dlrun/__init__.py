"""dlrun: a command-line experiment runner and hyperparameter sweeper for deep learning on JAX.

In Python: `dlrun.train`, `dlrun.sweep`, `dlrun.runs`, `dlrun.inspect` and `dlrun.Run`
(dlrun/api.py, imported on first use, so that `import dlrun` and the CLI's start stay quick);
bad input raises ConfigError.
"""

import types

import dlrun.sweep as _sweep_package  # its __init__ imports nothing: only says where things are
from dlrun.errors import ConfigError, RunFailed
from dlrun.version import __version__

API = ("train", "runs", "Run", "inspect")
__all__ = ["ConfigError", "RunFailed", "__version__", "sweep", *API]


def __getattr__(name: str):
    if name in API:  # the API's module imports nothing heavy until a function is called
        import dlrun.api

        return getattr(dlrun.api, name)
    raise AttributeError(f"module 'dlrun' has no attribute '{name}'")


class _CallablePackage(types.ModuleType):
    """`dlrun.sweep` is both the subpackage and the API's function: a name bound to a function
    here would be replaced by the subpackage when it is first imported, and every
    `dlrun.sweep.MODULE` path (imports, monkeypatching) must keep working."""

    def __call__(self, *args, **kwargs):
        """dlrun.api.sweep: run a sweep, return one row per trial (see its docstring)."""
        import dlrun.api

        return dlrun.api.sweep(*args, **kwargs)


_sweep_package.__class__ = _CallablePackage
