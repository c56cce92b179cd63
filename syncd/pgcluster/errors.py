"""Errors of the throwaway cluster."""

from __future__ import annotations


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server programs on this machine; the message says what to install."""


class PgClusterError(RuntimeError):
    """A server program failed, or the cluster was used in the wrong state."""
