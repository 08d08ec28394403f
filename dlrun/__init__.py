"""dlrun: a command-line experiment runner and hyperparameter sweeper for deep learning on JAX."""

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version: one number, written once, in pyproject.toml
    __version__ = version("dlrun")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
