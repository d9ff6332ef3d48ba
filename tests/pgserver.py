"""A throwaway PostgreSQL server of the test's own, to stop, kill and start again.

Tests about a database that goes away cannot use the shared server. :class:`PostgresServer`
runs ``initdb`` once into a directory of its own, then ``pg_ctl`` starts and stops the server on
one fixed port of 127.0.0.1, so a store built on :attr:`PostgresServer.url` keeps its URL across
restarts. PostgreSQL refuses to run as root: as root, the commands run as the ``postgres`` user
through ``runuser``. The ``postgres_server`` fixture (in ``tests/conftest.py``) gives one per
session and starts it for each test that asks.

    server.start(); server.stop("immediate"); server.restart(); server.url; server.cleanup()
    url = await server.create_database("mine")  # a clean database of the test's own
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

__all__ = ["PASSWORD_ROLE", "PostgresServer", "StopMode", "find_bin_dir", "missing_requirement"]

StopMode = Literal["smart", "fast", "immediate"]
"""``pg_ctl stop -m``: ``immediate`` is a crash (clients lose their connections at once)."""

PASSWORD_ROLE: Final = "sora_password_role"
"""The one role that must log in with a password (every other is trusted): create it with
``CREATE ROLE sora_password_role LOGIN PASSWORD '...'`` to test authentication failures."""

_SERVICE_USER: Final = "postgres"
_COMMAND_TIMEOUT: Final = 60
# no fsync (the machine does not crash, only the server), a small footprint, TCP on loopback
# only; commits stay synchronous so that a server killed with "immediate" keeps what it acked
_SERVER_OPTIONS: Final = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
    "-c full_page_writes=off -c shared_buffers=16MB -c max_connections=40"
)


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None if PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def missing_requirement() -> str | None:
    """Why a throwaway server cannot run here, or None if it can."""
    if find_bin_dir() is None:
        return "PostgreSQL's initdb is not installed (looked on PATH and /usr/lib/postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and runuser is not available to run PostgreSQL as 'postgres'"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory: superuser ``postgres``, database
    ``postgres``, trust authentication except for :data:`PASSWORD_ROLE`. Call :meth:`cleanup`
    when done (stops and deletes it).
    """

    def __init__(self) -> None:
        reason = missing_requirement()
        if reason is not None:
            raise RuntimeError(reason)
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        self._bin = bin_dir
        self._as_service_user = os.geteuid() == 0
        self._root = Path(tempfile.mkdtemp(prefix="sora-pgserver-"))
        self._data = self._root / "data"
        self._log = self._root / "server.log"
        self.port = _free_port()
        self._chown(self._root)
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        hba = self._data / "pg_hba.conf"
        password_rule = f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(password_rule + hba.read_text())
        self.running = False

    @property
    def url(self) -> URL:
        """``postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres``."""
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database="postgres",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            str(self._data),
            "-l",
            str(self._log),
            "-o",
            f"-p {self.port} {_SERVER_OPTIONS}",
        )
        self.running = True

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server; ``immediate`` drops every connection at once, like a crash."""
        self._run("pg_ctl", "stop", "-w", "-D", str(self._data), "-m", mode)
        self.running = False

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop (if running) and start again on the same port."""
        if self.running:
            self.stop(mode)
        self.start()

    async def create_database(self, name: str) -> URL:
        """Create an empty database (the server keeps its databases across tests and
        restarts), dropping any left under that name, and return its URL."""
        engine = create_async_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            await engine.dispose()
        return self.url.set(database=name)

    def log(self) -> str:
        """The server's log so far, for a failing test's message."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def cleanup(self) -> None:
        """Stop the server if it runs and delete its directory."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def _chown(self, path: Path) -> None:
        if self._as_service_user:
            shutil.chown(path, user=_SERVICE_USER, group=_SERVICE_USER)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._as_service_user:
            command = ["runuser", "-u", _SERVICE_USER, "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
            cwd=self._root,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {args[0]} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"{self.log()[-2000:]}"
            )
