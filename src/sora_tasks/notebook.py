"""Notebooks: a progress bar for one task, and the inline card of a task with its video.

In Jupyter (and IPython, VS Code notebooks) the event loop is already running, so the async API
is used with top-level ``await``; nothing needs ``anyio.run``::

    from sora_tasks import TaskManager
    from sora_tasks.notebook import card, progress_bar
    from sora_tasks.testing import FakeProvider

    async with TaskManager(providers={"fake": FakeProvider()}) as manager:
        async with progress_bar(manager):
            task = await manager.generate("a calico cat playing piano", output="cat.mp4")
        await card(manager, task.id)  # the card, playing the video

The bar is a widget in a notebook with ipywidgets and tqdm (the ``notebook`` extra); without
widgets, or outside notebooks, it is a text bar (tqdm's, rich's in a terminal, else a plain
one): never nothing, and never a warning. The manager imports none of this until asked for a
bar (``generate(progress=True)``) or a card (a task shown in a notebook).
"""

from __future__ import annotations

import html
import importlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from ._exceptions import TaskNotReadyError
from ._models import MediaType, Task
from ._progress import follow

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["TaskCard", "card", "progress_bar", "task_html"]


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
    notebook = _in_notebook()
    try:
        tqdm_std = importlib.import_module("tqdm.std")
    except ImportError:
        pass
    else:
        if notebook and _has_widgets():
            widget = importlib.import_module("tqdm.notebook").tqdm
            return _TqdmBar(widget(total=100, desc=description, unit="%"))
        # not tqdm.auto: in a notebook without ipywidgets it fails with "IProgress not found"
        return _TqdmBar(tqdm_std.tqdm(total=100, desc=description, unit="%", file=sys.stderr))
    if not notebook:
        # rich in a notebook wants ipywidgets as well, and warns without it
        try:
            from rich.progress import Progress
        except ImportError:
            pass
        else:
            return _RichBar(Progress(), description)
    return _TextBar(description)


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (not a plain IPython terminal)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_widgets() -> bool:
    try:
        importlib.import_module("ipywidgets")
    except ImportError:
        return False
    return True


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


class _TextBar:
    """A one-line bar on stderr, redrawn in place: for when neither tqdm nor rich can draw."""

    _WIDTH = 30

    def __init__(self, description: str) -> None:
        self._description = description
        self._shown = False

    def update(self, task: Task) -> None:
        filled = task.progress * self._WIDTH // 100
        bar = "#" * filled + "-" * (self._WIDTH - filled)
        sys.stderr.write(
            f"\r{self._description}: [{bar}] {task.progress:3d}% {task.status.value.lower()}"
        )
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class TaskCard:
    """A task's card, as notebooks display it (``_repr_html_``); ``html`` is the fragment."""

    task: Task
    html: str

    def _repr_html_(self) -> str:
        return self.html


async def card(
    manager: TaskManager,
    task_id: str,
    *,
    user_id: str | None = None,
    expires_in: timedelta = timedelta(hours=1),
) -> TaskCard:
    """The card of a task, playing its video from wherever it can be played.

    The file saved on disk if there is one (a path relative to the notebook works); else the
    manager's :meth:`~sora_tasks.TaskManager.content_url`: a presigned URL of the archived copy
    (valid for ``expires_in``) or the provider's own link while it lasts. Without either, the
    card has no player.
    """
    task = await manager.get(task_id, user_id=user_id)
    url = None
    if _local_source(task) is None and task.result is not None:
        try:
            url = await manager.content_url(task.id, user_id=user_id, expires_in=expires_in)
        except TaskNotReadyError:
            url = None
    return TaskCard(task, task_html(task, media_url=url))


_BADGE_COLOURS = {
    "QUEUED": "#0e7490",
    "PROCESSING": "#1d4ed8",
    "COMPLETED": "#15803d",
    "FAILED": "#b91c1c",
    "CANCELLED": "#a16207",
}


def task_html(task: Task, *, media_url: str | None = None) -> str:
    """An HTML fragment for ``task``: status, prompt, timings, error, and a player.

    The player plays ``media_url`` when given (see :func:`card`), else the saved file once it
    is on disk (an image task gets an ``<img>``). Every value that came from outside (prompt,
    error, paths, ids) is escaped: a notebook renders whatever HTML it is given.
    """
    status = task.status.value
    badge = (
        f'<span style="background:{_BADGE_COLOURS.get(status, "#475569")};color:#fff;'
        f'padding:1px 8px;border-radius:9px;font-size:0.85em">{_e(status)}</span>'
    )
    rows = [
        ("prompt", _e(task.prompt)),
        ("model", _e(f"{task.model} · {task.size} · {task.seconds} s · {task.provider}")),
        ("progress", f"{task.progress}%"),
        ("created", _time(task.created_at)),
        ("completed", _time(task.completed_at)),
        ("took", _took(task)),
    ]
    if task.error is not None:
        rows.append(("error", f"<code>{_e(task.error.code)}</code> {_e(task.error.message)}"))
    table = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{name}</th>'
        f'<td style="text-align:left">{value}</td></tr>'
        for name, value in rows
        if value
    )
    return (
        '<div class="sora-task">'
        f"<div><code>{_e(task.id)}</code> {badge}</div>"
        f"<table>{table}</table>{_player(task, media_url)}</div>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _time(moment: datetime | None) -> str:
    return "" if moment is None else _e(f"{moment:%Y-%m-%d %H:%M:%S} UTC")


def _took(task: Task) -> str:
    if task.completed_at is None:
        return ""
    return f"{(task.completed_at - task.created_at).total_seconds():.1f} s"


def _player(task: Task, media_url: str | None) -> str:
    source = media_url if media_url is not None else _local_source(task)
    if source is None:
        return ""
    if task.media_type is MediaType.IMAGE:
        return f'<img width="480" src="{_e(source)}" alt="{_e(task.prompt)}">'
    return f'<video controls width="480" src="{_e(source)}"></video>'


def _local_source(task: Task) -> str | None:
    local = task.result.local_path if task.result else None
    if not local or not Path(local).is_file():
        return None
    return _source(Path(local))


def _source(path: Path) -> str:
    # notebooks resolve relative URLs against the notebook's folder, usually the working directory
    try:
        return quote(path.resolve().relative_to(Path.cwd().resolve()).as_posix())
    except ValueError:
        return path.resolve().as_uri()
