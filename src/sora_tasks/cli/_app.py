"""The Typer application: the commands, and an entry point that keeps every error to one line."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from .._version import __version__
from . import _archive, _ops, _serve, _tasks, _webhooks
from ._output import USAGE, say

__all__ = ["app", "main"]

# typer 0.26 and later carry their own copy of click; earlier ones use the click package
_errors: Any = importlib.import_module(
    "typer._click.exceptions" if importlib.util.find_spec("typer._click") else "click.exceptions"
)

app = typer.Typer(
    help="Submit, track and download AI video-generation jobs.",
    no_args_is_help=True,
    # a traceback's local variables could include a key
    pretty_exceptions_show_locals=False,
)
_db = typer.Typer(help="Manage the task database.", no_args_is_help=True)
app.add_typer(_db, name="db")
_archives = typer.Typer(
    help="Check the object storage videos are archived to.", no_args_is_help=True
)
app.add_typer(_archives, name="archive")
_hooks = typer.Typer(help="The outgoing webhook deliveries.", no_args_is_help=True)
app.add_typer(_hooks, name="webhooks")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sora-tasks {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Submit, track and download AI video-generation jobs."""


app.command()(_tasks.generate)
app.command()(_tasks.submit)
app.command()(_tasks.status)
app.command("list")(_tasks.list_tasks)
app.command()(_tasks.wait)
app.command()(_tasks.download)
app.command()(_tasks.cancel)
app.command()(_ops.stats)
app.command()(_ops.health)
app.command()(_ops.cleanup)
app.command()(_ops.worker)
app.command()(_serve.serve)
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(_ops.simulate)
_db.command("upgrade")(_ops.db_upgrade)
_db.command("copy")(_ops.db_copy)
_archives.command("verify")(_archive.verify)
_hooks.command("list")(_webhooks.list_webhooks)
_hooks.command("retry")(_webhooks.retry_webhooks)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``sora-tasks`` script: run a command, exit with its code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="sora-tasks", standalone_mode=False)
    except _errors.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
            sys.exit(USAGE)
        usage = isinstance(exc, _errors.UsageError) and exc.ctx is not None
        where = f" (see {exc.ctx.command_path} --help)" if usage else ""
        say(f"error: {exc.format_message()}{where}", "red")
        code = exc.exit_code
    except typer.Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
