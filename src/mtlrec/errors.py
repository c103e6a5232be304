"""Errors that speak to the user: each names the file, row, column or field and what was expected."""


class MtlrecError(Exception):
    """Base class of every error the CLI prints as one line (no traceback)."""


class ConfigError(MtlrecError):
    """A malformed or inconsistent experiment config."""


class DataError(MtlrecError):
    """A data file or table that does not match the schema."""


class RunError(MtlrecError):
    """A missing, corrupt or incompatible run directory."""
