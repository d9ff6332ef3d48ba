"""``sora-tasks`` in real processes against the simulator on 127.0.0.1, state in an SQLite file."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

import sora_tasks
from sora_tasks.testing import create_simulator_app, sample_video, serve_in_thread

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

CANARY = "sk-canary-4b9e2f7a"

CONFIG = """
default_provider = "sim"
database_url = "sqlite+aiosqlite:///{db}"

[providers.sim]
type = "openai"
base_url = "{url}/v1"
api_key_env = "SIM_KEY"

[providers.relay]
type = "relay"
base_url = "{url}"
api_key_env = "SIM_KEY"

[providers.relay.dialect]
path_prefix = "/relay/v1/videos"

[policy]
deadline = "2m"

[policy.schedule]
first_interval = 0.2
dense_interval = 0.2
max_interval = 1.0
"""


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@dataclass(frozen=True)
class CLI:
    """Runs ``python -m sora_tasks`` in ``cwd`` with a clean environment plus ``env``."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, expect: int = 0, **env: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "sora_tasks", *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert result.code == expect, f"{args}: exit {result.code}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        assert CANARY not in result.stdout + result.stderr
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "sora_tasks", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def clean_environment(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "SORA_TASKS_"))
    }
    # the defaults (user data and config dirs) must land in the test's directory
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return env


@pytest.fixture
def simulator_url() -> Iterator[str]:
    app = create_simulator_app(
        render_seconds=1,
        queue_seconds=0,
        poll_after_ms=100,
        fail_prompts=["forbidden"],
        api_key=CANARY,
    )
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def cli(tmp_path: Path, simulator_url: str) -> CLI:
    """The command line configured by a TOML file naming two providers on the simulator."""
    config = tmp_path / "sora-tasks.toml"
    config.write_text(CONFIG.format(db=tmp_path / "tasks.db", url=simulator_url))
    return CLI(tmp_path, {**clean_environment(tmp_path), "SIM_KEY": CANARY})


def test_generate_without_any_configuration_uses_the_fake_provider(tmp_path: Path) -> None:
    bare = CLI(tmp_path, clean_environment(tmp_path))
    result = bare("generate", "a calico cat playing piano", "--output", "cat.mp4")
    assert "fake provider" in result.stderr
    assert result.stdout.strip() == "cat.mp4"
    assert (tmp_path / "cat.mp4").read_bytes() == sample_video()
    listed = bare("list", "--json").json()
    assert [task["provider"] for task in listed["items"]] == ["fake"]


def test_generate_end_to_end_against_the_simulator(cli: CLI, tmp_path: Path) -> None:
    result = cli("generate", "a calico cat playing piano", "-o", "cat.mp4", "--json")
    task = result.json()
    assert task["status"] == "COMPLETED"
    assert task["provider"] == "sim"
    assert task["result"]["local_path"] == "cat.mp4"
    assert (tmp_path / "cat.mp4").read_bytes() == sample_video()
    assert "completed" in result.stderr


def test_submit_status_wait_download_list_stats_across_invocations(
    cli: CLI, tmp_path: Path
) -> None:
    submitted = cli("submit", "a dog on a skateboard", "--user", "u1", "--json").json()
    task_id = submitted["id"]
    assert submitted["status"] in ("QUEUED", "PROCESSING")
    assert submitted["external_id"]

    plain_id = cli("submit", "a second job").stdout.strip()
    assert plain_id.startswith("video_")

    status = cli("status", task_id, "--json").json()
    assert (status["id"], status["user_id"]) == (task_id, "u1")

    waited = cli("wait", task_id, "--timeout", "60", "--json").json()
    assert waited["status"] == "COMPLETED"
    assert waited["progress"] == 100

    downloaded = cli("download", task_id, "--output", "dog.mp4").stdout.strip()
    assert downloaded == "dog.mp4"
    assert (tmp_path / "dog.mp4").read_bytes() == sample_video()

    by_user = cli("list", "--user", "u1", "--json").json()
    assert [task["id"] for task in by_user["items"]] == [task_id]
    first = cli("list", "--limit", "1", "--json").json()
    assert [task["id"] for task in first["items"]] == [plain_id]
    assert first["next_cursor"]
    second = cli("list", "--limit", "1", "--cursor", first["next_cursor"], "--json").json()
    assert [task["id"] for task in second["items"]] == [task_id]
    completed = cli("list", "--status", "completed", "--user", "u1", "--json").json()
    assert [task["id"] for task in completed["items"]] == [task_id]
    assert cli("list", "--status", "FAILED", "--json").json()["items"] == []
    table = cli("list").stdout
    assert task_id in table
    assert plain_id in table

    stats = cli("stats", "--json").json()
    assert stats["total"] == 2
    # wait polled every due task, so the second one may have finished too
    assert stats["by_status"]["COMPLETED"] in (1, 2)
    assert stats["by_provider"] == {"sim": 2}


def test_frame_forms_and_provider_options_reach_the_task(cli: CLI) -> None:
    task = cli(
        "submit",
        "a tall dog",
        "--aspect-ratio",
        "9:16",
        "--resolution",
        "720p",
        "--option",
        "quality=high",
        "--option",
        'style={"tone": "warm"}',
        "--provider",
        "relay",
        "--json",
    ).json()
    assert (task["size"], task["aspect_ratio"], task["resolution"]) == ("720x1280", "9:16", "720p")
    assert task["provider_options"] == {"quality": "high", "style": {"tone": "warm"}}
    assert task["external_id"]


def test_a_second_provider_from_the_file_is_chosen_with_provider(cli: CLI) -> None:
    task = cli("submit", "a relay job", "--provider", "relay", "--json").json()
    assert task["provider"] == "relay"
    assert task["external_id"]
    assert cli("status", task["id"], "--json").json()["provider"] == "relay"


def test_cancel_stops_a_task_and_is_idempotent(cli: CLI) -> None:
    task_id = cli("submit", "a long render").stdout.strip()
    assert cli("cancel", task_id, "--json").json()["status"] == "CANCELLED"
    assert cli("cancel", task_id, "--json").json()["status"] == "CANCELLED"
    waited = cli("wait", task_id, expect=1)
    assert f"task {task_id} ended CANCELLED" in waited.errors[0]


def test_cleanup_deletes_finished_tasks_older_than_the_duration(cli: CLI) -> None:
    cli("generate", "a short clip", "-o", "clip.mp4")
    running = cli("submit", "still running").stdout.strip()
    assert cli("cleanup", "--older-than", "30d", "--json").json()["removed"] == 0
    assert cli("cleanup", "--older-than", "0s", "--json").json()["removed"] == 1
    remaining = cli("list", "--json").json()["items"]
    assert [task["id"] for task in remaining] == [running]


def test_db_upgrade_creates_the_database_it_is_pointed_at(cli: CLI, tmp_path: Path) -> None:
    target = tmp_path / "fresh.db"
    result = cli("db", "upgrade", "--database-url", f"sqlite+aiosqlite:///{target}", "--json")
    assert result.json()["upgraded"] is True
    assert target.stat().st_size > 0
    cli("db", "upgrade", "--database-url", str(target))
    listed = cli("list", "--database-url", str(target), "--json").json()
    assert listed == {"items": [], "next_cursor": None}


def test_db_copy_moves_every_task_and_can_be_run_again(cli: CLI, tmp_path: Path) -> None:
    first = cli("submit", "a dog on a skateboard", "--user", "u1", "--json").json()
    second = cli("submit", "a cat on a piano", "--user", "u2", "--json").json()
    target = tmp_path / "copy.db"
    copied = cli("db", "copy", "--to", str(target), "--json").json()
    assert (copied["copied"], copied["skipped"]) == (2, 0)
    again = cli("db", "copy", "--to", str(target)).stderr
    assert "copied 0 tasks" in again and "2 were there already" in again
    listed = cli("list", "--database-url", str(target), "--json").json()["items"]
    assert {(task["id"], task["external_id"]) for task in listed} == {
        (first["id"], first["external_id"]),
        (second["id"], second["external_id"]),
    }
    assert all(task["lease_owner"] is None for task in listed)


def test_a_failed_task_exits_1_with_the_providers_reason(cli: CLI) -> None:
    result = cli("generate", "something forbidden", "-o", "no.mp4", "--json", expect=1)
    assert result.json()["status"] == "FAILED"
    assert result.json()["error"]["code"] == "moderation_blocked"
    (error,) = result.errors
    assert "moderation" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("generate", "x" * 10_001), "10,000"),
        (("generate", "a cat", "--image", "not-an-image.png"), "not an image"),
        (("generate", "a cat", "--model", "sora-9"), "model 'sora-9'"),
        (("generate", "a cat", "--size", "640x480"), "size '640x480'"),
        (("generate", "a cat", "--seconds", "many"), "--seconds"),
        (("generate", "a cat", "--aspect-ratio", "wide"), "--aspect-ratio must look like W:H"),
        (("generate", "a cat", "--aspect-ratio", "4:3"), "size '960x720' is not offered"),
        (("submit", "a cat", "--negative-prompt", "x"), "does not take --negative-prompt"),
        (("submit", "a cat", "--option", "quality"), "--option 'quality' is not KEY=VALUE"),
        (("submit", "a cat", "--seconds", "5"), "pass --allow-unsupported to send it"),
        (("submit", "a cat", "--model", "sora-9"), "as --option KEY=VALUE, or --allow-unsupported"),
        (("submit", "a cat", "--provider", "nope"), "no provider named 'nope'"),
        (("status", "video_00000000-0000-0000-0000-000000000000"), "not found"),
        (("wait",), "Missing argument"),
        (("download", "nope"), "not found"),
        (("cleanup", "--older-than", "a while"), "not a duration"),
        (("list", "--status", "DONE"), "--status"),
        (("list", "--config", "missing.toml"), "does not exist"),
        (("stats", "--database-url", "nosuchdb://x/y"), "nosuchdb"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    cli: CLI, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "not-an-image.png").write_text("hello")
    result = cli(*args, expect=2)
    (error,) = result.errors
    assert message in error
    assert result.stdout == ""


def test_a_broken_config_file_is_one_error_line_and_exit_2(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "sora-tasks.toml").write_text("[providers.sim\n")
    result = cli("list", expect=2)
    (error,) = result.errors
    assert "not valid TOML" in error


def test_a_key_in_the_config_file_is_used_warned_about_and_never_printed(
    cli: CLI, tmp_path: Path, simulator_url: str
) -> None:
    inline = tmp_path / "inline.toml"
    inline.write_text(
        f'[providers.sim]\ntype = "openai"\nbase_url = "{simulator_url}/v1"\napi_key = "{CANARY}"\n'
    )
    result = cli("submit", "a cat", "--config", str(inline), "--json")
    assert "api_key_env" in result.stderr
    assert result.json()["external_id"]


def test_openai_environment_variables_alone_configure_the_cli(
    tmp_path: Path, simulator_url: str
) -> None:
    env = {
        **clean_environment(tmp_path),
        "OPENAI_API_KEY": CANARY,
        "OPENAI_BASE_URL": f"{simulator_url}/v1",
        "SORA_TASKS_DATABASE_URL": str(tmp_path / "env.db"),
    }
    from_env = CLI(tmp_path, env)
    task = from_env("submit", "a cat", "--json").json()
    assert task["provider"] == "openai"
    refreshed = from_env("status", task["id"], "--refresh", "--json").json()
    assert refreshed["external_id"] == task["external_id"]
    assert (tmp_path / "env.db").exists()
    assert from_env("status", task["id"], "--json", SORA_TASKS_PROVIDER="fake").json()["id"]


def test_worker_polls_until_sigterm_then_stops_cleanly(cli: CLI) -> None:
    task_id = cli("submit", "a job for the worker").stdout.strip()
    with cli.popen("worker", "--log-level", "warning") as worker:
        try:
            assert worker.stderr is not None
            ready, _, _ = select.select([worker.stderr], [], [], 30)
            assert ready, "the worker said nothing within 30 s"
            assert "worker started" in worker.stderr.readline()
            deadline = time.monotonic() + 30
            while cli("status", task_id, "--json").json()["status"] != "COMPLETED":
                assert time.monotonic() < deadline, "the worker did not complete the task"
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "worker stopped" in stderr
    assert "Traceback" not in stderr


def test_worker_health_port_answers_liveness_and_readiness_over_http(cli: CLI) -> None:
    with cli.popen("worker", "--log-level", "warning", "--health-port", "0") as worker:
        try:
            assert worker.stderr is not None
            lines: list[str] = []
            while not any("health checks on" in line for line in lines):
                ready, _, _ = select.select([worker.stderr], [], [], 30)
                assert ready, f"the worker announced no health port within 30 s: {lines}"
                lines.append(worker.stderr.readline())
            address = next(line for line in lines if "health checks on" in line).split()[3]
            port = int(address.rsplit(":", 1)[1].split("/", 1)[0])
            with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                live = client.get("/livez")
                ready_answer = client.get("/readyz")
                unknown = client.get("/metrics")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert live.status_code == 200
    assert live.json()["engine"] == "running"
    assert ready_answer.status_code == 200
    assert ready_answer.json()["store"] == "ok"
    assert unknown.status_code == 404


def test_version_is_the_packages(cli: CLI) -> None:
    assert cli("--version").stdout == f"sora-tasks {sora_tasks.__version__}\n"


def test_shell_completion_completes_commands_and_flags(cli: CLI) -> None:
    def complete(words: str) -> list[str]:
        position = str(len(words.split()) - 1)
        done = cli(_SORA_TASKS_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=position)
        return done.stdout.split()

    assert complete("sora-tasks gen") == ["generate"]
    assert "--health-port" in complete("sora-tasks worker --he")
    assert "_sora_tasks_completion" in cli("--show-completion", SHELL="/bin/bash").stdout


def test_simulate_serves_the_simulator_until_interrupted(tmp_path: Path) -> None:
    command = ("simulate", "--port", "0", "--render-seconds", "0", "--queue-seconds", "0")
    with CLI(tmp_path, clean_environment(tmp_path)).popen(*command) as server:
        try:
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], 30)
            assert ready, "the simulator printed no address within 30 s"
            first = server.stdout.readline()
            assert first.startswith("sora_tasks simulator listening on http")
            with httpx2.Client(base_url=first.split()[-1], timeout=10) as client:
                created = client.post("/v1/videos", json={"prompt": "a cat"})
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
    assert created.json()["status"] == "completed"
    assert server.returncode == 0
