"""The console's page and assets over real HTTP: uvicorn on 127.0.0.1, the REST router beside it.

What the page's script does in a browser is tested in tests/browser; here, what the server sends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
import pytest
from fastapi import FastAPI

from sora_tasks import PollingPolicy, TaskManager, TaskStatus
from sora_tasks.contrib.console import create_console_router
from sora_tasks.contrib.fastapi import create_router
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video
from tests.integration.test_fastapi_router import serving, user_from_header

pytestmark = pytest.mark.anyio

HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class Console:
    client: httpx2.AsyncClient
    manager: TaskManager

    async def page(self, user: str = "u1") -> httpx2.Response:
        return await self.client.get("/console/", headers={"x-user": user})


@asynccontextmanager
async def console(render_for: float = 3600) -> AsyncIterator[Console]:
    manager = TaskManager(
        providers={"fake": FakeProvider(behaviour=FakeBehaviour(render_for=render_for))},
        policy=PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(manager, current_user=user_from_header))
    app.include_router(create_console_router(manager, current_user=user_from_header))
    async with serving(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as client:
        yield Console(client, manager)


async def test_the_page_lists_only_the_callers_tasks_and_escapes_every_prompt() -> None:
    async with console() as served:
        mine = await served.manager.create(HOSTILE, user_id="u1")
        theirs = await served.manager.create("someone else's cat", user_id="u2")
        answer = await served.page()
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    html = answer.text
    assert f'data-id="{mine.id}"' in html
    assert theirs.id not in html and "someone else" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html


async def test_the_page_runs_only_its_own_script_and_style() -> None:
    async with console() as served:
        answer = await served.page()
        html = answer.text
        script = re.search(r'<script src="([^"]+)"', html)
        style = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
        assert script is not None and style is not None
        js = await served.client.get(script[1])
        css = await served.client.get(style[1])
        unknown = await served.client.get("/console/static/secrets.py")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "<script>" not in html and " on" not in html.split("<body", 1)[1].split(">", 1)[0]
    assert script[1].startswith("/console/static/console.js?v=")
    assert (js.status_code, js.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert "new EventSource(`${api}/events`)" in js.text
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert unknown.status_code == 404


async def test_the_page_is_behind_the_hosts_authentication() -> None:
    async with console() as served:
        answer = await served.client.get("/console/")
    assert answer.status_code == 401


async def test_a_finished_task_is_shown_with_a_player_on_the_content_route() -> None:
    async with console(render_for=0.05) as served:
        task = await served.manager.create("a calico cat playing piano", user_id="u1")
        finished = await served.manager.wait(task.id, timeout=10)
        assert finished.status is TaskStatus.COMPLETED
        html = (await served.page()).text
        source = f"/api/video/tasks/{task.id}/content"
        assert f'<video controls preload="metadata" src="{source}">' in html
        video = await served.client.get(source, headers={"x-user": "u1"})
    assert video.content == sample_video()


async def test_the_page_tells_the_script_where_the_api_is_mounted() -> None:
    manager = TaskManager(providers={"fake": FakeProvider()})
    app = FastAPI()
    app.include_router(create_router(manager, current_user=user_from_header, prefix="/v2"))
    app.include_router(
        create_console_router(manager, current_user=user_from_header, prefix="/", api_prefix="/v2")
    )
    async with (
        manager,
        serving(app) as url,
        httpx2.AsyncClient(base_url=url, timeout=10) as client,
    ):
        answer = await client.get("/", headers={"x-user": "u1"})
    assert '<body data-api="/v2" data-page-size="50">' in answer.text
    assert '<script src="/static/console.js?v=' in answer.text


@pytest.mark.parametrize("size", [0, 501])
async def test_a_page_size_out_of_range_is_refused_when_mounted(size: int) -> None:
    with pytest.raises(ValueError, match=f"page_size must be between 1 and 500, got {size}"):
        create_console_router(
            TaskManager(providers={"fake": FakeProvider()}),
            current_user=user_from_header,
            page_size=size,
        )


async def test_the_user_shown_is_escaped_too() -> None:
    async with console() as served:
        html = (await served.page(user='"><script>alert(1)</script>')).text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
