"""What a hostile or broken provider cannot do: leak a key into a task, hang a retry past the
deadline, pass off another job's status, or crash the parser with nesting.

The HTTP answers are respx mocks (the fine-grained branches); the same limits against real
sockets are in ``tests/integration/test_http_limits.py``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
import respx
from pydantic import SecretStr

from sora_tasks import (
    ProviderRejectedError,
    ProviderResponseError,
    ProviderServerError,
    SubmissionUncertainError,
    TaskManager,
    TaskStatus,
)
from sora_tasks._deadlines import bounded
from sora_tasks._secrets import REDACTED, register_secret, scrub
from sora_tasks.providers import MultipartRelayProvider, OpenAIVideosProvider, ProviderJob
from sora_tasks.providers._errors import MAX_CODE_CHARS, error_details
from sora_tasks.providers._http import ProviderClient
from sora_tasks.providers._json import JSONLimitError, check_depth, loads
from tests.factories import submit_request
from tests.factories import video_object as video

pytestmark = pytest.mark.anyio

KEY = "sk-hardening-canary-4f0d-DO-NOT-LEAK"
BASE = "https://sora.test/v1"
VIDEOS = f"{BASE}/videos"
RELAY = "https://relay.test"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIVideosProvider]:
    adapter = OpenAIVideosProvider(api_key=KEY, base_url=BASE)
    try:
        yield adapter
    finally:
        await adapter.aclose()


@pytest.fixture
async def relay() -> AsyncIterator[MultipartRelayProvider]:
    adapter = MultipartRelayProvider(KEY, base_url=RELAY)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def texts_of(job: ProviderJob) -> str:
    return job.model_dump_json() + repr(job)


# --- secrets: echoed keys never land anywhere -----------------------------------------------------

ECHOES: dict[str, dict[str, object]] = {
    "code": {"error": {"code": KEY, "message": "bad request"}},
    "type": {"error": {"type": f"invalid:{KEY}", "message": "bad request"}},
    "key split by a control character": {"error": {"code": KEY[:9] + "\x00" + KEY[9:]}},
}


@pytest.mark.parametrize("payload", ECHOES.values(), ids=ECHOES.keys())
async def test_a_key_echoed_in_a_create_error_is_scrubbed(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider, payload: dict[str, object]
) -> None:
    httpx2_mock.post(VIDEOS).respond(400, json=payload)
    with pytest.raises(ProviderRejectedError) as caught:
        await openai.submit(submit_request())
    error = caught.value
    for text in (str(error), repr(error), str(error.code), repr(error.args)):
        assert KEY not in text
    assert REDACTED in f"{error} {error.code}"


async def test_a_key_echoed_in_a_create_error_never_reaches_the_stored_task(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(400, json={"error": {"code": KEY, "type": KEY}})
    async with TaskManager(providers={"openai": openai}, poll=False) as manager:
        task = await manager.create("a calico cat")
        stored = await manager.get(task.id)
    assert stored.status is TaskStatus.FAILED
    assert stored.error is not None and stored.error.code == REDACTED
    assert KEY not in stored.model_dump_json()


async def test_a_key_echoed_in_a_failed_status_is_scrubbed_from_the_job_and_the_task(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(200, json=video(id="v1", status="queued"))
    failed = video(
        id="v1",
        status="failed",
        error={"code": f"{KEY}-moderation", "type": KEY, "message": f"see {KEY}"},
    )
    httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=failed)
    job = await openai.status("v1")
    assert job.status is TaskStatus.FAILED
    assert KEY not in texts_of(job)
    async with TaskManager(providers={"openai": openai}, poll=False) as manager:
        task = await manager.refresh((await manager.create("a calico cat")).id)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None and task.error.code == f"{REDACTED}-moderation"
    assert KEY not in task.model_dump_json()


async def test_relay_status_words_urls_and_errors_are_scrubbed(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    body = {
        "task_id": "tk_1",
        "status": f"odd\x1b[31m{KEY}",
        "video_url": f"https://files.test/v.mp4?key={KEY}",
        "error_code": KEY,
        "fail_reason": KEY,
    }
    httpx2_mock.get(f"{RELAY}/v1/videos/tk_1").respond(200, json=body)
    job = await relay.status("tk_1")
    assert KEY not in texts_of(job)
    assert job.raw_status == f"odd[31m{REDACTED}"


async def test_a_job_id_holding_a_key_is_refused(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(200, json=video(id=f"video_{KEY}"))
    with pytest.raises(SubmissionUncertainError, match="contains a secret") as caught:
        await openai.submit(submit_request())
    assert KEY not in str(caught.value)


async def test_codes_are_clipped_and_stripped_of_control_characters(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    code = "\x1b]0;owned\x07" + "c" * 500
    httpx2_mock.post(VIDEOS).respond(422, json={"error": {"code": code, "message": "no\u202etxt"}})
    with pytest.raises(ProviderRejectedError) as caught:
        await openai.submit(submit_request())
    assert caught.value.code is not None
    assert len(caught.value.code) == MAX_CODE_CHARS
    assert caught.value.code.startswith("]0;ownedccc")
    assert "\u202e" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_the_registry_masks_every_registered_secret_longest_first() -> None:
    register_secret("")  # ignored
    register_secret("sk")  # too short to be a key: masking it would mangle "task"
    register_secret("sk-registry-test-1234")
    register_secret("Bearer sk-registry-test-1234")
    assert scrub("h: Bearer sk-registry-test-1234.") == f"h: {REDACTED}."
    assert scrub("k=sk-registry-test-1234") == f"k={REDACTED}"
    assert scrub("nothing here, no task") == "nothing here, no task"


def test_every_provider_client_registers_its_key() -> None:
    ProviderClient(provider="p", base_url=BASE, api_key=SecretStr("sk-registered-by-client-77"))
    assert scrub("x sk-registered-by-client-77 y") == f"x {REDACTED} y"


# --- another job's answer -------------------------------------------------------------------------


async def test_an_openai_status_about_another_job_is_refused(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=video(id="v2", status="completed"))
    with pytest.raises(
        ProviderResponseError, match="asked openai about job 'v1' but the answer is about job 'v2'"
    ):
        await openai.status("v1")


async def test_a_relay_status_about_another_job_is_refused(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    body = {"data": {"task_id": "tk_2", "status": "failed", "fail_reason": "not yours"}}
    httpx2_mock.get(f"{RELAY}/v1/videos/tk_1").respond(200, json=body)
    with pytest.raises(ProviderResponseError, match="about job 'tk_2'"):
        await relay.status("tk_1")


async def test_another_jobs_answer_is_a_failed_poll_not_a_failed_task(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(200, json=video(id="v1", status="queued"))
    httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=video(id="v2", status="failed"))
    async with TaskManager(providers={"openai": openai}, poll=False) as manager:
        task = await manager.refresh((await manager.create("a calico cat")).id)
    assert task.status is TaskStatus.QUEUED
    assert task.poll_failures == 1


# --- the deadline bounds retries too --------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_call_timeout_must_be_a_positive_number(value: float) -> None:
    with pytest.raises(ValueError, match="call_timeout must be a positive number"):
        ProviderClient(provider="p", base_url=BASE, api_key=None, call_timeout=value)
    with pytest.raises(ValueError, match="call_timeout"):
        OpenAIVideosProvider(api_key=KEY, base_url=BASE, call_timeout=value)


def test_max_response_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_response_bytes must be at least 1"):
        ProviderClient(provider="p", base_url=BASE, api_key=None, max_response_bytes=0)


async def test_no_retry_wait_is_begun_that_would_end_past_the_call_timeout(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.get(VIDEOS).respond(503, headers={"Retry-After": "5"})
    sleeps = Sleeps()
    client = ProviderClient(provider="p", base_url=BASE, api_key=None, call_timeout=2, sleep=sleeps)
    with pytest.raises(ProviderServerError):
        await client.request("GET", "videos")
    await client.aclose()
    assert sleeps == []
    assert route.call_count == 1


async def test_no_retry_wait_is_begun_that_would_end_past_the_callers_bound(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.get(VIDEOS)
    route.side_effect = [
        httpx.Response(503, headers={"Retry-After": "5"}),
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.Response(200),
    ]
    sleeps = Sleeps()
    client = ProviderClient(provider="p", base_url=BASE, api_key=None, sleep=sleeps)
    with bounded(4), pytest.raises(ProviderServerError):
        await client.request("GET", "videos")
    assert sleeps == []
    with bounded(4):  # a wait that fits is still taken
        response = await client.request("GET", "videos")
    await client.aclose()
    assert response.status_code == 200
    assert sleeps == [1.0]
    assert route.call_count == 3


# --- interop: only httpx2 clients -----------------------------------------------------------------


async def test_an_httpx_client_is_refused_and_an_httpx2_one_with_a_mock_transport_used() -> None:
    async with httpx.AsyncClient() as old:
        with pytest.raises(TypeError, match=r"must be an httpx2\.AsyncClient, not httpx\."):
            OpenAIVideosProvider(api_key=KEY, base_url=BASE, client=old)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"httpx2\.MockTransport"):
            MultipartRelayProvider(KEY, base_url=RELAY, client=old)  # type: ignore[arg-type]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=video(id="v1", status="in_progress", progress=40))

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        adapter = OpenAIVideosProvider(api_key=KEY, base_url=BASE, client=client)
        job = await adapter.status("v1")
    assert job.progress == 40


# --- JSON depth -----------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (nested(64), True),
        (nested(65), False),
        ('{"a": ' * 64 + "1" + "}" * 64, True),
        ('{"a": ' * 65 + "1" + "}" * 65, False),
        (json.dumps(["[" * 1000, "{" * 1000]), True),  # brackets in strings do not count
        (json.dumps(['\\"[[[' * 100, '"' + "[" * 100]), True),  # nor after escaped quotes
        ("[" * 10 + '"unterminated' + "[" * 100, True),  # left for json.loads to refuse
        ("[]" * 10_000, True),  # many, but shallow
    ],
)
def test_check_depth(text: str, ok: bool) -> None:
    if ok:
        check_depth(text, 64)
    else:
        with pytest.raises(JSONLimitError, match="deeper than 64 levels"):
            check_depth(text, 64)


def test_an_unterminated_string_full_of_escapes_is_scanned_in_linear_time() -> None:
    hostile = "[" * 10 + '"' + '\\"[' * 500_000  # no closing quote anywhere
    started = time.perf_counter()
    check_depth(hostile, 64)  # not retried from every one of the 500,000 quotes
    assert time.perf_counter() - started < 1


def test_loads_refuses_100000_levels_without_recursing() -> None:
    with pytest.raises(JSONLimitError) as caught:
        loads(nested(100_000).encode())
    assert caught.value.limit == 64


def test_loads_refuses_what_is_not_utf8() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        loads('["x"]'.encode("utf-16"))


def test_a_deep_error_body_counts_as_text() -> None:
    code, message = error_details(nested(100_000).encode())
    assert code is None and message is not None and message.startswith("[[[")


async def test_a_deep_create_error_body_is_a_rejection_not_a_crash(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(400, content=nested(50_000).encode())
    with pytest.raises(ProviderRejectedError):
        await openai.submit(submit_request())


@pytest.mark.parametrize("method", ["status", "find"])
async def test_deep_json_on_reads_is_a_provider_response_error(
    httpx2_mock: respx.Router, openai: OpenAIVideosProvider, method: str
) -> None:
    httpx2_mock.get(url__startswith=VIDEOS).respond(200, content=nested(100_000).encode())
    call: Any = openai.status("v1") if method == "status" else openai.find(submit_request())
    with pytest.raises(ProviderResponseError, match="deeper than 64 levels") as caught:
        await call
    assert caught.value.limit == 64
