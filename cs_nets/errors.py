"""Exceptions that carry a message meant for the user.

Library code raises these and never calls ``sys.exit`` or prints; the CLI turns
them into one line on stderr and an exit code (``ConfigError`` -> 2, the rest -> 1).
"""


class CsNetsError(Exception):
    """A failure the user can act on. ``str(err)`` is the whole one-line message."""

    exit_code = 1


class ConfigError(CsNetsError):
    """A config file, ``--set`` override or option value that is not valid."""

    exit_code = 2


class DataError(CsNetsError):
    """Data that is missing, corrupt, truncated or refused as unsafe."""


class DownloadError(DataError):
    """A download that could not be completed (network, HTTP status, checksum)."""
