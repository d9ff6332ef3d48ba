"""``sora-tasks serve``: the REST routes and the web console for one local user, with the polling
engine in the same process.

There is no authentication: every request acts as ``--user``. So the server listens on a loopback
address only, and answers only requests addressed to one (a web page elsewhere that rebinds its
own host name to 127.0.0.1 gets 400, not the user's tasks).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from .._build import open_manager
from .._manager import TaskManager
from ..testing._server import base_url, bind
from ._common import ConfigOption, DatabaseOption, prepare, run
from ._output import FAILED, USAGE, fail, say

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

__all__ = ["serve"]

_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_EXTRA_HINT = 'serve needs the fastapi extra: pip install "sora-tasks[cli,fastapi]"'


def serve(
    port: Annotated[
        int, typer.Option(help="The port to listen on (0: any free port).", min=0, max=65535)
    ] = 8000,
    host: Annotated[
        str,
        typer.Option(help="A loopback address to listen on: 127.0.0.1, ::1 or localhost."),
    ] = "127.0.0.1",
    user: Annotated[
        str, typer.Option("--user", help="The user id every request acts as.")
    ] = "local",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the web console and the REST API on this machine for one user, polling too.

    No authentication: it listens on a loopback address only. To serve others, mount the console
    in an application that authenticates (see the console page of the docs).
    """
    if log_level.lower() not in _LOG_LEVELS:
        fail(f"--log-level: {log_level!r} is not one of {', '.join(_LOG_LEVELS)}", USAGE)
    if not _is_loopback(host):
        fail(
            f"--host {host!r} is not a loopback address; serve has no authentication, so anyone "
            f"who reached it could start paid jobs as {user!r}. Listen on 127.0.0.1 (reach it "
            "from elsewhere through an SSH tunnel), or mount the console in an application that "
            "authenticates",
            USAGE,
        )
    if not user.strip():
        fail("--user must not be empty", USAGE)
    try:
        import uvicorn  # noqa: F401
        from fastapi import FastAPI  # noqa: F401
    except ImportError:
        fail(_EXTRA_HINT, USAGE)
    settings = prepare(config, database_url, None, announce=True)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host} port {port}: {exc.strerror or exc}", FAILED)

    async def main() -> None:
        async with open_manager(settings, poll=True) as manager:
            server = _server(_local_app(manager, user, host), log_level)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with anyio.create_task_group() as group:

                    async def stop_on_signal() -> None:
                        async for signum in signals:
                            server.handle_exit(signum, None)

                    group.start_soon(stop_on_signal)
                    group.start_soon(_announce, server, base_url(sock))
                    await server.serve([sock])
                    group.cancel_scope.cancel()

    # Ctrl-C before the signal receiver is in place (while the store opens) is a normal stop too
    with sock, contextlib.suppress(KeyboardInterrupt):
        run(main)
    say("console stopped")


async def _announce(server: uvicorn.Server, url: str) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
        await anyio.sleep(0.05)
    say(f"console on {url}/ (REST API under {url}/api/video); SIGTERM or Ctrl-C stops it")


def _local_app(manager: TaskManager, user: str, host: str) -> FastAPI:
    from fastapi import FastAPI
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from ..contrib.console import create_console_router
    from ..contrib.fastapi import create_router

    def local_user() -> str:
        return user

    app = FastAPI(title="sora-tasks", docs_url="/api/docs", redoc_url=None)
    app.include_router(create_router(manager, current_user=local_user))
    app.include_router(create_console_router(manager, current_user=local_user, prefix=""))
    allowed = {*_LOOPBACK_NAMES, f"[{host}]" if ":" in host else host}
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(allowed))
    return app


def _server(app: FastAPI, log_level: str) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        # the command stops on its own signal receiver, which asks uvicorn to exit; uvicorn's
        # handlers would re-raise the signal once it has stopped, and end the process before
        # the engine had handed its tasks back
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        log_config=None,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=5,
    )
    return Server(config)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
