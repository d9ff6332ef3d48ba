"""Which store calls are the engine's: a mark the engine sets so a store can keep room for the rest.

The engine runs its workers under :func:`engine_work`; every store call made from them (and from
tasks they start) sees :func:`is_engine_work` true. A store may then hold the engine to a share of
its connections, so that the API calls of the same process always find one free.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

__all__ = ["engine_work", "is_engine_work"]

_ENGINE_WORK: Final = ContextVar("sora_tasks_engine_work", default=False)


@contextmanager
def engine_work() -> Iterator[None]:
    """Mark the store calls made inside this block, and in the tasks started from it, as the
    engine's."""
    token = _ENGINE_WORK.set(True)
    try:
        yield
    finally:
        _ENGINE_WORK.reset(token)


def is_engine_work() -> bool:
    """Whether the running task works for the engine (see :func:`engine_work`)."""
    return _ENGINE_WORK.get()
