"""Who may take a pooled connection, and when: the engine's share, API calls first, one writer.

The API calls of a process that also runs the polling engine share its event loop and its pool.
These rules keep them fast while the engine works flat out:

- the engine never holds more than its share of the pool (the rest is kept for API calls);
- while the process serves API calls (one was open within the last second), the engine runs at
  most two transactions at once: every step of an API call waits behind whatever engine steps
  are ready on the event loop, and they are as many as the engine's transactions in flight;
- an engine transaction neither starts nor hands its answer back while an API transaction is
  open, for up to ``api_first`` seconds each (``0`` turns these two rules off);
- on SQLite, writers of the process take turns for the database's single write lock before they
  take a connection, so a queue of writers holds no connection that readers need.

Waiting for a turn holds no connection and can be cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final

import anyio

from ._lanes import is_engine_work

__all__ = ["ConnectionTurns"]

# measured on PostgreSQL with a saturated engine: two transactions in flight keep four fifths of
# the engine's throughput and about double an API read; five make it three and a half times
_ENGINE_SHARE_WHILE_SERVING: Final = 2
_SERVING_WINDOW: Final = 1.0


class ConnectionTurns:
    """The turns of one store's callers; ``engine_slots`` of ``None`` means no cap."""

    def __init__(self, *, engine_slots: int | None, single_writer: bool, api_first: float) -> None:
        self.engine_slots = engine_slots
        self._engine_slots = None if engine_slots is None else anyio.Semaphore(engine_slots)
        serving = min(engine_slots or _ENGINE_SHARE_WHILE_SERVING, _ENGINE_SHARE_WHILE_SERVING)
        self._serving_slots = anyio.Semaphore(serving) if api_first > 0 else None
        self._writer = anyio.Lock() if single_writer else None
        self._api_first = api_first
        self._api_open = 0
        self._api_seen_at = float("-inf")
        # made when the first API transaction opens (anyio events need a running loop)
        self._api_quiet: anyio.Event | None = None

    @asynccontextmanager
    async def take(self, *, write: bool) -> AsyncIterator[None]:
        """Wait for this caller's turn to open a transaction; hold it until the block ends."""
        engine = is_engine_work()
        async with AsyncExitStack() as held:
            if engine:
                await self._after_api_calls()
                if self._serving_slots is not None and self._serving():
                    await held.enter_async_context(self._serving_slots)
            else:
                self._open_api_call()
                held.callback(self._close_api_call)
            if write and self._writer is not None:
                await held.enter_async_context(self._writer)
            if engine and self._engine_slots is not None:
                await held.enter_async_context(self._engine_slots)
            yield
        if engine:
            # what the engine does with the answer is CPU on the same event loop: it waits too.
            # Shielded: the write is done, and its caller must get to hear of it
            with anyio.CancelScope(shield=True):
                await self._after_api_calls()

    def _serving(self) -> bool:
        return self._api_open > 0 or anyio.current_time() - self._api_seen_at < _SERVING_WINDOW

    async def _after_api_calls(self) -> None:
        if self._api_open and self._api_quiet is not None and self._api_first > 0:
            with anyio.move_on_after(self._api_first):
                await self._api_quiet.wait()

    def _open_api_call(self) -> None:
        self._api_open += 1
        if self._api_open == 1:
            self._api_quiet = anyio.Event()

    def _close_api_call(self) -> None:
        self._api_open -= 1
        self._api_seen_at = anyio.current_time()
        if self._api_open == 0 and self._api_quiet is not None:
            self._api_quiet.set()
