"""A canary key must never surface in a repr, a log line, an exception or a dump."""

from __future__ import annotations

import logging

import pytest

from sora_tasks import PollingPolicy, ProviderAuthError, TaskManager
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

CANARY = "sk-canary-7d1f0c5e-DO-NOT-LEAK"


async def test_canary_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refused = ProviderAuthError("the provider refused the credentials", status_code=401)
    fake = FakeProvider(api_key=CANARY, behaviour=FakeBehaviour(render_for=0.01, poll_after=0.01))
    failing = FakeProvider(api_key=CANARY, behaviour=FakeBehaviour(submit_error=refused))
    texts: list[str] = [repr(fake), str(fake.api_key), repr(fake.api_key)]
    async with TaskManager(
        providers={"ok": fake, "bad": failing},
        policy=PollingPolicy(retry_interval=0.01, idle_wait=0.02),
    ) as manager:
        texts.append(repr(manager))
        done = await manager.wait((await manager.create("a cat")).id, timeout=10)
        failed = await manager.create("a cat", provider="bad")
        for task in (done, failed):
            texts += [repr(task), str(task), task.model_dump_json(), str(task.model_dump())]
        texts.append(str((await manager.stats()).model_dump()))
    texts += [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert caplog.records, "the run should have logged something to inspect"
    for text in texts:
        assert CANARY not in text
    assert fake.api_key is not None and fake.api_key.get_secret_value() == CANARY
