"""SyncTaskManager: the async TaskManager for plain scripts, through a blocking portal.

Every method hands its call to a :class:`TaskManager` running on an event loop in a background
thread and blocks until it returns; nothing is implemented twice.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import ExitStack, contextmanager
from types import FrameType, TracebackType
from typing import Concatenate, ParamSpec, Self, TypeVar, Unpack

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._circuits import ProviderHealth
from ._events import TaskEvent
from ._exceptions import ManagerNotRunningError
from ._manager import TaskManager
from ._models import Limits, Task
from ._options import CreateOptions, ManagerOptions, check_options
from ._policy import PollingPolicy
from .providers._base import Provider
from .storage._base import TaskStore

__all__ = ["SyncTaskManager"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _blocking(
    method: Callable[Concatenate[TaskManager, _P], Awaitable[_T]],
) -> Callable[Concatenate[SyncTaskManager, _P], _T]:
    """The blocking twin of one TaskManager method: same parameters, same result."""

    def call(self: SyncTaskManager, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        async def run() -> _T:
            return await method(self.manager, *args, **kwargs)

        return self.portal.call(run)

    functools.update_wrapper(call, method)
    return call


class SyncTaskManager:
    """A :class:`TaskManager` for code without an event loop: every method blocks.

    Takes a ready ``TaskManager`` or the keyword arguments of one, and is used as a context
    manager, which starts the event loop thread and the polling engine, and stops both::

        with SyncTaskManager(providers={"openai": OpenAIVideosProvider()}) as manager:
            task = manager.generate("a calico cat playing piano", output="cat.mp4")

    The methods and their parameters are those of ``TaskManager``; ``events()`` is a plain
    iterator. In notebooks, prefer the async API with top-level ``await``.
    """

    def __init__(
        self, manager: TaskManager | None = None, /, **options: Unpack[ManagerOptions]
    ) -> None:
        if manager is not None and options:
            raise TypeError("pass a TaskManager or its keyword arguments, not both")
        check_options("SyncTaskManager", options, ManagerOptions)
        self.manager = manager if manager is not None else TaskManager(**options)
        """The async manager every call is handed to."""
        self._portal: BlockingPortal | None = None
        self._stack: ExitStack | None = None

    def __repr__(self) -> str:
        return f"SyncTaskManager({self.manager!r})"

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            portal = stack.enter_context(start_blocking_portal())
            stack.enter_context(portal.wrap_async_context_manager(self.manager))
            self._stack = stack.pop_all()
        self._portal = portal
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._stack, self._portal = self._stack, None, None
        if stack is None:
            return None
        return stack.__exit__(exc_type, exc, traceback)

    @property
    def portal(self) -> BlockingPortal:
        """The portal to the event loop thread, for calling other async code on it."""
        if self._portal is None:
            raise ManagerNotRunningError(
                "use the manager inside `with SyncTaskManager(...) as manager:`"
            )
        return self._portal

    @property
    def store(self) -> TaskStore:
        """The store the tasks live in."""
        return self.manager.store

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The registered providers, by name."""
        return self.manager.providers

    @property
    def limits(self) -> Limits:
        """The input limits requests are checked against."""
        return self.manager.limits

    @property
    def policy(self) -> PollingPolicy:
        """The polling policy of the engine."""
        return self.manager.policy

    create = _blocking(TaskManager.create)
    submit = _blocking(TaskManager.submit)
    create_many = _blocking(TaskManager.create_many)
    get = _blocking(TaskManager.get)
    refresh = _blocking(TaskManager.refresh)
    handle_webhook = _blocking(TaskManager.handle_webhook)
    stats = _blocking(TaskManager.stats)
    webhooks = _blocking(TaskManager.webhooks)
    retry_webhooks = _blocking(TaskManager.retry_webhooks)
    cancel = _blocking(TaskManager.cancel)
    cleanup = _blocking(TaskManager.cleanup)
    wait = _blocking(TaskManager.wait)
    download = _blocking(TaskManager.download)
    content_url = _blocking(TaskManager.content_url)
    archive_url = _blocking(TaskManager.archive_url)
    health = _blocking(TaskManager.health)

    def generate(
        self,
        prompt: str,
        *,
        output: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        progress: bool = False,
        **options: Unpack[CreateOptions],
    ) -> Task:
        """Create, wait and download in one call; see :meth:`TaskManager.generate`."""
        # spelled out because mypy cannot carry **options through _blocking's ParamSpec
        call = functools.partial(
            self.manager.generate,
            prompt,
            output=output,
            timeout=timeout,
            progress=progress,
            **options,
        )
        return self.portal.call(call)

    def events(self, task_id: str | None = None) -> Iterator[TaskEvent]:
        """Yield every change the manager observes, for one task or all; blocks between them."""
        portal = self.portal
        stream = self.manager.events(task_id)
        try:
            while True:
                try:
                    yield portal.call(stream.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            if isinstance(stream, AsyncGenerator):
                portal.call(stream.aclose)

    @contextmanager
    def open_content(
        self, task_id: str, *, user_id: str | None = None
    ) -> Iterator[Iterator[bytes]]:
        """Open a completed task's video; see :meth:`TaskManager.open_content`.

        Yields an iterator over the video's bytes that blocks until each chunk arrives.
        """
        portal = self.portal
        opened = self.manager.open_content(task_id, user_id=user_id)
        with portal.wrap_async_context_manager(opened) as stream:
            yield _blocking_chunks(portal, stream.aiter_bytes())

    @property
    def routes(self) -> dict[str, list[str]]:
        """See :attr:`TaskManager.routes`."""
        return self.manager.routes

    def provider_health(self) -> dict[str, ProviderHealth]:
        """See :meth:`TaskManager.provider_health` (it does not block)."""
        return self.manager.provider_health()

    def seed_schedule(self, tasks: Iterable[Task]) -> int:
        """See :meth:`TaskManager.seed_schedule` (it does not block)."""
        return self.manager.seed_schedule(tasks)

    def run_worker(self, *, handle_signals: bool = True) -> None:
        """Poll until Ctrl-C (or SIGTERM, with ``handle_signals`` in the main thread).

        Then it returns, and leaving the ``with`` block stops the engine gracefully.
        """
        future = self.portal.start_task_soon(
            functools.partial(self.manager.run_worker, handle_signals=False)
        )
        # signal handlers can only be set from the main thread
        trap = handle_signals and threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if trap else None
        try:
            future.result()
        except KeyboardInterrupt:
            future.cancel()
        finally:
            if trap:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    # last, so that the name does not hide the built-in list in the class body above
    list = _blocking(TaskManager.list)


def _blocking_chunks(portal: BlockingPortal, chunks: AsyncIterator[bytes]) -> Iterator[bytes]:
    while True:
        try:
            yield portal.call(chunks.__anext__)
        except StopAsyncIteration:
            return


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
