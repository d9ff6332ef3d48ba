"""Databases for the SQL-store tests: SQLite files, and PostgreSQL databases cloned per test.

The PostgreSQL tier runs when ``SORA_TASKS_TEST_POSTGRES_URL`` names a server; each test gets
a fresh database made with ``CREATE DATABASE ... TEMPLATE`` from one migrated per session.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sora_tasks.storage import SQLStore

POSTGRES_URL_VARIABLE = "SORA_TASKS_TEST_POSTGRES_URL"
_numbers = itertools.count()


def sqlite_url(directory: Path) -> str:
    """A SQLite URL for a fresh file inside ``directory``."""
    return f"sqlite+aiosqlite:///{directory / f'tasks-{next(_numbers)}.db'}"


def postgres_server_url() -> URL:
    """The server named by the environment, or skip the test with the variable's name."""
    raw = os.environ.get(POSTGRES_URL_VARIABLE)
    if not raw:
        pytest.skip(
            f"set {POSTGRES_URL_VARIABLE} (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
            " to run the PostgreSQL tier"
        )
    return make_url(raw)


async def _admin(server: URL, sql: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def _create_template(server: URL, name: str) -> None:
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(server, f'CREATE DATABASE "{name}"')
    store = SQLStore(server.set(database=name))
    try:
        await store.migrate()
    finally:
        await store.close()


def _run_aside(coroutine: Coroutine[Any, Any, None]) -> None:
    # the session fixture may be set up from inside a running test's event loop
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()


@contextmanager
def postgres_template() -> Iterator[tuple[URL, str]]:
    """Create one migrated template database for the session; drop it afterwards."""
    server = postgres_server_url()
    name = f"sora_tpl_{os.getpid()}"
    _run_aside(_create_template(server, name))
    try:
        yield server, name
    finally:
        _run_aside(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def postgres_database(template: tuple[URL, str] | None) -> AsyncIterator[URL]:
    """A fresh database cloned from the template (or empty), dropped when the block ends."""
    server = postgres_server_url()
    name = f"sora_test_{os.getpid()}_{next(_numbers)}"
    clone = f' TEMPLATE "{template[1]}"' if template is not None else ""
    await _admin(server, f'CREATE DATABASE "{name}"{clone}')
    try:
        yield server.set(database=name)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[URL]:
    """The URL of a migrated, empty database on ``backend`` (``"sqlite"`` or ``"postgres"``)."""
    if backend == "sqlite":
        yield make_url(sqlite_url(tmp_path))
        return
    async with postgres_database(request.getfixturevalue("postgres_template")) as url:
        yield url


@asynccontextmanager
async def open_sql_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[SQLStore]:
    """An empty :class:`SQLStore` on ``backend`` (``"sqlite"`` or ``"postgres"``)."""
    async with database_url(backend, tmp_path, request) as url:
        store = SQLStore(url)
        try:
            yield store
        finally:
            await store.close()
