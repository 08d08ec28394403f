"""dlrun's version, a leaf module: the run folders record it, and `dlrun/__init__.py` re-exports it
(a module that imported the package itself for it would reach everything the package exports)."""

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version: one number, written once, in pyproject.toml
    __version__ = version("dlrun")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
