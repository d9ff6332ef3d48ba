"""Shared fixtures: every async test runs on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# the shipped suites are modules of the package, not test modules: ask pytest to rewrite their
# asserts too, so that a failed check shows its values
pytest.register_assert_rewrite(
    "sora_tasks.testing.conformance", "sora_tasks.testing.store_contract"
)

if TYPE_CHECKING:
    from sqlalchemy import URL

    from tests.pgserver import PostgresServer
    from tests.s3server import LocalS3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[URL, str]]:
    """A migrated PostgreSQL template database; SQL-store tests clone one database per test."""
    from tests.sql_databases import postgres_template

    with postgres_template() as template:
        yield template


@pytest.fixture(scope="session")
def postgres_server_session() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (``initdb`` once per session), deleted at the end."""
    from tests.pgserver import PostgresServer, missing_requirement

    reason = missing_requirement()
    if reason is not None:
        pytest.skip(f"no throwaway PostgreSQL server: {reason}")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_server(postgres_server_session: PostgresServer) -> PostgresServer:
    """The session's throwaway PostgreSQL server, running; the test may stop and restart it."""
    if not postgres_server_session.running:
        postgres_server_session.start()
    return postgres_server_session


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """A real S3 API (moto's server) on 127.0.0.1 for the whole session."""
    from tests.s3server import local_s3

    with local_s3() as server:
        yield server


@pytest.fixture
def s3(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> LocalS3:
    """The session's S3 server, with obstore's environment pointed at it for this test."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server
