"""Making the async engine: which URL, which driver, and the SQLite connection settings."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Final

import platformdirs
from sqlalchemy import URL, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, Pool, QueuePool

__all__ = [
    "BEGIN_OPTION",
    "default_sqlite_url",
    "engine_slots",
    "make_engine",
    "masked_url",
    "resolve_url",
]

BEGIN_OPTION: Final = "sora_tasks_begin"
"""Execution option naming the SQLite ``BEGIN`` mode of a connection's next transaction
(``None``: no ``BEGIN``, each statement on its own)."""

_BUSY_TIMEOUT_MS: Final = 30_000
_ASYNC_DRIVERS: Final = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def default_sqlite_url() -> URL:
    """A database file in the user's data directory, which is created if missing."""
    directory = Path(platformdirs.user_data_dir("sora-tasks"))
    directory.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite+aiosqlite", database=str(directory / "tasks.db"))


def resolve_url(url: str | URL | None) -> URL:
    """Parse ``url`` (``None`` means the default SQLite file) and pick the async driver."""
    if url is None:
        return default_sqlite_url()
    parsed = make_url(url)
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    return parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))


def masked_url(url: URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, **engine_kwargs: Any) -> AsyncEngine:
    """Create the engine; SQLite connections get WAL, a busy timeout and foreign keys.

    The busy timeout (how long a statement waits for another writer's lock) is 30 seconds, or
    the driver's own ``timeout`` in seconds when given: ``connect_args={"timeout": 5}``.
    """
    engine = create_async_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        timeout = engine_kwargs.get("connect_args", {}).get("timeout")
        busy_ms = _BUSY_TIMEOUT_MS if timeout is None else round(float(timeout) * 1000)
        configure = partial(_configure_sqlite_connection, busy_ms=busy_ms)
        event.listen(engine.sync_engine, "connect", configure)
        event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
    return engine


def engine_slots(pool: Pool, reserved: int | None) -> int | None:
    """How many of ``pool``'s connections the polling engine may hold at once.

    ``reserved`` connections are kept for other callers; the engine keeps at least one. By
    default the overflow is reserved (at least one connection): the engine keeps to the pool's
    persistent connections, so it never makes the pool open and close overflow connections for
    it. ``None`` for pools without a bound (``NullPool``, an unlimited overflow) or of one shared
    connection, where there is nothing to reserve.
    """
    if reserved is not None and reserved < 0:
        raise ValueError(f"reserved_connections must be 0 or more, not {reserved}")
    if not isinstance(pool, QueuePool):
        return None
    overflow = pool._max_overflow  # not public, but the only place the pool keeps it
    if overflow < 0:
        return None
    capacity = pool.size() + overflow
    reserve = max(1, overflow) if reserved is None else reserved
    return max(1, capacity - reserve)


def _configure_sqlite_connection(
    dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry, *, busy_ms: int
) -> None:
    # the driver's own implicit BEGIN skips SELECTs and cannot take the write lock up front;
    # turning it off lets _begin_sqlite_transaction emit BEGIN (IMMEDIATE) itself
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    if mode is not None:  # None: no transaction, every statement commits on its own
        connection.exec_driver_sql(f"BEGIN {mode}")
