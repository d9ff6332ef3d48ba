"""The live progress bar of ``generate`` and ``wait``, drawn on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .._models import Task
from ._output import err

__all__ = ["progress_bar"]


@contextmanager
def progress_bar() -> Iterator[Callable[[Task], None]]:
    """A bar for one task, drawn from its first snapshot on (so bad input draws none).

    The block gets the function that moves the bar to a new snapshot.
    """
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
    )
    bars: list[TaskID] = []

    def show(task: Task) -> None:
        if not bars:
            progress.start()
            bars.append(progress.add_task("", total=100))
        progress.update(bars[0], completed=task.progress, description=task.status.value.lower())

    try:
        yield show
    finally:
        if bars:
            progress.stop()
