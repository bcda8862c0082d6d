"""The package's exception base: errors a user can fix, as opposed to bugs.

Every command of ``cerm`` catches :class:`CermError` alone and reports it as one line with exit
code 2 (the file, line and field are in the message); any other exception is a bug and keeps its
traceback (exit code 1). Raise a subclass for bad input, a bad configuration or a missing file;
never for a broken invariant.
"""

from __future__ import annotations


class CermError(Exception):
    """Something the user can fix: bad input, a bad configuration, a missing resource."""


class ConfigError(CermError, ValueError):
    """A configuration value, flag or combination of them that cannot work."""


class InputError(CermError, ValueError):
    """An input file, record or request body that does not have the expected shape."""
