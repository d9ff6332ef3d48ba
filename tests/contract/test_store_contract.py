"""The shipped store contract suite, run against the memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sora_tasks.storage import InMemoryStore, TaskStore
from sora_tasks.testing.store_contract import StoreConformance
from tests.sql_databases import open_sql_store


class TestStoreContract(StoreConformance):
    """One parametrised store per TaskStore implementation: add a backend by adding a parameter."""

    @pytest.fixture(
        params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    )
    async def store(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> AsyncIterator[TaskStore]:
        if request.param != "memory":
            async with open_sql_store(request.param, tmp_path, request) as sql_store:
                yield sql_store
            return
        backend: TaskStore = InMemoryStore()
        try:
            yield backend
        finally:
            await backend.close()
