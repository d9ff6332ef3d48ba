"""``python -m sora_tasks.testing`` serves the simulator on a port and explains bad input."""

from __future__ import annotations

import select
import signal
import subprocess
import sys

import httpx2
import pytest

from sora_tasks.testing.__main__ import main


def test_the_command_serves_the_simulator_until_interrupted() -> None:
    command = [
        sys.executable,
        "-m",
        "sora_tasks.testing",
        "--port=0",
        "--render-seconds=0",
        "--queue-seconds=0",
        "--fail-prompt=forbidden",
        "--api-key=sk-cli",
        "--fault=list:server_errors=1",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, "the simulator printed no address within 20 s"
            first = proc.stdout.readline()
            assert first.startswith("sora_tasks simulator listening on http://127.0.0.1:")
            url = first.split()[-1]
            headers = {"authorization": "Bearer sk-cli"}
            with httpx2.Client(base_url=url, headers=headers, timeout=10) as client:
                ok = client.post("/v1/videos", json={"prompt": "a cat"}).json()
                blocked = client.post("/v1/videos", json={"prompt": "forbidden"}).json()
                statuses = [client.get("/v1/videos").status_code for _ in range(2)]
                refused = client.get("/v1/videos", headers={"authorization": "Bearer x"})
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=20)
    assert ok["status"] == "completed"
    assert (blocked["status"], blocked["error"]["code"]) == ("failed", "moderation_blocked")
    assert statuses == [500, 200]
    assert refused.status_code == 401
    assert proc.returncode == 0, stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "create:rate_limits"], "ROUTE:KIND=COUNT"),
        (["--fault", "nowhere:rate_limits=1"], "ROUTE:KIND=COUNT"),
        (["--render-seconds", "-1"], "render_seconds"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert message in str(exited.value.code)


def test_without_uvicorn_the_command_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0"])
    assert 'pip install "sora-tasks[cli]"' in str(exited.value.code)
