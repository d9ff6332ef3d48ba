"""Operator commands: stats, health, cleanup, worker, simulate, db upgrade, db copy."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from .._build import build_store, open_manager
from .._circuits import ProviderHealth
from .._durations import parse_duration
from .._models import TaskStats
from .._settings import database_url
from ..storage import copy_tasks
from ._common import ConfigOption, DatabaseOption, JsonOption, UserOption, prepare, run
from ._health import serve_health
from ._output import USAGE, fail, print_json, say, show_health, show_stats

__all__ = ["cleanup", "db_copy", "db_upgrade", "health", "simulate", "stats", "worker"]

_LOG_LEVELS = ("debug", "info", "warning", "error")


def health(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """The configured providers with their circuit breakers, and the routes over them.

    Circuits live in each process: this one's start closed. A worker or an API server
    (``TaskManager.provider_health()``) shows what its own calls have seen.
    """
    settings = prepare(config, database_url, None)

    async def main() -> tuple[dict[str, list[str]], dict[str, ProviderHealth]]:
        async with open_manager(settings) as manager:
            return manager.routes, manager.provider_health()

    routes, circuits = run(main)
    if json_output:
        print_json(
            {
                "providers": {name: dataclasses.asdict(item) for name, item in circuits.items()},
                "routes": dict(routes),
            }
        )
    else:
        show_health(routes, circuits)


def stats(
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Counts by status and provider, success rate, render times and costs."""
    settings = prepare(config, database_url, None)

    async def main() -> TaskStats:
        async with open_manager(settings) as manager:
            return await manager.stats(user_id=user)

    result = run(main)
    if json_output:
        print_json(result)
    else:
        show_stats(result)


def cleanup(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete tasks that ended longer ago than this: 30d, 12h, 1h30m, or seconds.",
            show_default=False,
        ),
    ],
    keep_archived: Annotated[
        bool,
        typer.Option(
            "--keep-archived", help="Leave the archived videos of the deleted tasks in place."
        ),
    ] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete finished tasks (and images no task uses) older than a duration, with their
    archived videos."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        fail(f"--older-than: {exc}", USAGE)
    settings = prepare(config, database_url, None)

    async def main() -> int:
        async with open_manager(settings) as manager:
            return await manager.cleanup(older_than=age, delete_archived=not keep_archived)

    removed = run(main)
    if json_output:
        print_json({"removed": removed, "older_than_seconds": age.total_seconds()})
    else:
        typer.echo(
            f"removed {removed} task{'' if removed == 1 else 's'} that ended over {older_than} ago"
        )


def worker(
    download_dir: Annotated[
        Path | None,
        typer.Option(
            help="Fetch every finished video here at once (links expire).", show_default=False
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    health_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /livez, /readyz and /healthz on this port (0: any free port).",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option(help="The address the health endpoints listen on.")
    ] = "0.0.0.0",  # noqa: S104 (probes come from outside the pod)
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Poll tasks until SIGTERM or Ctrl-C, then stop gracefully (peers resume at once)."""
    if log_level.lower() not in _LOG_LEVELS:
        fail(f"--log-level: {log_level!r} is not one of {', '.join(_LOG_LEVELS)}", USAGE)
    settings = prepare(config, database_url, None)
    if download_dir is not None:
        settings = dataclasses.replace(settings, download_dir=download_dir)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    say(
        f"worker started with providers {', '.join(settings.providers)}; SIGTERM or Ctrl-C stops it"
    )

    async def main() -> None:
        async with open_manager(settings, poll=True) as manager:
            if health_port is None:
                await manager.run_worker()
                return
            async with serve_health(manager, health_host, health_port) as port:
                say(f"health checks on http://{health_host}:{port}/livez, /readyz, /healthz")
                await manager.run_worker()

    run(main)
    say("worker stopped")


def simulate(ctx: typer.Context) -> None:
    """Serve the provider simulator (the options of `python -m sora_tasks.testing --help`)."""
    from ..testing.__main__ import main as serve

    # Ctrl-C is how a simulator is stopped, even before the server has finished starting
    with contextlib.suppress(KeyboardInterrupt):
        serve(ctx.args)


def db_upgrade(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create the tables or bring them up to date (run once per deployment on PostgreSQL)."""
    settings = prepare(config, database_url, None)

    async def main() -> str:
        store = build_store(settings.database_url)
        try:
            await store.migrate()
        finally:
            await store.close()
        return repr(store)

    described = run(main)
    if json_output:
        print_json({"database": described, "upgraded": True})
    else:
        say(f"{described} is up to date")


def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="SQLAlchemy URL or SQLite file to copy into (created and migrated if needed)",
            show_default=False,
        ),
    ],
    config: ConfigOption = None,
    database: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy every task into another database (SQLite to PostgreSQL, say).

    Stop the workers first. Tasks already there are skipped: after an interruption, run it again.
    """
    settings = prepare(config, database, None)

    async def main() -> dict[str, object]:
        source, target = build_store(settings.database_url), build_store(database_url(to))
        try:
            await target.migrate()
            report = await copy_tasks(source, target)
        finally:
            await source.close()
            await target.close()
        return {"source": repr(source), "target": repr(target), **dataclasses.asdict(report)}

    result = run(main)
    if json_output:
        print_json(result)
    else:
        say(
            f"copied {result['copied']} tasks from {result['source']} to {result['target']}; "
            f"{result['skipped']} were there already"
        )
