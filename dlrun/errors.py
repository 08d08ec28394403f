"""The kinds of error the CLI reports in one line: bad input (exit 2), and a run that failed
(exit 1).

A leaf module, so that any module can raise them without importing the config machinery.
"""


class ConfigError(Exception):
    """A one-line problem with the configuration or the command line."""


class DataError(Exception):
    """A bad data configuration or unavailable data; the message is one user-facing line."""


class RunFailed(Exception):
    """Training raised; every trial folder that could still be written records status `failed`
    and the traceback. The message is one line."""


class InputWarning(UserWarning):
    """Input that dlrun ran with a change it states (say, a batch larger than the data set, cut
    to it); the CLI prints the message as one `warning:` line."""
