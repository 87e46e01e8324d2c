"""Errors of the base package, beside the protocol's tree (``protocol/errors.py``).

    SchulwartError                     (protocol.errors)
    ├── ConfigError                    a config file or command-line value that cannot be used
    └── DatabaseError                  a database that cannot be opened, migrated or written
        └── SchemaTooNewError          a database written by a newer schulwart: refused, not touched

Both CLIs turn every ``SchulwartError`` into one line on stderr and exit code 2 (``base.cli``).
"""

from __future__ import annotations

from protocol.errors import SchulwartError

__all__ = ["ConfigError", "DatabaseError", "SchemaTooNewError", "SchulwartError"]


class ConfigError(SchulwartError):
    """A configuration file or a command-line value that cannot be used."""

    reason = "config"


class DatabaseError(SchulwartError):
    """A database file that cannot be opened, migrated or written."""

    reason = "database"


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer schulwart: refused rather than touched."""

    reason = "schema_too_new"
