"""Integration fixtures: real HTTP servers on 127.0.0.1, an ephemeral port each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from sora_tasks.testing._server import serve_in_thread
from sora_tasks.testing._simulator_asgi import ASGIApp


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn in background threads: ``serve(app)`` returns the base URL.

    Every server started through it stops when the test ends.
    """
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))
