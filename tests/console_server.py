"""``sora-tasks serve`` in a real process, pointed at a simulator on 127.0.0.1, state in SQLite."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

KEY = "sk-console-4b9e2f7a"

CONFIG = """
default_provider = "sim"
database_url = "sqlite+aiosqlite:///{db}"

[providers.sim]
type = "openai"
base_url = "{url}/v1"
api_key_env = "SIM_KEY"

[policy]
deadline = "2m"

[policy.schedule]
first_interval = 0.2
dense_interval = 0.2
max_interval = 0.5
"""


@dataclass
class Served:
    """A running ``serve`` process: its URL, and every line it wrote on stderr so far."""

    process: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list)


def console_environment(tmp_path: Path, simulator_url: str) -> tuple[dict[str, str], Path]:
    """A clean environment with the simulator's key, and a config file naming the simulator."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "SORA_TASKS_"))
    }
    env.update(
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        SIM_KEY=KEY,
    )
    config = tmp_path / "sora-tasks.toml"
    config.write_text(CONFIG.format(db=tmp_path / "console.db", url=simulator_url))
    return env, config


def read_until(
    process: subprocess.Popen[bytes], needle: str, lines: list[str], timeout: float
) -> str:
    """Read stderr into ``lines`` until a line contains ``needle``; return that line.

    Reads the pipe unbuffered, so that a line already read is never left waiting in a buffer
    that ``select`` cannot see.
    """
    assert process.stderr is not None
    descriptor = process.stderr.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no line with {needle!r} within {timeout} s: {lines}"
        ready, _, _ = select.select([descriptor], [], [], left)
        if not ready:
            continue
        chunk = os.read(descriptor, 65536)
        assert chunk, f"the process ended (exit {process.wait()}) before {needle!r}: {lines}"
        *complete, pending = (pending + chunk).split(b"\n")
        lines.extend(line.decode() + "\n" for line in complete)
        found = [line for line in lines if needle in line]
        if found:
            return found[0]


@contextmanager
def serving_console(
    tmp_path: Path, simulator_url: str, *args: str, stop: signal.Signals = signal.SIGTERM
) -> Iterator[Served]:
    """Run ``sora-tasks serve --port 0`` until the block ends, then stop it with ``stop``."""
    env, config = console_environment(tmp_path, simulator_url)
    command = [sys.executable, "-m", "sora_tasks", "serve", "--port", "0", "--config", str(config)]
    process = subprocess.Popen(
        [*command, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    with process:
        lines: list[str] = []
        try:
            announced = read_until(process, "console on http://", lines, timeout=60)
            url = announced.split("console on ", 1)[1].split()[0].rstrip("/")
            yield Served(process, url, lines)
        finally:
            process.send_signal(stop)
            _, rest = process.communicate(timeout=30)
            lines.extend(rest.decode().splitlines(keepends=True))
