"""The ``store`` fixture: one parametrised factory per TaskStore implementation.

The contract suite in this folder is written against the protocol only; add a backend by adding
a parameter here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sora_tasks.storage import InMemoryStore, TaskStore


@pytest.fixture(params=["memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TaskStore]:
    backend: TaskStore = InMemoryStore()
    try:
        yield backend
    finally:
        await backend.close()
