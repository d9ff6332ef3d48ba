"""The ``store`` fixture: one parametrised factory per TaskStore implementation.

The contract suite in this folder is written against the protocol only; add a backend by adding
a parameter here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sora_tasks.storage import InMemoryStore, TaskStore
from tests.sql_databases import open_sql_store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    if request.param != "memory":
        async with open_sql_store(request.param, tmp_path, request) as sql_store:
            yield sql_store
        return
    backend: TaskStore = InMemoryStore()
    try:
        yield backend
    finally:
        await backend.close()
