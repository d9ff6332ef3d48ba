"""``sora-tasks webhooks list/retry`` and ``--notify-url`` in real processes, with a worker
delivering to a real receiver on 127.0.0.1 (allowed explicitly in the config file)."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sora_tasks.testing import serve_in_thread
from tests.acceptance.test_cli import CANARY, CLI, CONFIG, clean_environment
from tests.acceptance.test_cli import simulator_url as simulator_url  # the fixture
from tests.webhook_receiver import Answer, Receiver

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

SECRET = "whsec_" + base64.b64encode(b"cli-webhook-secret-of-32-bytes!!").decode()
WEBHOOKS = """
[webhooks]
allow_private = true
max_attempts = 1
first_retry = 0.1
idle_wait = 0.05
"""


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(SECRET, lambda _, __: Answer(status=500))


@pytest.fixture
def hooks(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver) as url:
        yield f"{url}/hooks"


@pytest.fixture
def hooks_cli(tmp_path: Path, simulator_url: str) -> CLI:
    config = tmp_path / "sora-tasks.toml"
    config.write_text(CONFIG.format(db=tmp_path / "tasks.db", url=simulator_url) + WEBHOOKS)
    env = {**clean_environment(tmp_path), "SIM_KEY": CANARY, "SORA_TASKS_WEBHOOK_SECRET": SECRET}
    return CLI(tmp_path, env)


def until(cli: CLI, *args: str, timeout: float = 30) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while not (found := cli(*args, "--json").json()):
        assert time.monotonic() < deadline, f"nothing for {args} within {timeout} s"
    return list(found)


def test_a_failed_delivery_is_listed_then_rearmed_and_delivered(
    hooks_cli: CLI, hooks: str, receiver: Receiver
) -> None:
    task_id = hooks_cli("submit", "a long render", "--notify-url", hooks).stdout.strip()
    hooks_cli("cancel", task_id)
    (pending,) = hooks_cli("webhooks", "list", "--json").json()
    assert (pending["task_id"], pending["type"], pending["state"]) == (
        task_id,
        "video.cancelled",
        "pending",
    )
    with hooks_cli.popen("worker", "--log-level", "warning") as worker:
        try:
            (failed,) = until(hooks_cli, "webhooks", "list", "--state", "failed")
            assert failed["last_error"] == "HTTP 500"
            receiver.answer = lambda _, __: Answer(status=200)
            assert hooks_cli("webhooks", "retry", "--failed").stdout.strip() == "1"
            (delivered,) = until(hooks_cli, "webhooks", "list", "--state", "delivered")
            assert delivered["id"] == failed["id"]
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert [item.id for item in receiver.received] == [failed["id"]] * 2
    table = hooks_cli("webhooks", "list", "--task", task_id).stdout
    assert "delivered" in table
    assert str(failed["id"]) in table


def test_bad_webhook_input_is_one_error_line(hooks_cli: CLI) -> None:
    refused = hooks_cli("submit", "a cat", "--notify-url", "http://169.254.169.254/", expect=2)
    assert "--notify-url points at a cloud metadata address" in refused.errors[0]
    assert hooks_cli("list", "--json").json()["items"] == []
    neither = hooks_cli("webhooks", "retry", expect=2)
    assert "--failed" in neither.errors[0]
    none = hooks_cli("webhooks", "retry", "msg_unknown", expect=1)
    assert "none of those deliveries is failed" in none.errors[0]
