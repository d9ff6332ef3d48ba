"""fal webhooks through TaskManager.handle_webhook: Ed25519 against fal's keys, fetched as JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sora_tasks import TaskManager, TaskStatus
from sora_tasks._exceptions import WebhookVerificationError
from sora_tasks.providers import FalProvider
from sora_tasks.testing import FalSimulatorHarness, serve_in_thread
from sora_tasks.testing._simulator_asgi import Receive, Scope, Send
from sora_tasks.testing._simulator_state import Pin

pytestmark = pytest.mark.anyio


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


def signed(
    key: Ed25519PrivateKey, request_id: str, body: bytes, *, at: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    message = "\n".join((request_id, "user-1", timestamp, hashlib.sha256(body).hexdigest()))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": "user-1",
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


class JWKS:
    """A JWKS endpoint on a real socket that counts its fetches."""

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.fetches += 1
        entries = [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64.urlsafe_b64encode(raw_public(k)).rstrip(b"=").decode(),
            }
            for k in self.keys
        ]
        body = json.dumps({"keys": entries}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Rig:
    harness: FalSimulatorHarness
    manager: TaskManager
    key: Ed25519PrivateKey
    jwks: JWKS


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    key = Ed25519PrivateKey.generate()
    jwks = JWKS(key)
    with serve_in_thread(jwks) as jwks_url:
        harness = FalSimulatorHarness(
            adapter_options={"jwks_url": jwks_url + "/.well-known/jwks.json"}
        )
        try:
            async with TaskManager(providers={"fal": harness.provider}, poll=False) as manager:
                yield Rig(harness, manager, key, jwks)
        finally:
            await harness.aclose()


async def finished_task(rig: Rig) -> tuple[str, str, bytes]:
    task = await rig.manager.create(
        prompt="a kite", model="fal-ai/veo3.1", size="1280x720", seconds=8
    )
    task = await rig.manager.get(task.id)
    assert task.external_id is not None
    await rig.harness.pin(task.external_id, Pin("completed"))
    request_id = task.external_id.rpartition("/")[2]
    body = json.dumps({"request_id": request_id, "status": "OK", "payload": {}}).encode()
    return task.id, request_id, body


async def test_a_signed_delivery_re_reads_the_job(rig: Rig) -> None:
    task_id, request_id, body = await finished_task(rig)
    result = await rig.manager.handle_webhook("fal", signed(rig.key, request_id, body), body)
    assert result.outcome == "processed" and result.event_type == "OK"
    assert result.task is not None and result.task.id == task_id
    assert result.task.status is TaskStatus.COMPLETED
    assert rig.jwks.fetches == 1


async def test_a_replayed_delivery_is_a_duplicate_and_reads_nothing(rig: Rig) -> None:
    _, request_id, body = await finished_task(rig)
    headers = signed(rig.key, request_id, body)
    await rig.manager.handle_webhook("fal", headers, body)
    reads = rig.harness.sent("status")
    again = await rig.manager.handle_webhook("fal", headers, body)
    assert again.outcome == "duplicate" and rig.harness.sent("status") == reads


@pytest.mark.parametrize("fault", ["bad_signature", "tampered_body", "missing", "stale"])
async def test_an_untrustworthy_delivery_is_refused_and_changes_nothing(
    rig: Rig, fault: str
) -> None:
    task_id, request_id, body = await finished_task(rig)
    headers = signed(rig.key, request_id, body, at=time.time() - 301 if fault == "stale" else None)
    if fault == "bad_signature":
        headers["X-Fal-Webhook-Signature"] = "00" * 64
    elif fault == "missing":
        del headers["X-Fal-Webhook-User-Id"]
    elif fault == "tampered_body":
        body = body.replace(b"OK", b"ER")
    with pytest.raises(WebhookVerificationError):
        await rig.manager.handle_webhook("fal", headers, body)
    assert rig.harness.sent("status") == 0
    assert (await rig.manager.get(task_id)).status is TaskStatus.QUEUED


async def test_a_key_fal_does_not_publish_is_refused_after_one_refetch(rig: Rig) -> None:
    _, request_id, body = await finished_task(rig)
    await rig.manager.handle_webhook("fal", signed(rig.key, request_id, body), body)
    stranger = Ed25519PrivateKey.generate()
    _, other_id, other_body = await finished_task(rig)
    with pytest.raises(WebhookVerificationError, match="no fal key"):
        await rig.manager.handle_webhook("fal", signed(stranger, other_id, other_body), other_body)
    # the set was read once: a refetch waits a minute, so forged deliveries cannot hammer it
    assert rig.jwks.fetches == 1


async def test_a_rotated_key_is_picked_up_by_refetching() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    clock = Clock(time.time())
    jwks = JWKS(old)
    with serve_in_thread(jwks) as url:
        provider = FalProvider(
            "fal-key-rotation-test-0000",
            jwks_url=url + "/.well-known/jwks.json",
            webhook_clock=clock,
        )
        try:
            body = b'{"status": "OK"}'
            await provider.verify_webhook(signed(old, "r1", body), body)
            jwks.keys = [new]
            clock.now += 120  # past the minute that must pass between two fetches
            verified = await provider.verify_webhook(signed(new, "r2", body), body)
        finally:
            await provider.aclose()
    assert verified.webhook_id == "r2" and jwks.fetches == 2
    assert verified.external_ids[0] == "fal-ai/veo3.1/requests/r2"


async def test_pinned_keys_need_no_fetch() -> None:
    key = Ed25519PrivateKey.generate()
    provider = FalProvider(
        "fal-key-pinned-test-0000", webhook_keys=[raw_public(key)], jwks_url="http://127.0.0.1:9/x"
    )
    try:
        body = b"{}"
        verified = await provider.verify_webhook(signed(key, "r9", body), body)
        with pytest.raises(WebhookVerificationError):
            await provider.verify_webhook(signed(Ed25519PrivateKey.generate(), "r9", body), body)
    finally:
        await provider.aclose()
    assert verified.webhook_id == "r9"


async def test_the_harness_signs_deliveries_its_adapter_accepts() -> None:
    harness = FalSimulatorHarness()
    try:
        async with TaskManager(providers={"fal": harness.provider}, poll=False) as manager:
            task = await manager.create("a kite", model="fal-ai/veo3.1", seconds=8)
            assert task.external_id is not None
            await harness.pin(task.external_id, Pin("completed"))
            headers, body = harness.signed_webhook(task.external_id)
            result = await manager.handle_webhook("fal", headers, body)
            stale, stale_body = harness.signed_webhook(task.external_id, at=time.time() - 600)
            with pytest.raises(WebhookVerificationError, match="300 s"):
                await manager.handle_webhook("fal", stale, stale_body)
    finally:
        await harness.aclose()
    assert result.outcome == "processed" and result.event_type == "OK"
    assert result.task is not None and result.task.status is TaskStatus.COMPLETED
