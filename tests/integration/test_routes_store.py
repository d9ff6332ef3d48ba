"""The route and cost fields survive a round trip through each SQL store."""

from __future__ import annotations

import pytest

from sora_tasks import RouteStep, SkippedProvider, TaskCost
from sora_tasks.storage import SQLStore
from sora_tasks.testing._task_factories import make_task

pytestmark = pytest.mark.anyio


async def test_a_routed_task_moves_and_keeps_its_record(sql_store: SQLStore) -> None:
    now = await sql_store.now()
    steps = [
        RouteStep(provider="a", model="veo-3.1", size="1280x720", seconds=8),
        RouteStep(provider="b", model="fal-ai/veo3.1", size="1280x720", seconds=8),
    ]
    task = await sql_store.insert(make_task(now, provider="a", route="veo", route_steps=steps))
    skipped = [SkippedProvider(provider="a", code="unreachable", reason="refused", at=now)]
    moved = await sql_store.update(
        task.id, expected_version=task.version, provider="b", model="fal-ai/veo3.1",
        skipped=skipped,
    )  # fmt: skip
    cost = TaskCost(amount=3.2, estimated=True, source="price table")
    priced = await sql_store.update(task.id, cost=cost)
    stored = await sql_store.get(task.id)
    assert stored == priced
    assert (stored.provider, stored.model, stored.route) == ("b", "fal-ai/veo3.1", "veo")
    assert stored.route_steps == steps and stored.skipped == skipped == moved.skipped
    assert stored.cost == cost
