"""The console in a real browser: ``sora-tasks serve`` in its own process, the simulator behind it
on 127.0.0.1, chromium clicking through the page.

One walk through the page, in the order a user would: bad input first (the API's own messages,
nothing stored), then a task whose prompt is hostile HTML, watched as its progress bar moves and
its video plays, and one more that is cancelled on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, Route

from sora_tasks.testing import create_simulator_app, serve_in_thread
from tests.console_server import KEY, Served, serving_console
from tests.images import make_image

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HOSTILE = "<img src=x onerror=alert(1)>"
WAIT_MS = 30_000

# a row's elements, found by the task id the row is for
ROW = "(id) => [...document.querySelectorAll('#tasks > .task')].find((r) => r.dataset.id === id)"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # renders slowly enough for the bar to be seen between 0 and 100, and for a cancel
    app = create_simulator_app(render_seconds=6, queue_seconds=0.5, poll_after_ms=200, api_key=KEY)
    with serve_in_thread(app) as simulator, serving_console(tmp_path, simulator) as console:
        yield console


@pytest.fixture
def api(served: Served) -> Iterator[httpx2.Client]:
    """The REST API the page speaks to, for the test's own checks."""
    with httpx2.Client(base_url=served.url, timeout=10) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def on_row(page: Page, video_id: str, body: str) -> Any:
    """Evaluate ``body`` (an expression over ``row``) on the task's row, now."""
    return page.evaluate(f"(id) => {{ const row = ({ROW})(id); return {body}; }}", video_id)


def wait_on_row(page: Page, video_id: str, condition: str, timeout: float = WAIT_MS) -> None:
    """Wait until ``condition`` (an expression over ``row``) holds for the task's row."""
    page.wait_for_function(
        f"(id) => {{ const row = ({ROW})(id); return !!row && ({condition}); }}",
        arg=video_id,
        timeout=timeout,
    )


def create_from_page(page: Page, prompt: str) -> str:
    """Submit ``prompt`` from the form; the id of the row that appears for it."""
    rows = page.locator("#tasks > .task").count()
    page.fill("#prompt", prompt)
    page.click("#create button[type=submit]")
    page.wait_for_function(
        "(n) => document.querySelectorAll('#tasks > .task').length > n", arg=rows, timeout=WAIT_MS
    )
    # the form is ready for the next task once its answer is in (the row may come first, from
    # the event stream)
    page.wait_for_function(
        "() => !document.querySelector('#create button[type=submit]').disabled", timeout=WAIT_MS
    )
    first: Locator = page.locator("#tasks > .task").first
    assert first.locator(".prompt").text_content() == prompt
    video_id = first.get_attribute("data-id")
    assert video_id is not None and video_id.startswith("video_")
    return video_id


def api_error(api: httpx2.Client, body: dict[str, Any]) -> str:
    answer = api.post("/api/video/tasks", json=body)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert isinstance(message, str)
    return message


def test_create_watch_play_and_cancel_from_the_page(
    served: Served, api: httpx2.Client, page: Page, artifacts: Path, tmp_path: Path
) -> None:
    dialogs: list[str] = []
    requested: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{served.url}/")
    page.wait_for_selector("#live[data-state=open]", timeout=WAIT_MS)

    # bad input: the form shows the API's own message, and nothing is stored
    for body in ({"prompt": ""}, {"prompt": "a" * 10_001}):
        page.fill("#prompt", body["prompt"])
        page.click("#create button[type=submit]")
        expected = api_error(api, body)
        page.wait_for_function(
            "(text) => document.getElementById('create-error').textContent === text",
            arg=expected,
            timeout=WAIT_MS,
        )
    assert "10,000" in (page.text_content("#create-error") or "")
    image = tmp_path / "small.png"
    image.write_bytes(make_image(64, 64))
    page.fill("#prompt", "a calico cat, from a picture")
    page.fill("input[name=size]", "1280x720")
    page.set_input_files("input[name=image]", image)
    page.click("#create button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('create-error').textContent.includes('64x64 pixels')",
        timeout=WAIT_MS,
    )
    page.screenshot(path=artifacts / "console-error.png", full_page=True)
    page.set_input_files("input[name=image]", [])
    page.fill("input[name=size]", "")
    assert api.get("/api/video/tasks").json()["items"] == []

    # a hostile prompt is shown as text, runs nothing and loads nothing
    watched = create_from_page(page, HOSTILE)
    assert page.text_content("#create-error") == ""
    assert page.locator("#tasks img").count() == 0

    cancelled = create_from_page(page, "a red fox running through snow")

    # the bar moves: first a value strictly between 0 and 100, then a larger one
    wait_on_row(
        page,
        watched,
        "row.dataset.status === 'PROCESSING'"
        " && (p => p.value > 0 && p.value < 100)(row.querySelector('progress'))",
    )
    first = on_row(page, watched, "row.querySelector('progress').value")
    page.screenshot(path=artifacts / "console-progress.png", full_page=True)
    wait_on_row(page, watched, f"row.querySelector('progress').value > {first}")

    # cancel the other one while it runs
    assert on_row(page, cancelled, "row.dataset.status") in ("QUEUED", "PROCESSING")
    page.locator(f"#tasks > .task[data-id='{cancelled}'] button.cancel").click()
    wait_on_row(page, cancelled, "row.dataset.status === 'CANCELLED'")
    assert api.get(f"/api/video/tasks/{cancelled}").json()["status"] == "CANCELLED"
    assert not page.locator(f"#tasks > .task[data-id='{cancelled}'] button.cancel").is_visible()

    # the finished video plays
    wait_on_row(page, watched, "row.dataset.status === 'COMPLETED' && !!row.querySelector('video')")
    played = page.evaluate(
        f"""async (id) => {{
            const video = ({ROW})(id).querySelector('video');
            video.muted = true;
            await video.play();
            return video.src;
        }}""",
        watched,
    )
    assert played.endswith(f"/api/video/tasks/{watched}/content")
    wait_on_row(
        page,
        watched,
        "(v => v.readyState >= 2 && (v.currentTime > 0 || v.ended))(row.querySelector('video'))",
    )
    page.screenshot(path=artifacts / "console.png", full_page=True)

    # after a reload the server renders the same: text, a player, the cancelled status
    page.reload()
    page.wait_for_selector("#live[data-state=open]", timeout=WAIT_MS)
    assert on_row(page, watched, "row.querySelector('.prompt').textContent") == HOSTILE
    assert on_row(page, watched, "!!row.querySelector('video')")
    assert on_row(page, cancelled, "row.dataset.status") == "CANCELLED"
    assert page.locator("#tasks img").count() == 0
    assert dialogs == []
    assert not [url for url in requested if url.rstrip("/").endswith("/x")]


def test_the_page_listens_again_after_the_event_route_answers_an_error(
    served: Served, api: httpx2.Client, page: Page
) -> None:
    refused: list[str] = []

    def refuse_once(route: Route) -> None:
        if refused:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.fulfill(status=503, body="a proxy's error page")

    page.route("**/api/video/events", refuse_once)
    page.goto(f"{served.url}/")
    # a browser gives up on an error answer: the page says so, then tries again by itself
    page.wait_for_selector("#live[data-state=closed]", timeout=WAIT_MS)
    created = api.post("/api/video/tasks", json={"prompt": "made while the page was not live"})
    assert created.status_code == 201, created.text
    page.wait_for_selector("#live[data-state=open]", timeout=WAIT_MS)
    wait_on_row(page, created.json()["videoId"], "row.dataset.status !== ''")
    assert refused == [f"{served.url}/api/video/events"]
