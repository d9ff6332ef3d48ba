"""The same fal job through the official ``fal-client`` and through FalProvider, compared on the
wire: method, path, query, the headers that matter and the JSON body of every call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fal_client
import fal_client.client
import pytest

from sora_tasks.providers import FalProvider, SubmitRequest
from sora_tasks.testing import create_simulator_app, serve_in_thread
from sora_tasks.testing._simulator_asgi import Receive, Scope, Send

pytestmark = pytest.mark.anyio

KEY = "fal-equivalence-key-0123"
MODEL = "fal-ai/veo3.1/fast"
HOOK = "https://hooks.example/fal"
_HEADERS = ("authorization", "content-type", "x-fal-queue-priority", "x-fal-request-timeout")
_TRUE = {"1", "true", "True"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class Recorder:
    """Records every request whole, then lets the simulator answer it."""

    def __init__(self) -> None:
        self.app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=0)
        self.calls: list[Call] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        self.calls.append(
            Call(
                scope["method"],
                scope["path"],
                {k: "1" if k == "logs" and v in _TRUE else v for k, v in query.items()},
                {name: headers[name] for name in _HEADERS if name in headers},
                json.loads(raw) if raw else None,
            )
        )
        sent = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rig = Recorder()
    with serve_in_thread(rig) as url:
        yield rig, url


async def test_fal_client_and_fal_provider_send_the_same_requests(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, url = recorder
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{url}/fal/")
    arguments = {
        "prompt": "a paper boat in the rain",
        "duration": "6s",
        "aspect_ratio": "9:16",
        "resolution": "720p",
        "negative_prompt": "blur",
        "seed": 11,
        "generate_audio": False,
        "auto_fix": False,
    }
    official = fal_client.AsyncClient(key=KEY)
    handle = await official.submit(
        MODEL, arguments, webhook_url=HOOK, priority="low", start_timeout=600
    )
    await official.status(MODEL, handle.request_id, with_logs=True)
    result = await handle.get()
    with pytest.raises(fal_client.client.FalClientHTTPError, match="ALREADY_COMPLETED"):
        await official.cancel(MODEL, handle.request_id)  # done already: refused, as fal does
    # fal_client.AsyncClient never closes the httpx client it caches; close it, or it leaks
    await (await official._client).aclose()
    theirs = list(rig.calls)
    rig.calls.clear()

    ours = FalProvider(KEY, base_url=f"{url}/fal", webhook_url=HOOK, priority="low")
    try:
        job = await ours.submit(
            SubmitRequest(
                task_id="video_1",
                idempotency_key="sub_1",
                prompt="a paper boat in the rain",
                model=MODEL,
                size="720x1280",
                seconds=6,
                aspect_ratio="9:16",
                resolution="720p",
                negative_prompt="blur",
                seed=11,
                audio=False,
                provider_options={"auto_fix": False},
                deadline_at=datetime.now(UTC) + timedelta(seconds=600),
            )
        )
        await ours.status(job.external_id)
        done = await ours.status(job.external_id)
        await ours.cancel(job.external_id)
    finally:
        await ours.aclose()
    mine = rig.calls
    their_id, my_id = handle.request_id, job.external_id.rpartition("/")[2]
    assert done.result_url == result["video"]["url"].replace(their_id, my_id)

    def wire(call: Call, request_id: str) -> tuple[str, str, dict[str, str], Any]:
        return call.method, call.path.replace(request_id, "{id}"), call.query, call.body

    def one(calls: list[Call], method: str, suffix: str) -> Call:
        found = [c for c in calls if c.method == method and c.path.endswith(suffix)]
        assert found, (method, suffix)
        return found[0]

    pairs = [
        (theirs[0], mine[0]),  # submit
        (one(theirs, "GET", "/status"), one(mine, "GET", "/status")),  # status with logs
        (one(theirs, "GET", their_id), one(mine, "GET", my_id)),  # result
        (one(theirs, "PUT", "/cancel"), one(mine, "PUT", "/cancel")),  # cancel
    ]
    for official_call, our_call in pairs:
        assert wire(official_call, their_id) == wire(our_call, my_id)
        assert official_call.headers.keys() == our_call.headers.keys()
        assert official_call.headers["authorization"] == f"Key {KEY}"
        for name, value in official_call.headers.items():
            if name == "x-fal-request-timeout":
                assert abs(float(value) - float(our_call.headers[name])) < 5
            else:
                assert our_call.headers[name] == value
    assert theirs[0].query == {"fal_webhook": HOOK.replace(":", "%3A").replace("/", "%2F")}
