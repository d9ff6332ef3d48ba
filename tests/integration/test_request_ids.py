"""The provider's request id reaches the error, the failed task and the log, over real HTTP.

The server is a small ASGI app on 127.0.0.1 that answers the way a provider does when it
refuses a request: an error status, a JSON error body and the request's id in a header.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sora_tasks import (
    PollingPolicy,
    ProviderRejectedError,
    ProviderServerError,
    TaskManager,
    TaskStatus,
)
from sora_tasks.testing import serve_in_thread

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def refusing_app(status: int, header: str, request_id: str) -> Starlette:
    """Every request answered ``status`` with ``header: request_id`` and a JSON error."""

    async def refuse(request: Request) -> JSONResponse:
        error = {"error": {"code": "bad_prompt", "message": "refused"}}
        return JSONResponse(error, status_code=status, headers={header: request_id})

    return Starlette(routes=[Route("/{path:path}", refuse, methods=["GET", "POST"])])


@pytest.fixture
def refusing_400() -> Iterator[str]:
    with serve_in_thread(refusing_app(400, "x-request-id", "req_7f3a")) as url:
        yield url


async def test_a_refused_create_records_the_request_id_in_the_task_and_the_log(
    refusing_400: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sora_tasks.providers import OpenAIVideosProvider

    provider = OpenAIVideosProvider(api_key="sk-rid-test", base_url=f"{refusing_400}/v1")
    caplog.set_level(logging.INFO, logger="sora_tasks")
    async with TaskManager(providers=provider) as manager:
        task = await manager.create("a cat", seconds=4)
        task = await manager.wait(task.id, timeout=10)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "bad_prompt"
    assert task.error.request_id == "req_7f3a"
    finished = [r for r in caplog.records if getattr(r, "action", None) == "finish"]
    assert finished
    assert finished[-1].request_id == "req_7f3a"  # type: ignore[attr-defined]
    assert "request_id=req_7f3a" in finished[-1].getMessage()


async def test_a_failed_status_call_carries_the_request_id() -> None:
    from sora_tasks.providers import OpenAIVideosProvider

    with serve_in_thread(refusing_app(503, "x-request-id", "req_5xx")) as url:
        provider = OpenAIVideosProvider(api_key="sk-rid-test", base_url=f"{url}/v1", max_retries=0)
        try:
            with pytest.raises(ProviderServerError) as caught:
                await provider.status("video_1")
        finally:
            await provider.aclose()
    assert caught.value.request_id == "req_5xx"


@pytest.mark.parametrize(
    "header", ["x-request-id", "X-Fal-Request-Id", "x-goog-request-id", "request-id"]
)
async def test_each_providers_request_id_header_is_read(header: str) -> None:
    from sora_tasks.providers import OpenAIVideosProvider

    with serve_in_thread(refusing_app(404, header, "rid-1")) as url:
        provider = OpenAIVideosProvider(api_key="sk-rid-test", base_url=f"{url}/v1")
        try:
            with pytest.raises(ProviderRejectedError) as caught:
                await provider.status("video_1")
        finally:
            await provider.aclose()
    assert caught.value.request_id == "rid-1"


async def test_an_uncertain_create_keeps_the_request_id_of_the_5xx_that_made_it_so() -> None:
    from sora_tasks.providers import OpenAIVideosProvider

    with serve_in_thread(refusing_app(502, "x-request-id", "req_gw")) as url:
        provider = OpenAIVideosProvider(api_key="sk-rid-test", base_url=f"{url}/v1")
        policy = PollingPolicy(submit_uncertain="fail")
        async with TaskManager(providers=provider, policy=policy) as manager:
            task = await manager.create("a cat", seconds=4)
            task = await manager.wait(task.id, timeout=10)
    assert task.error is not None
    assert (task.error.code, task.error.request_id) == ("submit_uncertain", "req_gw")


async def test_the_request_id_of_a_failed_task_survives_the_sql_store(
    refusing_400: str, tmp_path: Path
) -> None:
    from sora_tasks.providers import OpenAIVideosProvider
    from sora_tasks.storage import SQLStore

    provider = OpenAIVideosProvider(api_key="sk-rid-test", base_url=f"{refusing_400}/v1")
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    async with TaskManager(providers=provider, store=store) as manager:
        task = await manager.wait((await manager.create("a cat")).id, timeout=10)
    reopened = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    try:
        stored = await reopened.get(task.id)
    finally:
        await reopened.close()
    assert stored.error is not None
    assert stored.error.request_id == "req_7f3a"
