"""``sora-tasks serve`` in a real process: the console and the REST API for one local user, the
engine polling the simulator in the same process, stopped by a signal."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app, sample_video, serve_in_thread
from tests.console_server import KEY, serving_console

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


@pytest.fixture
def simulator_url() -> Iterator[str]:
    app = create_simulator_app(render_seconds=0.5, queue_seconds=0, poll_after_ms=100, api_key=KEY)
    with serve_in_thread(app) as url:
        yield url


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_the_console_and_the_api_as_its_user_then_stops_on_a_signal(
    tmp_path: Path, simulator_url: str, stop: signal.Signals
) -> None:
    with serving_console(tmp_path, simulator_url, "--user", "alice", stop=stop) as served:
        assert served.url.startswith("http://127.0.0.1:")
        with httpx2.Client(base_url=served.url, timeout=10) as client:
            created = client.post("/api/video/tasks", json={"prompt": "a calico cat"})
            assert created.status_code == 201, created.text
            task = created.json()
            deadline = time.monotonic() + 30
            done = task
            while done["status"] in ("QUEUED", "PROCESSING"):
                assert time.monotonic() < deadline, f"the engine did not finish the task: {done}"
                done = client.get(f"/api/video/tasks/{task['videoId']}").json()
            page = client.get("/")
            video = client.get(f"/api/video/tasks/{task['videoId']}/content")
    assert task["userId"] == "alice"
    assert done["status"] == "COMPLETED", done
    assert page.status_code == 200
    assert '<span class="user">alice</span>' in page.text
    assert f'data-id="{task["videoId"]}"' in page.text
    assert video.content == sample_video()
    stderr = "".join(served.lines)
    assert served.process.returncode == 0, stderr
    assert "console stopped" in stderr
    assert "Traceback" not in stderr
    assert KEY not in stderr


def test_a_request_for_another_host_name_is_refused(tmp_path: Path, simulator_url: str) -> None:
    """A page elsewhere whose name was rebound to 127.0.0.1 must not reach the user's tasks."""
    with (
        serving_console(tmp_path, simulator_url) as served,
        httpx2.Client(base_url=served.url, timeout=10) as client,
    ):
        rebound = client.get("/api/video/tasks", headers={"host": "attacker.example:8000"})
        local = client.get("/api/video/tasks", headers={"host": "localhost:8000"})
    assert rebound.status_code == 400
    assert local.status_code == 200


def test_serve_stops_on_sigterm_with_a_live_event_stream_open(
    tmp_path: Path, simulator_url: str
) -> None:
    with (
        serving_console(tmp_path, simulator_url) as served,
        httpx2.Client(base_url=served.url, timeout=30) as client,
    ):
        created = client.post("/api/video/tasks", json={"prompt": "a calico cat"})
        assert created.status_code == 201, created.text
        with client.stream("GET", "/api/video/events") as events:
            lines = events.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: task"
            stopping = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            for _ in lines:
                pass
            code = served.process.wait(timeout=30)
            took = time.monotonic() - stopping
    stderr = "".join(served.lines)
    assert code == 0, stderr
    assert took < 15, f"took {took:.1f} s to stop with a stream open"
    assert "console stopped" in stderr
    assert "Traceback" not in stderr
