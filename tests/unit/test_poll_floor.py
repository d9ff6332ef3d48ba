"""A provider's ``min_poll_interval`` is kept as the provider sees it: from its answer to our next
request, however long the answer took (Runway asks for five seconds between a task's polls)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sora_tasks import PollingPolicy, TaskManager
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import ProviderJob
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio


class SlowAnswers(FakeProvider):
    """A fake whose status answers take three seconds of the manager's clock to arrive."""

    def __init__(self, now: list[datetime], **options: Any) -> None:
        super().__init__(**options)
        self._now = now

    async def status(self, external_id: str) -> ProviderJob:
        job = await super().status(external_id)
        self._now[0] += timedelta(seconds=3)
        return job


async def test_the_floor_counts_from_the_answer_not_the_request() -> None:
    now = [datetime(2026, 11, 30, 6, 0, tzinfo=UTC)]
    floor = FakeProvider().capabilities.model_copy(update={"min_poll_interval": 5.0})
    fake = SlowAnswers(now, behaviour=FakeBehaviour(render_for=3600), capabilities=floor)
    policy = PollingPolicy(reconcile_delay=0, schedule=PollSchedule(first_interval=0.1))
    manager = TaskManager(providers={"slow": fake}, policy=policy, poll=False, clock=lambda: now[0])
    async with manager:
        task = await manager.create("a")
        asked = now[0]
        polled = await manager.refresh(task.id)
    assert polled.next_poll_at is not None
    assert polled.next_poll_at >= asked + timedelta(seconds=3 + 5)
