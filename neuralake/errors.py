"""The lab's errors: each one is a single line that says what is wrong and names the fix.

The CLI prints ``str(error)`` and exits with status 2; notebooks show the same line.
"""


class NeuralakeError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(NeuralakeError, ValueError):
    """A setting is unknown or malformed (profile name, endpoint, port...)."""


class StackError(NeuralakeError, RuntimeError):
    """A service of the stack could not start, answer, or stop."""


class StorageError(NeuralakeError, OSError):
    """The warehouse's object store cannot be used: the fix is in the settings or the stack."""


class EndpointUnreachableError(StorageError):
    """Nothing answers at the S3 endpoint (stack down, wrong host or port)."""


class CredentialsError(StorageError):
    """The S3 server refused the access key or secret."""


class BucketNotFoundError(StorageError):
    """The warehouse's bucket does not exist on the S3 server."""


class TableNotFoundError(NeuralakeError, FileNotFoundError):
    """There is no Delta table at the URI (never written, or a typo in the name)."""


class TableSchemaError(NeuralakeError, ValueError):
    """Data does not match the Delta table's schema, and the table was left unchanged."""


class CheckFailed(NeuralakeError, AssertionError):
    """A lab exercise's check failed; the message is the hint that says what to do next."""
