"""Shared fixtures: every async test runs on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy import URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[URL, str]]:
    """A migrated PostgreSQL template database; SQL-store tests clone one database per test."""
    from tests.sql_databases import postgres_template

    with postgres_template() as template:
        yield template
