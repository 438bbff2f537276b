"""The one base class of every error specrob reports to a user.

Every module's own error (`SpecError`, `DataError`, `NetworkError`, `RunFolderError`, ...)
derives from `SpecrobError`, so a caller (the CLI, a notebook) catches user errors in one place
and prints their message; anything else is a bug in specrob.
"""
from __future__ import annotations


class SpecrobError(Exception):
    """A user-facing error: the message says what is wrong, where, and the way out."""


class OptionError(SpecrobError, ValueError, TypeError):
    """An option value out of its range, or an option that does not exist (an option
    dataclass refusing it when built, an unknown keyword of the API); the message names the
    option and what is accepted. Also a ValueError / TypeError, as Python reports those."""
