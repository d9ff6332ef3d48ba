"""Serve an ASGI app with uvicorn on a local port: in a background thread for tests, or in the
foreground for ``python -m sora_tasks.testing``.

uvicorn is not a core dependency (it comes with the ``cli`` extra), so it is imported on use.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._simulator_asgi import ASGIApp

if TYPE_CHECKING:
    import uvicorn

__all__ = ["base_url", "bind", "make_server", "serve_in_thread"]

_INSTALL_HINT = 'serving needs uvicorn: pip install "sora-tasks[cli]"'


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # an explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without
    # it, Nagle holds each small body behind its headers for a delayed ACK (about 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(
    app: ASGIApp, *, log_level: str = "warning", access_log: bool = False
) -> uvicorn.Server:
    """A uvicorn server for ``app`` that leaves the logging setup of the process alone."""
    try:
        import uvicorn
    except ImportError:
        raise ModuleNotFoundError(_INSTALL_HINT) from None
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields its base URL, stops it on exit.

    Example::

        with serve_in_thread(create_simulator_app(render_seconds=0)) as url:
            provider = OpenAIVideosProvider(api_key="sk-test", base_url=f"{url}/v1")
    """
    server = make_server(app)
    sock = bind(host, port)
    url = base_url(sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {url} did not start within {startup_timeout} s")
            time.sleep(0.005)
        yield url
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
        sock.close()
