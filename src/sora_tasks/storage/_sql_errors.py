"""Which driver failures mean the database cannot be reached (or is not migrated), by name.

SQLAlchemy wraps driver errors in classes that do not say enough: a PostgreSQL connection lost
mid-statement arrives as a bare ``DBAPIError``, an SQLite syntax error as an
``OperationalError``. The SQLSTATE (PostgreSQL) and the result code name (SQLite) do say, so
the store decides on those. The names returned here go into messages: they never include the
driver's text, which can carry the host, user or database name.
"""

from __future__ import annotations

import socket
from typing import Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

__all__ = ["missing_schema", "unavailable_kind"]

# SQLSTATE classes (the first two characters) and codes: https://www.postgresql.org/docs/current/errcodes-appendix.html
_PG_CLASSES: Final = {
    "08": "connection failure",
    "28": "authentication failed",
    "53": "server out of resources",
    "58": "server I/O error",
}
_PG_CODES: Final = {
    "08003": "connection lost",
    "08006": "connection lost",
    "3D000": "database does not exist",
    "53300": "too many connections",
    "57P01": "server shutting down",
    "57P02": "server shutting down",
    "57P03": "server starting up or not accepting connections",
    "57P04": "database dropped",
    "57P05": "connection closed by the server after its idle timeout",
}
_PG_MISSING_SCHEMA: Final = {"42P01": "a table is missing", "42703": "a column is missing"}
# SQLite primary result codes; extended ones (SQLITE_IOERR_WRITE, ...) start with these
_SQLITE_CODES: Final = (
    ("SQLITE_BUSY", "database is locked"),
    ("SQLITE_LOCKED", "database is locked"),
    ("SQLITE_IOERR", "disk I/O error"),
    ("SQLITE_FULL", "disk full"),
    ("SQLITE_CANTOPEN", "cannot open the database file"),
    ("SQLITE_READONLY", "database is read-only"),
)
_SQLITE_MISSING_SCHEMA: Final = {
    "no such table": "a table is missing",
    "no such column": "a column is missing",
}


def unavailable_kind(exc: BaseException) -> str | None:
    """What kept the database out of reach, e.g. ``"connection lost, SQLSTATE 08003"``;
    None when ``exc`` is about something else (an integrity error, a programming error).
    """
    if isinstance(exc, PoolTimeoutError):
        return "no pooled connection free within the pool timeout"
    if isinstance(exc, OSError):
        return _network_kind(exc)
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    sqlstate = _sqlstate(orig)
    if sqlstate is not None:
        kind = _PG_CODES.get(sqlstate) or _PG_CLASSES.get(sqlstate[:2])
        if kind is not None:
            return f"{kind}, SQLSTATE {sqlstate}"
    code = getattr(orig, "sqlite_errorname", None)
    if isinstance(code, str):
        kind = next((kind for prefix, kind in _SQLITE_CODES if code.startswith(prefix)), None)
        if kind is not None:
            return f"{kind}, {code}"
    if isinstance(orig, OSError):
        return _network_kind(orig)
    if exc.connection_invalidated:
        # the dialect saw the connection die (asyncpg: "connection is closed")
        return "connection lost"
    return None


def missing_schema(exc: BaseException) -> str | None:
    """``"a table is missing"`` or ``"a column is missing"`` when ``exc`` says the schema is
    older than the code (or absent); None otherwise.
    """
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = _sqlstate(exc.orig)
    if sqlstate is not None:
        return _PG_MISSING_SCHEMA.get(sqlstate)
    if getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_ERROR":
        text = str(exc.orig)
        return next((kind for words, kind in _SQLITE_MISSING_SCHEMA.items() if words in text), None)
    return None


def _sqlstate(orig: BaseException | None) -> str | None:
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def _network_kind(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    return f"network error, {type(exc).__name__}"
