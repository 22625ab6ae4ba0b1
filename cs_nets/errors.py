"""Exceptions that carry a message meant for the user, and what each one means.

Library code raises these and never calls ``sys.exit`` or prints; the CLI turns
a ``CsNetsError`` into one line on stderr and its ``exit_code``.

    CsNetsError                 any failure the user can act on           exit 1
    ├── ConfigError             a config file, --set override or option   exit 2
    ├── DataError               data or a file read from disk that is     exit 1
    │   │                       missing, corrupt, inconsistent or unsafe
    │   │                       (archives, checkpoints, run directories)
    │   └── DownloadError       network, HTTP status or checksum          exit 1
    └── ArgumentError           an argument of a library function with    exit 1
        (also a ValueError)     the wrong shape, dtype or value

``ArgumentError`` is what a library user meets when calling ``model.loss``,
``svm_loss`` or ``blas.gemm`` with bad arrays; it subclasses ``ValueError`` so it
can be caught the Python way. Through ``csnets`` it only appears for a bug, since
configs are validated (``ConfigError``) before any array is built.
"""


class CsNetsError(Exception):
    """A failure the user can act on. ``str(err)`` is the whole one-line message."""

    exit_code = 1


class ConfigError(CsNetsError):
    """A config file, ``--set`` override or option value that is not valid."""

    exit_code = 2


class DataError(CsNetsError):
    """Data or a file that is missing, corrupt, truncated, inconsistent or refused as unsafe."""


class DownloadError(DataError):
    """A download that could not be completed (network, HTTP status, checksum)."""


class ArgumentError(CsNetsError, ValueError):
    """A library function called with an array or value of the wrong shape, dtype or range."""
