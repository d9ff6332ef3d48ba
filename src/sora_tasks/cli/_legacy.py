"""The ``sora-tasks`` command line (extra ``cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

try:
    import typer
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'the sora-tasks command needs the cli extra: pip install "sora-tasks[cli]"'
    ) from exc

import anyio

from . import SoraTasksError, Task, TaskFailedError, TaskManager
from ._events import TaskEvent
from .testing import FakeBehaviour, FakeProvider

__all__ = ["app", "main"]

app = typer.Typer(help="Submit, track and download AI video-generation jobs.", no_args_is_help=True)
_err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """sora-tasks: AI video-generation jobs, polled crash-safely."""


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the video.")
    ] = Path("video.mp4"),
    model: Annotated[
        str | None, typer.Option(help="Model name (provider default if unset).")
    ] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 1280x720.")] = None,
    seconds: Annotated[int | None, typer.Option(help="Duration in seconds.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Reference image (PNG/JPEG/WebP).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Give up waiting after this many seconds.")
    ] = 900.0,
) -> None:
    """Submit a job, show its progress, and download the video."""
    _err.print(
        "[yellow]No provider configured: using the built-in fake provider (no network, no key).[/]"
    )
    try:
        task = anyio.run(_generate, prompt, output, model, size, seconds, image, timeout)
    except TaskFailedError as exc:
        _err.print(f"[red]failed:[/] {exc}")
        raise typer.Exit(1) from None
    except SoraTasksError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    _err.print(f"[green]done:[/] {task.id} → {task.result.local_path if task.result else output}")


async def _generate(
    prompt: str,
    output: Path,
    model: str | None,
    size: str | None,
    seconds: int | None,
    image: Path | None,
    timeout: float,
) -> Task:
    provider = FakeProvider(behaviour=FakeBehaviour(queued_for=0.5, render_for=3.0, poll_after=0.2))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=_err,
    ) as progress:
        bar = progress.add_task("queued", total=100)

        def show(event: TaskEvent) -> None:
            progress.update(
                bar, completed=event.task.progress, description=event.task.status.value.lower()
            )

        async with TaskManager(providers={"fake": provider}, on_event=show) as manager:
            return await manager.generate(
                prompt,
                output=output,
                model=model,
                size=size,
                seconds=seconds,
                reference_image=image,
                timeout=timeout,
            )


def main() -> None:
    """Entry point of the ``sora-tasks`` script."""
    app()
