"""The lab's errors: each one is a single line that says what is wrong and names the fix.

The CLI prints ``str(error)`` and exits with status 2; notebooks show the same line.
"""


class NeuralakeError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(NeuralakeError, ValueError):
    """A setting is unknown or malformed (profile name, endpoint, port...)."""


class StackError(NeuralakeError, RuntimeError):
    """A service of the stack could not start, answer, or stop."""
