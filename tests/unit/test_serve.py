"""``sora-tasks serve`` refuses what it must before it opens anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sora_tasks.cli import main


def serve(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert isinstance(exited.value.code, int)
    return exited.value.code


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", "localhost.example.com"]
)
def test_a_host_that_is_not_loopback_is_refused_naming_the_risk(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert serve("--host", host) == 2
    stderr = capsys.readouterr().err
    assert f"error: --host {host!r} is not a loopback address" in stderr
    assert "could start paid jobs as 'local'" in stderr
    assert not list(tmp_path.iterdir()), "nothing may be created before the refusal"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", " "), "error: --user must not be empty"),
        (("--log-level", "loud"), "error: --log-level: 'loud' is not one of"),
        (("--port", "70000"), "'--port': Input should be less than or equal to 65535"),
    ],
)
def test_bad_flags_are_one_error_line_and_exit_2(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve(*args) == 2
    assert message in capsys.readouterr().err


def test_a_port_in_use_is_one_error_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert serve("--port", str(port)) == 1
    assert f"error: cannot listen on 127.0.0.1 port {port}: Address already in use" in (
        capsys.readouterr().err
    )
    assert not list(tmp_path.iterdir()), "the database is not opened for a server that cannot run"
