"""Replicate's webhooks through ``TaskManager.handle_webhook``: the Standard Webhooks signature,
checked with the secret the provider fetches from the simulator's ``/webhooks/default/secret``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from sora_tasks import TaskManager, TaskStatus, WebhookVerificationError
from sora_tasks._models import Task
from sora_tasks.providers import ReplicateProvider
from sora_tasks.testing import REPLICATE_WEBHOOK_SECRET, create_simulator_app
from sora_tasks.testing._simulator import SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
KEY = "r8_webhook-test-token"


def sign(
    body: bytes,
    *,
    webhook_id: str = "msg_1",
    timestamp: int | None = None,
    secret: str = REPLICATE_WEBHOOK_SECRET,
) -> dict[str, str]:
    """Sign as Replicate does, computed here independently of the library."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


@dataclass
class Setup:
    manager: TaskManager
    app: SimulatorApp
    clock: ManualClock
    task: Task

    def body(self) -> bytes:
        """The prediction as Replicate would deliver it (what a GET answers)."""
        prediction = {"id": self.task.external_id, "status": "succeeded", "output": None}
        return json.dumps(prediction).encode()

    async def unchanged(self) -> bool:
        return (await self.manager.get(self.task.id)).version == self.task.version


@pytest.fixture
async def setup(serve: Serve) -> AsyncIterator[Setup]:
    clock = ManualClock()
    app = create_simulator_app(api_key=KEY, clock=clock, queue_seconds=1, render_seconds=5)
    url = serve(app)
    provider = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1")
    async with TaskManager(providers={"replicate": provider}, poll=False) as manager:
        task = await manager.create("a calico cat", seconds=8)
        assert task.external_id is not None and task.status is TaskStatus.QUEUED
        clock.advance(10)  # finished at Replicate; only a read can tell the manager
        yield Setup(manager, app, clock, task)


async def test_a_signed_delivery_re_reads_the_prediction(setup: Setup) -> None:
    body = setup.body()
    result = await setup.manager.handle_webhook("replicate", sign(body), body)
    assert result.outcome == "processed"
    assert result.task is not None and result.task.status is TaskStatus.COMPLETED
    again = await setup.manager.handle_webhook("replicate", sign(body, webhook_id="msg_2"), body)
    assert again.outcome == "processed"
    assert setup.app.state.hits["replicate_secret"] == 1  # fetched once, then kept


@pytest.mark.parametrize(
    "spoil",
    [
        lambda headers: {**headers, "webhook-signature": "v1," + base64.b64encode(b"x").decode()},
        lambda headers: {k: v for k, v in headers.items() if k != "webhook-signature"},
        lambda headers: {**headers, "webhook-timestamp": str(int(time.time()) - 3600)},
    ],
    ids=["bad-signature", "missing-signature", "stale-timestamp"],
)
async def test_an_untrusted_delivery_changes_nothing(
    setup: Setup, spoil: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    body = setup.body()
    polls = setup.app.state.hits["replicate_get"]
    with pytest.raises(WebhookVerificationError):
        await setup.manager.handle_webhook("replicate", spoil(sign(body)), body)
    assert await setup.unchanged()
    assert setup.app.state.hits["replicate_get"] == polls


async def test_a_body_signed_by_another_secret_is_refused(setup: Setup) -> None:
    body = setup.body()
    other = "whsec_" + base64.b64encode(b"someone else's key").decode()
    with pytest.raises(WebhookVerificationError):
        await setup.manager.handle_webhook("replicate", sign(body, secret=other), body)
    assert await setup.unchanged()


async def test_a_replayed_delivery_is_a_duplicate(setup: Setup) -> None:
    body = setup.body()
    headers = sign(body)
    first = await setup.manager.handle_webhook("replicate", headers, body)
    polls = setup.app.state.hits["replicate_get"]
    replay = await setup.manager.handle_webhook("replicate", headers, body)
    assert (first.outcome, replay.outcome) == ("processed", "duplicate")
    assert setup.app.state.hits["replicate_get"] == polls


async def test_a_configured_secret_is_used_and_none_is_fetched(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=3600)
    url = serve(app)
    provider = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1")
    mine = "whsec_" + base64.b64encode(b"my configured signing key").decode()
    manager = TaskManager(providers={"replicate": provider}, poll=False)
    async with manager:
        task = await manager.create("a calico cat", seconds=8)
        body = json.dumps({"id": task.external_id, "status": "processing"}).encode()
        configured = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1", webhook_secret=mine)
        async with TaskManager(providers={"replicate": configured}, poll=False) as other:
            with pytest.raises(WebhookVerificationError):
                await other.handle_webhook("replicate", sign(body), body)
            result = await other.handle_webhook("replicate", sign(body, secret=mine), body)
    assert result.outcome == "ignored"  # the other manager's store has no such task
    assert app.state.hits["replicate_secret"] == 0
