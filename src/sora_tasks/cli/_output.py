"""What the command line shows: results on stdout (JSON with ``--json``), the rest on stderr.

Messages are printed as plain text, never as rich markup, so brackets in a prompt or an error
cannot restyle or swallow anything; lines are not wrapped, so one error stays one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._circuits import ProviderHealth
from .._models import Task, TaskPage, TaskStats, TaskStatus

__all__ = [
    "FAILED",
    "USAGE",
    "err",
    "fail",
    "out",
    "print_json",
    "say",
    "show_page",
    "show_health",
    "show_stats",
    "show_task",
]

USAGE = 2
"""Exit code for input or configuration that can never work as given."""
FAILED = 1
"""Exit code for a task that failed, or an operation that could not be done now."""

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

_PIPE_WIDTH = 160
_STATUS_STYLE = {
    TaskStatus.QUEUED: "cyan",
    TaskStatus.PROCESSING: "blue",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "yellow",
}


def say(message: str, style: str | None = None) -> None:
    """One human line on stderr."""
    err.print(Text(message, style=style or ""))


def fail(message: str, code: int = USAGE) -> NoReturn:
    """Print ``error: message`` on one stderr line and leave with ``code``."""
    say(f"error: {message}", "red")
    raise typer.Exit(code)


def print_json(value: BaseModel | dict[str, object] | Sequence[object]) -> None:
    """The one JSON document of a ``--json`` invocation, on stdout."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def status_text(status: TaskStatus) -> Text:
    """A status word in its colour."""
    return Text(status.value, style=_STATUS_STYLE[status])


def show_task(task: Task) -> None:
    """A task's details, one field a row."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str | Text | None]] = [
        ("id", task.id),
        ("external id", task.external_id),
        ("provider", task.provider),
        ("status", status_text(task.status)),
        ("progress", f"{task.progress}%"),
        ("prompt", Text(task.prompt)),
        ("model", f"{task.model}, {task.size}, {task.seconds} s"),
        ("user", task.user_id),
        ("created", _when(task.created_at)),
        ("submitted", _when(task.submitted_at)),
        ("started", _when(task.started_at)),
        ("completed", _when(task.completed_at)),
        ("error", Text(f"{task.error.code}: {task.error.message}") if task.error else None),
        ("file", task.result.local_path if task.result else None),
    ]
    for name, value in rows:
        if value is not None:
            grid.add_row(name, value)
    out.print(grid)


def show_page(page: TaskPage) -> None:
    """A page of tasks as a table, and how to get the next one."""
    table = Table(box=None, header_style="bold")
    # ids are what people copy from here: never shortened; the prompt gives way instead
    table.add_column("id", no_wrap=True, min_width=42)
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("%", no_wrap=True, justify="right")
    table.add_column("provider", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("prompt", no_wrap=True, overflow="ellipsis")
    for task in page.items:
        table.add_row(
            task.id,
            status_text(task.status),
            f"{task.progress}%",
            task.provider,
            f"{task.created_at:%Y-%m-%d %H:%M}",
            Text(_shorten(task.prompt)),
        )
    # piped output has no width of its own: give it room rather than rich's default 80 columns
    (out if out.is_terminal else Console(width=_PIPE_WIDTH, highlight=False)).print(table)
    if page.next_cursor:
        say(f"more: --cursor {page.next_cursor}")


def show_stats(stats: TaskStats) -> None:
    """Counts by status and provider, render times and cost totals."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("total", str(stats.total))
    for status, count in sorted(stats.by_status.items()):
        grid.add_row(status_text(status), str(count))
    for provider, count in sorted(stats.by_provider.items()):
        grid.add_row(f"provider {provider}", str(count))
    grid.add_row("success rate", _percent(stats.success_rate))
    for label, value in (
        ("render mean", stats.render_seconds_mean),
        ("render p50", stats.render_seconds_p50),
        ("render p90", stats.render_seconds_p90),
    ):
        grid.add_row(label, "-" if value is None else f"{value:.1f} s")
    grid.add_row("cost", _money(stats.cost_total))
    for kind, groups in (
        ("user", stats.cost_by_user),
        ("provider", stats.cost_by_provider),
        ("model", stats.cost_by_model),
    ):
        for key, amounts in groups.items():
            grid.add_row(f"cost {kind} {key or '(none)'}", _money(amounts))
    out.print(grid)


def show_health(routes: Mapping[str, list[str]], circuits: Mapping[str, ProviderHealth]) -> None:
    """Each provider's circuit, then each route."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, health in circuits.items():
        state = health.state.value
        if health.retry_in is not None:
            state += f" (probe in {health.retry_in:.0f} s)"
        if health.consecutive_failures:
            state += f", {health.consecutive_failures} failures in a row"
        grid.add_row(f"provider {name}", state)
    for name, steps in routes.items():
        grid.add_row(f"route {name}", " → ".join(steps))
    out.print(grid)


def _money(amounts: dict[str, float]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in amounts.items()) or "-"


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _shorten(prompt: str, width: int = 60) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= width else line[: width - 1] + "…"
