"""Which driver errors mean "unavailable", "not migrated", or neither: one row per case.

The PostgreSQL rows carry an SQLSTATE as asyncpg's errors do, the SQLite rows real errors from
the sqlite3 module; the integration tier provokes the common ones on real servers.
"""

from __future__ import annotations

import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from sora_tasks.storage._sql_errors import missing_schema, unavailable_kind


class PgError(Exception):
    """What asyncpg's errors carry (and SQLAlchemy's adapter copies): the SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("a message naming db.internal:5432 and the role")
        self.sqlstate = sqlstate


def wrapped(orig: Exception, kind: type[DBAPIError] = DBAPIError) -> DBAPIError:
    return kind("SELECT 1", None, orig)


PG_UNAVAILABLE = {
    "08003": "connection lost, SQLSTATE 08003",
    "08006": "connection lost, SQLSTATE 08006",
    "08001": "connection failure, SQLSTATE 08001",
    "28P01": "authentication failed, SQLSTATE 28P01",
    "28000": "authentication failed, SQLSTATE 28000",
    "3D000": "database does not exist, SQLSTATE 3D000",
    "53300": "too many connections, SQLSTATE 53300",
    "53100": "server out of resources, SQLSTATE 53100",
    "57P01": "server shutting down, SQLSTATE 57P01",
    "57P02": "server shutting down, SQLSTATE 57P02",
    "57P03": "server starting up or not accepting connections, SQLSTATE 57P03",
    "58030": "server I/O error, SQLSTATE 58030",
}


@pytest.mark.parametrize(("sqlstate", "kind"), PG_UNAVAILABLE.items())
def test_postgresql_reachability_errors_are_unavailable(sqlstate: str, kind: str) -> None:
    assert unavailable_kind(wrapped(PgError(sqlstate))) == kind
    assert missing_schema(wrapped(PgError(sqlstate))) is None


PG_LOUD = [
    ("23505", IntegrityError),  # unique violation
    ("23503", IntegrityError),  # foreign key violation
    ("42883", DBAPIError),  # undefined function
    ("42601", DBAPIError),  # syntax error
    ("22012", DBAPIError),  # division by zero
    ("40001", DBAPIError),  # serialization failure
]


@pytest.mark.parametrize(("sqlstate", "wrapper"), PG_LOUD)
def test_postgresql_integrity_and_programming_errors_are_neither(
    sqlstate: str, wrapper: type[DBAPIError]
) -> None:
    assert unavailable_kind(wrapped(PgError(sqlstate), wrapper)) is None
    assert missing_schema(wrapped(PgError(sqlstate), wrapper)) is None


def test_an_undefined_table_or_column_on_postgresql_is_a_missing_schema() -> None:
    table, column = wrapped(PgError("42P01")), wrapped(PgError("42703"))
    assert (missing_schema(table), missing_schema(column)) == (
        "a table is missing",
        "a column is missing",
    )
    assert unavailable_kind(table) is None


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (a INTEGER)")
    return path


def sqlite_error(path: Path, sql: str) -> sqlite3.Error:
    db = sqlite3.connect(path)
    try:
        db.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError(f"{sql!r} did not fail")


def test_sqlite_syntax_errors_stay_loud(sqlite_path: Path) -> None:
    error = wrapped(sqlite_error(sqlite_path, "SELEKT 1"))
    assert (unavailable_kind(error), missing_schema(error)) == (None, None)


def test_sqlite_missing_tables_and_columns_are_a_missing_schema(sqlite_path: Path) -> None:
    assert missing_schema(wrapped(sqlite_error(sqlite_path, "SELECT * FROM nope"))) == (
        "a table is missing"
    )
    assert missing_schema(wrapped(sqlite_error(sqlite_path, "SELECT b FROM t"))) == (
        "a column is missing"
    )


def test_a_locked_sqlite_database_is_unavailable(sqlite_path: Path) -> None:
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        waiter = sqlite3.connect(sqlite_path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError) as caught:
                waiter.execute("BEGIN IMMEDIATE")
        finally:
            waiter.close()
    finally:
        holder.close()
    assert unavailable_kind(wrapped(caught.value)) == "database is locked, SQLITE_BUSY"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("SQLITE_IOERR_WRITE", "disk I/O error, SQLITE_IOERR_WRITE"),
        ("SQLITE_FULL", "disk full, SQLITE_FULL"),
        ("SQLITE_CANTOPEN", "cannot open the database file, SQLITE_CANTOPEN"),
        ("SQLITE_READONLY_DBMOVED", "database is read-only, SQLITE_READONLY_DBMOVED"),
        ("SQLITE_CORRUPT", None),
        ("SQLITE_CONSTRAINT_UNIQUE", None),
    ],
)
def test_sqlite_result_codes(code: str, kind: str | None) -> None:
    # the sqlite3 module sets these attributes from the C result code
    error = sqlite3.OperationalError("disk trouble")
    error.sqlite_errorname = code
    assert unavailable_kind(wrapped(error)) == kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError(111, "refused by db.internal:5432"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "host name not resolved"),
        (TimeoutError(), "connect timed out"),
        (ConnectionResetError(104, "reset"), "network error, ConnectionResetError"),
    ],
)
def test_network_errors_are_unavailable(error: OSError, kind: str) -> None:
    assert unavailable_kind(error) == kind


def test_a_pool_timeout_is_unavailable() -> None:
    assert unavailable_kind(PoolTimeoutError("QueuePool limit of size 5 overflow 10 reached")) == (
        "no pooled connection free within the pool timeout"
    )


def test_a_connection_the_dialect_saw_die_is_lost() -> None:
    error = DBAPIError(
        "SELECT 1", None, Exception("connection is closed"), connection_invalidated=True
    )
    assert unavailable_kind(error) == "connection lost"


def test_other_exceptions_are_not_classified() -> None:
    assert unavailable_kind(ValueError("x")) is None
    assert missing_schema(ValueError("x")) is None
