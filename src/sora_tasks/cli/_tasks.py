"""Commands on tasks: submit, generate, status, list, wait, download, cancel."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from .._build import open_manager
from .._exceptions import TaskFailedError
from .._models import Task, TaskPage, TaskStatus
from .._progress import follow
from .._settings import FAKE
from ._common import (
    ConfigOption,
    DatabaseOption,
    JsonOption,
    ProviderOption,
    UserOption,
    prepare,
    run,
)
from ._output import FAILED, fail, print_json, say, show_page, show_task
from ._progress import progress_bar
from ._request import (
    AllowUnsupported,
    AspectRatio,
    Audio,
    Image,
    LastFrame,
    Model,
    NegativePrompt,
    NotifyProgress,
    NotifyUrl,
    Options,
    References,
    Resolution,
    Seconds,
    Seed,
    Size,
    request_options,
)

__all__ = ["cancel", "download", "generate", "list_tasks", "status", "submit", "wait"]

Prompt = Annotated[str, typer.Argument(help="What the video shows.", show_default=False)]
TaskId = Annotated[
    str, typer.Argument(help="Our task id (video_…) or the provider's.", show_default=False)
]
Timeout = Annotated[
    float | None,
    typer.Option(help="Give up waiting after this many seconds (the task goes on).", min=0),
]


def submit(
    prompt: Prompt,
    model: Model = None,
    size: Size = None,
    seconds: Seconds = None,
    aspect_ratio: AspectRatio = None,
    resolution: Resolution = None,
    image: Image = None,
    last_frame: LastFrame = None,
    reference: References = None,
    negative_prompt: NegativePrompt = None,
    seed: Seed = None,
    audio: Audio = None,
    option: Options = None,
    allow_unsupported: AllowUnsupported = False,
    notify_url: NotifyUrl = None,
    notify_progress: NotifyProgress = False,
    user: UserOption = None,
    priority: Annotated[int, typer.Option(help="Higher goes first where jobs wait.")] = 0,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    provider: ProviderOption = None,
    json_output: JsonOption = False,
) -> None:
    """Submit a job and print its id; `wait`, `status` and `download` take it from there."""
    # parsed inside the event loop, where a bad --option becomes one error line
    asked = partial(
        request_options,
        model=model,
        size=size,
        seconds=seconds,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        image=image,
        last_frame=last_frame,
        references=reference,
        negative_prompt=negative_prompt,
        seed=seed,
        audio=audio,
        options=option,
        allow_unsupported=allow_unsupported,
        notify_url=notify_url,
        notify_progress=notify_progress,
    )
    settings = prepare(config, database_url, provider, announce=True)
    if settings.default_provider == FAKE:
        say(
            "note: the fake provider lives in this process only: "
            "a later wait or download will find its job lost"
        )

    async def main() -> Task:
        async with open_manager(settings) as manager:
            return await manager.create(prompt, user_id=user, priority=priority, **asked())

    task = run(main)
    _print(task, json_output, brief=True)
    _exit_unless(task, TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.COMPLETED)


def generate(
    prompt: Prompt,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the video [default: <task id>.mp4, or the image's own extension].",
        ),
    ] = None,
    model: Model = None,
    size: Size = None,
    seconds: Seconds = None,
    aspect_ratio: AspectRatio = None,
    resolution: Resolution = None,
    image: Image = None,
    last_frame: LastFrame = None,
    reference: References = None,
    negative_prompt: NegativePrompt = None,
    seed: Seed = None,
    audio: Audio = None,
    option: Options = None,
    allow_unsupported: AllowUnsupported = False,
    notify_url: NotifyUrl = None,
    notify_progress: NotifyProgress = False,
    user: UserOption = None,
    timeout: Timeout = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    provider: ProviderOption = None,
    json_output: JsonOption = False,
) -> None:
    """Submit a job, show its progress, and download the video."""
    # parsed inside the event loop, where a bad --option becomes one error line
    asked = partial(
        request_options,
        model=model,
        size=size,
        seconds=seconds,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        image=image,
        last_frame=last_frame,
        references=reference,
        negative_prompt=negative_prompt,
        seed=seed,
        audio=audio,
        options=option,
        allow_unsupported=allow_unsupported,
        notify_url=notify_url,
        notify_progress=notify_progress,
    )
    settings = prepare(config, database_url, provider, announce=True)

    async def main() -> Task:
        with progress_bar() as show:
            async with open_manager(settings, poll=True) as manager, follow(manager, show):
                try:
                    return await manager.generate(
                        prompt,
                        output=output,
                        timeout=timeout,
                        user_id=user,
                        **asked(),
                    )
                except TaskFailedError as exc:
                    return exc.task

    task = run(main)
    _print(task, json_output, brief=True, path=True)
    _exit_unless(task, TaskStatus.COMPLETED)
    say(f"done: {task.id} → {task.result.local_path if task.result else output}", "green")


def status(
    task_id: TaskId,
    refresh: Annotated[bool, typer.Option(help="Ask the provider now, not the store.")] = False,
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a task."""
    settings = prepare(config, database_url, None)

    async def main() -> Task:
        async with open_manager(settings) as manager:
            if refresh:
                return await manager.refresh(task_id, user_id=user)
            return await manager.get(task_id, user_id=user)

    _print(run(main), json_output)


def list_tasks(
    status: Annotated[
        TaskStatus | None, typer.Option(help="Only tasks in this status.", case_sensitive=False)
    ] = None,
    user: UserOption = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's tasks.")] = None,
    limit: Annotated[int, typer.Option(help="Tasks per page.", min=1, max=500)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended.")] = None,
    oldest_first: Annotated[bool, typer.Option(help="Oldest first instead of newest.")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """List tasks, newest first, a page at a time."""
    settings = prepare(config, database_url, None)

    async def main() -> TaskPage:
        async with open_manager(settings) as manager:
            return await manager.list(
                user_id=user,
                status=status,
                provider=provider,
                limit=limit,
                cursor=cursor,
                order="asc" if oldest_first else "desc",
            )

    page = run(main)
    if json_output:
        print_json(page.model_dump(mode="json"))
    else:
        show_page(page)


def wait(
    task_id: TaskId,
    timeout: Timeout = None,
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Wait until a task ends, polling it meanwhile; exit 1 unless it completed."""
    settings = prepare(config, database_url, None, announce=True)

    async def main() -> Task:
        with progress_bar() as show:
            async with open_manager(settings, poll=True) as manager:
                task = await manager.get(task_id, user_id=user)
                show(task)
                async with follow(manager, show, task_id=task.id):
                    return await manager.wait(task.id, timeout=timeout, user_id=user)

    task = run(main)
    _print(task, json_output)
    _exit_unless(task, TaskStatus.COMPLETED)


def download(
    task_id: TaskId,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the video [default: <task id>.mp4, or the image's own extension].",
        ),
    ] = None,
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download a completed task's video."""
    settings = prepare(config, database_url, None, announce=True)

    async def main() -> Task:
        async with open_manager(settings) as manager:
            task = await manager.get(task_id, user_id=user)
            return await manager.download(task.id, output, user_id=user)

    _print(run(main), json_output, brief=True, path=True)


def cancel(
    task_id: TaskId,
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Cancel a task (a task that already ended is left as it is)."""
    settings = prepare(config, database_url, None, announce=True)

    async def main() -> Task:
        async with open_manager(settings) as manager:
            return await manager.cancel(task_id, user_id=user)

    _print(run(main), json_output, brief=True)


def _print(task: Task, json_output: bool, *, brief: bool = False, path: bool = False) -> None:
    """The task as JSON, or: its file path or id on stdout (for $(…)), or all of it."""
    if json_output:
        print_json(task)
    elif path and task.result and task.result.local_path:
        typer.echo(task.result.local_path)
    elif brief:
        typer.echo(task.id)
        say(f"{task.id} is {task.status.value} at {task.provider}")
    else:
        show_task(task)


def _exit_unless(task: Task, *good: TaskStatus) -> None:
    if task.status not in good:
        reason = f": {task.error.code}: {task.error.message}" if task.error else ""
        fail(f"task {task.id} ended {task.status.value}{reason}", FAILED)
