"""A PostgreSQL server of the test's own, on a free port, that the test may restart or crash.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user
(through ``runuser``) in a directory that user owns. The test is skipped, saying why, only when
the binaries or ``runuser`` are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest

__all__ = ["ThrowawayPostgres", "throwaway_postgres"]

_USER = "postgres"


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    on_path = shutil.which("initdb")
    if found:
        return Path(found[-1]).parent
    if on_path:
        return Path(on_path).parent
    pytest.skip("initdb not found (neither /usr/lib/postgresql/*/bin nor PATH): no PostgreSQL")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class ThrowawayPostgres:
    """One cluster in ``root``, run by ``pg_ctl``: trust authentication, on 127.0.0.1 only."""

    def __init__(self, root: Path, bin_dir: Path, run_as: list[str]) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self._bin = bin_dir
        self._run_as = run_as
        self.restarts = 0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database, for asyncpg."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._run_as, str(self._bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr}")

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                  "-o", options, *args)  # fmt: skip

    def init(self) -> None:
        """Create the cluster (``postgres`` superuser, trust authentication)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._ctl("start")

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server: ``fast`` disconnects clients cleanly, ``immediate`` is a crash."""
        self._ctl("stop", "-m", mode)

    def restart(self, mode: Literal["fast", "immediate"] = "immediate") -> None:
        """Restart the server (``immediate``: crash recovery on the way back)."""
        self._ctl("restart", "-m", mode)
        self.restarts += 1


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started server in a fresh directory; stopped and removed afterwards."""
    bin_dir = _binaries()
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sora-tasks-pg-"))
    try:
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: initdb cannot run as root")
            try:
                user = pwd.getpwnam(_USER)
            except KeyError:
                pytest.skip(f"running as root without a {_USER!r} user to run initdb as")
            os.chown(root, user.pw_uid, user.pw_gid)
            run_as = ["runuser", "-u", _USER, "--"]
        server = ThrowawayPostgres(root, bin_dir, run_as)
        server.init()
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):  # already down: nothing to stop
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
