"""The total time a provider call may take, set by whoever makes the call.

The engine runs each provider call under a bound derived from the task's lease and deadline; the
HTTP seam reads it (:func:`remaining`) and fails the call, classified as any other transport
failure, once it passes. A context variable carries it, so the :class:`Provider` interface needs
no extra argument and an adapter cannot forget to pass it on. Nested bounds keep the earliest.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["bounded", "remaining"]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sora_tasks_call_deadline", default=None
)


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Provider calls made inside must finish within ``seconds`` from now, all told."""
    deadline = anyio.current_time() + max(0.0, seconds)
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left under the innermost :func:`bounded` (never negative), or ``None``."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - anyio.current_time())
