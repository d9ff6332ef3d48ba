"""Standard Webhooks: the signature table, de-duplication, and the re-read that follows an event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import pytest
import time_machine
from pydantic import SecretStr

from sora_tasks import (
    MemoryDeduplicator,
    Task,
    TaskManager,
    TaskStatus,
    UnknownProviderError,
    WebhookResult,
    WebhookVerificationError,
)
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

KEY = b"a 32-byte signing key for tests!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
T = int(NOW.timestamp())
RENDER = FakeBehaviour(render_for=10, poll_after=None)

Headers = dict[str, str]


class Clock:
    """The fake provider's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    manager: TaskManager
    fake: FakeProvider
    clock: Clock
    task: Task

    def event(self, kind: str = "video.completed") -> bytes:
        envelope = {
            "id": "evt_1",
            "object": "event",
            "created_at": T,
            "type": kind,
            "data": {"id": self.task.external_id},
        }
        return json.dumps(envelope).encode()

    async def current(self) -> Task:
        return await self.manager.get(self.task.id)


@pytest.fixture(autouse=True)
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


@asynccontextmanager
async def started(behaviour: FakeBehaviour = RENDER) -> AsyncIterator[Setup]:
    """A manager that never polls on its own, with one task whose job is still rendering."""
    clock = Clock()
    fake = FakeProvider(behaviour=behaviour, clock=clock)
    manager = TaskManager(providers={"fake": fake}, poll=False, webhook_secrets={"fake": SECRET})
    async with manager:
        task = await manager.create("a calico cat playing piano")
        assert task.status is not TaskStatus.COMPLETED and fake.status_calls == 0
        clock.now += 60  # the job is finished at the provider; only a status call can tell us
        yield Setup(manager, fake, clock, task)


def sign(
    body: bytes, *, webhook_id: str = "msg_1", timestamp: int | str = T, key: bytes = KEY
) -> Headers:
    """Sign as a provider would, computed here independently of the library under test."""
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def bad_signature(body: bytes) -> str:
    return sign(body + b"x")["webhook-signature"]


def replace(headers: Headers, **changes: str) -> Headers:
    return {**headers, **{name.replace("_", "-"): value for name, value in changes.items()}}


def without(headers: Headers, name: str) -> Headers:
    return {key: value for key, value in headers.items() if key != name}


Case = Callable[[bytes], tuple[Headers, bytes]]

DEEP = b'{"type": "video.completed", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def padded(body: bytes) -> bytes:
    """``body`` made one byte longer than 1 MiB with trailing whitespace (still valid JSON)."""
    return body + b" " * (1024 * 1024 + 1 - len(body))


ACCEPTED: dict[str, Case] = {
    "valid": lambda body: (sign(body), body),
    "header names in any case": lambda body: (
        {name.title(): value for name, value in sign(body).items()},
        body,
    ),
    "300 s old": lambda body: (sign(body, timestamp=T - 300), body),
    "300 s ahead": lambda body: (sign(body, timestamp=T + 300), body),
    "299 s old": lambda body: (sign(body, timestamp=T - 299), body),
    "one of several signatures valid": lambda body: (
        replace(
            sign(body),
            webhook_signature=f"{bad_signature(body)} {sign(body)['webhook-signature']}",
        ),
        body,
    ),
    "unknown signature versions skipped": lambda body: (
        replace(
            sign(body),
            webhook_signature=f"v2,{base64.b64encode(b'?').decode()}  "
            f"{sign(body)['webhook-signature']}",
        ),
        body,
    ),
}

REFUSED: dict[str, tuple[Case, str]] = {
    "tampered body": (lambda body: (sign(body), body.replace(b"video", b"audio")), "No matching"),
    "wrong secret": (lambda body: (sign(body, key=b"another key" * 3), body), "No matching"),
    "301 s old": (lambda body: (sign(body, timestamp=T - 301), body), "too old"),
    "301 s ahead": (lambda body: (sign(body, timestamp=T + 301), body), "too new"),
    "a day old": (lambda body: (sign(body, timestamp=T - 86_400), body), "too old"),
    "timestamp changed after signing": (
        lambda body: (replace(sign(body), webhook_timestamp=str(T - 1)), body),
        "No matching",
    ),
    "id changed after signing": (
        lambda body: (replace(sign(body), webhook_id="msg_2"), body),
        "No matching",
    ),
    "several signatures, none valid": (
        lambda body: (
            replace(sign(body), webhook_signature=f"{bad_signature(body)} {bad_signature(body)}"),
            body,
        ),
        "No matching",
    ),
    "only an unknown version": (
        lambda body: (
            replace(
                sign(body), webhook_signature=sign(body)["webhook-signature"].replace("v1", "v9")
            ),
            body,
        ),
        "No matching",
    ),
    "signature without a version": (
        lambda body: (
            replace(sign(body), webhook_signature=sign(body)["webhook-signature"][3:]),
            body,
        ),
        "'v1,<base64>' entries",
    ),
    "empty signature": (
        lambda body: (replace(sign(body), webhook_signature="v1,"), body),
        "'v1,<base64>' entries",
    ),
    "signature not base64": (
        lambda body: (replace(sign(body), webhook_signature="v1,not*base64!"), body),
        "'v1,<base64>' entries",
    ),
    "signature with two commas": (
        lambda body: (replace(sign(body), webhook_signature="v1,AAAA,AAAA"), body),
        "'v1,<base64>' entries",
    ),
    "timestamp not a number": (
        lambda body: (replace(sign(body), webhook_timestamp="soon"), body),
        "whole unix seconds",
    ),
    "fractional timestamp": (
        lambda body: (sign(body, timestamp=f"{T}.5"), body),
        "whole unix seconds",
    ),
    "id too long": (
        lambda body: (sign(body, webhook_id="m" * 256), body),
        "the limit is 255",
    ),
    "missing webhook-id": (
        lambda body: (without(sign(body), "webhook-id"), body),
        "missing header.*webhook-id",
    ),
    "missing webhook-timestamp": (
        lambda body: (without(sign(body), "webhook-timestamp"), body),
        "missing header.*webhook-timestamp",
    ),
    "missing webhook-signature": (
        lambda body: (without(sign(body), "webhook-signature"), body),
        "missing header.*webhook-signature",
    ),
    "blank webhook-signature": (
        lambda body: (replace(sign(body), webhook_signature="  "), body),
        "missing header.*webhook-signature",
    ),
    "no headers at all": (lambda body: ({}, body), "missing header"),
    "body not UTF-8": (lambda body: (sign(b"\xff" + body), b"\xff" + body), "not UTF-8"),
    "body nested 100,000 deep": (
        lambda body: (sign(DEEP), DEEP),
        "deeper than 64 levels",
    ),
    "body over 1 MiB": (
        lambda body: (sign(padded(body)), padded(body)),
        "1,048,577 bytes; the limit is 1,048,576",
    ),
    "body over 1 MiB, checked before the signature": (
        lambda body: (replace(sign(body), webhook_signature=bad_signature(body)), padded(body)),
        "the limit is 1,048,576",
    ),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_authentic_deliveries_are_accepted_and_re_read_the_job(case: Case) -> None:
    async with started() as setup:
        headers, body = case(setup.event())
        result = await setup.manager.handle_webhook("fake", headers, body)
        assert result.outcome == "processed" and result.event_type == "video.completed"
        assert setup.fake.status_calls == 1
        assert (await setup.current()).status is TaskStatus.COMPLETED


@pytest.mark.parametrize(("case", "reason"), REFUSED.values(), ids=REFUSED.keys())
async def test_refused_deliveries_change_nothing(case: Case, reason: str) -> None:
    async with started() as setup:
        headers, body = case(setup.event())
        with pytest.raises(WebhookVerificationError, match=reason):
            await setup.manager.handle_webhook("fake", headers, body)
        assert setup.fake.status_calls == 0
        assert await setup.current() == setup.task


async def test_a_completed_event_makes_one_status_call_and_completes_the_task() -> None:
    async with started() as setup:
        result = await setup.manager.handle_webhook("fake", sign(setup.event()), setup.event())
        assert setup.fake.status_calls == 1
        assert result.task is not None and result.task.id == setup.task.id
        assert result.task.status is TaskStatus.COMPLETED and result.task.progress == 100
        assert await setup.current() == result.task


async def test_a_failed_event_records_the_providers_reason() -> None:
    async with started(FakeBehaviour(render_for=10, outcome="failed")) as setup:
        body = setup.event("video.failed")
        result = await setup.manager.handle_webhook("fake", sign(body), body)
        assert result.task is not None and result.task.status is TaskStatus.FAILED
        assert result.task.error is not None and result.task.error.code == "generation_failed"


async def test_a_replayed_delivery_is_processed_once() -> None:
    async with started() as setup:
        body = setup.event()
        first = await setup.manager.handle_webhook("fake", sign(body), body)
        # a provider's retry keeps the id and signs a fresh timestamp
        again = await setup.manager.handle_webhook("fake", sign(body, timestamp=T + 5), body)
        assert (first.outcome, again.outcome) == ("processed", "duplicate")
        assert again.webhook_id == "msg_1" and again.task is None
        assert setup.fake.status_calls == 1


async def test_concurrent_copies_of_a_delivery_are_processed_once() -> None:
    async with started() as setup:
        body = setup.event()
        results: list[WebhookResult] = []

        async def deliver() -> None:
            results.append(await setup.manager.handle_webhook("fake", sign(body), body))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(deliver)
        assert sorted(result.outcome for result in results) == ["duplicate"] * 4 + ["processed"]
        assert setup.fake.status_calls == 1


async def test_a_delivery_that_failed_midway_is_processed_when_redelivered() -> None:
    crashing = FakeBehaviour(render_for=10, poll_errors=[RuntimeError("status call blew up")])
    async with started(crashing) as setup:
        body = setup.event()
        with pytest.raises(RuntimeError, match="blew up"):
            await setup.manager.handle_webhook("fake", sign(body), body)
        retry = await setup.manager.handle_webhook("fake", sign(body), body)
        assert retry.outcome == "processed" and setup.fake.status_calls == 2


async def test_different_ids_are_each_processed() -> None:
    async with started(FakeBehaviour(render_for=1000, poll_after=None)) as setup:
        body = setup.event("video.progress")
        for webhook_id in ("msg_1", "msg_2"):
            result = await setup.manager.handle_webhook(
                "fake", sign(body, webhook_id=webhook_id), body
            )
            assert result.outcome == "processed"
        assert setup.fake.status_calls == 2
        assert (await setup.current()).status is TaskStatus.PROCESSING


async def test_an_event_for_an_unknown_job_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with started() as setup:
        body = json.dumps({"type": "video.completed", "data": {"id": "video_elsewhere"}}).encode()
        result = await setup.manager.handle_webhook("fake", sign(body), body)
        assert result.outcome == "ignored" and setup.fake.status_calls == 0
        assert any(
            record.levelno == logging.WARNING and "video_elsewhere" in record.getMessage()
            for record in caplog.records
        )


@pytest.mark.parametrize(
    "body",
    [b'{"type": "video.completed"}', b'{"data": {"id": 7}}', b"[1, 2]", b"not json"],
    ids=["no data", "id not a string", "not an object", "not json"],
)
async def test_authentic_events_naming_no_job_are_ignored(body: bytes) -> None:
    async with started() as setup:
        result = await setup.manager.handle_webhook("fake", sign(body), body)
        assert result.outcome == "ignored" and setup.fake.status_calls == 0
        assert await setup.current() == setup.task


async def test_a_provider_without_a_secret_is_refused() -> None:
    async with started() as setup:
        body = setup.event()
        with pytest.raises(WebhookVerificationError, match=r"no webhook secret.*'other'"):
            await setup.manager.handle_webhook("other", sign(body), body)
        assert setup.fake.status_calls == 0


async def test_a_secret_that_is_not_whsec_base64_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="must be whsec_<base64>") as caught:
        TaskManager(providers={"fake": FakeProvider()}, webhook_secrets={"fake": "whsec_%%%"})
    assert "%%%" not in str(caught.value)
    with pytest.raises(ValueError, match="must be whsec_<base64>"):
        TaskManager(providers={"fake": FakeProvider()}, webhook_secrets={"fake": "whsec_"})


async def test_secrets_for_unregistered_providers_are_refused() -> None:
    with pytest.raises(UnknownProviderError, match="not registered: nope"):
        TaskManager(providers={"fake": FakeProvider()}, webhook_secrets={"nope": SECRET})


async def test_the_secret_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary_key = b"canary-key-7d1f0c5e-DO-NOT-LEAK!"
    canary = "whsec_" + base64.b64encode(canary_key).decode()
    manager = TaskManager(
        providers={"fake": FakeProvider(behaviour=RENDER)},
        poll=False,
        webhook_secrets={"fake": SecretStr(canary)},
    )
    texts = [repr(manager), repr(manager._webhooks)]
    async with manager:
        task = await manager.create("a")
        body = json.dumps({"type": "video.completed", "data": {"id": task.external_id}}).encode()
        with pytest.raises(WebhookVerificationError) as caught:
            await manager.handle_webhook("fake", sign(body), body)
        texts.append(str(caught.value))
        result = await manager.handle_webhook("fake", sign(body, key=canary_key), body)
        texts.append(repr(result))
    texts += [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    for text in texts:
        assert canary not in text and base64.b64encode(canary_key).decode() not in text


async def test_memory_deduplicator_forgets_after_the_ttl_and_beyond_its_size() -> None:
    clock = Clock()
    seen = MemoryDeduplicator(max_entries=2, ttl=60, clock=clock)
    assert await seen.claim("a") and not await seen.claim("a")
    clock.now += 61
    assert await seen.claim("a"), "an expired key is new again"
    assert await seen.claim("b") and await seen.claim("c")
    assert await seen.claim("a"), "the oldest key was evicted to stay within max_entries"
    assert not await seen.claim("c")
    await seen.release("c")
    assert await seen.claim("c"), "a released key can be claimed again"


async def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(expected: bytes, given: bytes) -> bool:
        compared.append((expected, given))
        return real(expected, given)

    monkeypatch.setattr("standardwebhooks.webhooks.hmac.compare_digest", spy)
    async with started() as setup:
        body = setup.event()
        headers = replace(
            sign(body), webhook_signature=f"{bad_signature(body)} {sign(body)['webhook-signature']}"
        )
        await setup.manager.handle_webhook("fake", headers, body)
    assert len(compared) == 2, "every v1 entry goes through hmac.compare_digest"
