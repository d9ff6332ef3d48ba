"""`sora-tasks webhooks list` and `sora-tasks webhooks retry`: the outgoing webhook outbox."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._build import open_manager
from .._outbox import WebhookDelivery, WebhookState
from ._common import ConfigOption, DatabaseOption, JsonOption, prepare, run
from ._output import FAILED, USAGE, fail, out, print_json, say

__all__ = ["list_webhooks", "retry_webhooks"]

_PIPE_WIDTH = 160
_STATE_STYLE = {
    WebhookState.PENDING: "cyan",
    WebhookState.DELIVERED: "green",
    WebhookState.FAILED: "red",
}


def list_webhooks(
    state: Annotated[
        WebhookState | None,
        typer.Option(help="Only deliveries in this state.", case_sensitive=False),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's deliveries.")] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many, newest first.", min=1, max=1000)
    ] = 50,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """The outgoing webhook deliveries, newest first: state, attempts, next try, last error."""
    settings = prepare(config, database_url, None)

    async def main() -> list[WebhookDelivery]:
        async with open_manager(settings) as manager:
            return await manager.webhooks(state=state, task_id=task, limit=limit)

    found = run(main)
    if json_output:
        print_json([delivery.model_dump(mode="json") for delivery in found])
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("tries", no_wrap=True, justify="right")
    table.add_column("next try", no_wrap=True)
    table.add_column("last error", no_wrap=True, overflow="ellipsis")
    for delivery in found:
        table.add_row(
            delivery.id,
            delivery.task_id,
            delivery.type,
            Text(delivery.state.value, style=_STATE_STYLE[delivery.state]),
            str(delivery.attempts),
            f"{delivery.next_attempt_at:%Y-%m-%d %H:%M:%S}" if delivery.next_attempt_at else "",
            Text(delivery.last_error or ""),
        )
    (out if out.is_terminal else Console(width=_PIPE_WIDTH, highlight=False)).print(table)
    if not found:
        say("no webhook deliveries")


def retry_webhooks(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Deliveries to send again.", show_default=False)
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed delivery.")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Re-arm failed deliveries: workers send them again, with a fresh retry budget."""
    if bool(ids) == failed:
        fail("name delivery ids or pass --failed (one of the two)", USAGE)
    settings = prepare(config, database_url, None)

    async def main() -> int:
        async with open_manager(settings) as manager:
            return await manager.retry_webhooks(None if failed else ids)

    rearmed = run(main)
    typer.echo(str(rearmed))
    if ids and rearmed == 0:
        fail("none of those deliveries is failed (only failed ones are re-armed)", FAILED)
    say(f"re-armed {rearmed} failed deliveries; workers send them again")
