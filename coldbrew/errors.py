"""The one exception type every layer raises for a user-facing problem.

The CLI prints its message on one line (no traceback) and exits non-zero; the app
turns the request-level subclass into a 4xx JSON body. Every exception class coldbrew defines derives from
``ColdbrewError`` (tests/test_layers.py checks). Base layer: imports nothing.
"""


class ColdbrewError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong setting."""


class ConfigError(ColdbrewError):
    """A start-up setting (environment variable or option) is missing or invalid."""


class ModelFormatError(ColdbrewError):
    """A model file is corrupt, truncated, of a future version, or not a model at all."""


class SourceError(ColdbrewError):
    """Model bytes could not be fetched (missing object, access denied, network failure)."""
