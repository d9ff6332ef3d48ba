"""Notebook helpers: a progress bar for ``generate`` and the inline view of a task.

In Jupyter (and IPython, VS Code notebooks) the event loop is already running, so the async API
is used with top-level ``await``; nothing needs ``anyio.run``::

    from sora_tasks import TaskManager
    from sora_tasks.notebook import progress_bar
    from sora_tasks.testing import FakeProvider

    async with TaskManager(providers={"fake": FakeProvider()}) as manager:
        async with progress_bar(manager):
            task = await manager.generate("a calico cat playing piano", output="cat.mp4")
    task  # shown with its status, prompt, timings and a video player

The bar is a ``tqdm.auto`` bar (a widget in notebooks) when tqdm is installed, else a rich bar
when rich is, else nothing at all.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ._display import task_html
from ._models import Task
from ._progress import follow

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["progress_bar", "task_html"]


class _Bar(Protocol):
    def update(self, task: Task) -> None: ...

    def close(self) -> None: ...


@asynccontextmanager
async def progress_bar(
    manager: TaskManager, *, task_id: str | None = None, description: str = "video"
) -> AsyncIterator[None]:
    """Show a progress bar for one task while the block runs.

    The task is ``task_id``, or the first task the manager creates in the block: the one of
    ``generate``. Errors raised in the block come out unchanged; the bar is closed either way.
    """
    bar = _make_bar(description)
    try:
        async with follow(manager, bar.update, task_id=task_id):
            yield
    finally:
        bar.close()


def _make_bar(description: str) -> _Bar:
    try:
        tqdm = importlib.import_module("tqdm.auto").tqdm
    except ImportError:
        pass
    else:
        return _TqdmBar(tqdm(total=100, desc=description, unit="%"))
    try:
        from rich.progress import Progress
    except ImportError:
        return _NoBar()
    return _RichBar(Progress(), description)


class _TqdmBar:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def update(self, task: Task) -> None:
        self._bar.n = task.progress
        self._bar.set_postfix_str(task.status.value.lower(), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class _RichBar:
    def __init__(self, progress: Any, description: str) -> None:
        self._progress = progress
        self._description = description
        self._id = progress.add_task(description, total=100)
        progress.start()

    def update(self, task: Task) -> None:
        self._progress.update(
            self._id,
            completed=task.progress,
            description=f"{self._description} {task.status.value.lower()}",
        )

    def close(self) -> None:
        self._progress.stop()


class _NoBar:
    def update(self, task: Task) -> None:
        pass

    def close(self) -> None:
        pass
