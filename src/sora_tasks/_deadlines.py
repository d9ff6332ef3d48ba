"""The total time a provider call may take, set by whoever makes the call.

The engine runs each provider call under a bound derived from the task's lease and deadline; the
HTTP seam reads it (:func:`deadline`) and fails the call, classified as any other transport
failure, once it passes. A context variable carries it, so the :class:`Provider` interface needs
no extra argument and an adapter cannot forget to pass it on. Nested bounds keep the earliest.
"""

from __future__ import annotations

import contextvars

import anyio

__all__ = ["bounded", "deadline"]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sora_tasks_call_deadline", default=None
)


class bounded:
    """Provider calls made inside must finish within ``seconds`` from now, all told.

    A class rather than a generator: the engine enters one on every provider call.
    """

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        deadline = anyio.current_time() + max(0.0, self._seconds)
        outer = _deadline.get()
        self._token = _deadline.set(deadline if outer is None else min(outer, deadline))

    def __exit__(self, *exc_info: object) -> None:
        _deadline.reset(self._token)


def deadline() -> float | None:
    """The innermost :func:`bounded`'s end on ``anyio.current_time()``'s clock, or ``None``."""
    return _deadline.get()
