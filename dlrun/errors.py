"""The two kinds of user-facing error: the CLI prints either as one line and exits 2.

A leaf module, so that any module can raise them without importing the config machinery.
"""


class ConfigError(Exception):
    """A one-line problem with the configuration or the command line."""


class DataError(Exception):
    """A bad data configuration or unavailable data; the message is one user-facing line."""
