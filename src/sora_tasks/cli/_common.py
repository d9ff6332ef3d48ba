"""What every command shares: the common options, loading settings, and one exit per error."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import anyio
import typer

from .._exceptions import (
    InvalidRequestError,
    SoraTasksError,
    TaskNotFoundError,
)
from .._options import CreateOptions
from .._settings import FAKE, ConfigError, Flags, Settings, key_variables_hint, load_settings
from ._output import FAILED, USAGE, fail, say

__all__ = [
    "ConfigOption",
    "DatabaseOption",
    "JsonOption",
    "ProviderOption",
    "UserOption",
    "in_flags",
    "prepare",
    "run",
]

_T = TypeVar("_T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file [default: $SORA_TASKS_CONFIG, ./sora-tasks.toml, user config dir]",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL or SQLite file [default: $SORA_TASKS_DATABASE_URL, the config file, "
        "an SQLite file in the user data dir]",
        show_default=False,
    ),
]
ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        help="Provider name [default: $SORA_TASKS_PROVIDER, the config file's default_provider]",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Act only on this user's tasks.", show_default=False)
]


def prepare(
    config: Path | None, database_url: str | None, provider: str | None, *, announce: bool = False
) -> Settings:
    """Load the settings of this invocation and tell the user what they should know.

    ``announce`` is for commands that talk to a provider: they say when the fake one stands in.
    """
    try:
        settings = load_settings(Flags(config=config, database_url=database_url, provider=provider))
    except ConfigError as exc:
        fail(str(exc), USAGE)
    for note in settings.notes:
        say(f"warning: {note}", "yellow")
    if announce and settings.fallback and settings.default_provider == FAKE:
        say(
            "No provider configured: using the built-in fake provider (no network, no key). "
            f"Set {key_variables_hint()}, or write a config file to go live.",
            "yellow",
        )
    return settings


def run(main: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``main`` on an event loop; turn every expected error into one line and an exit code."""
    try:
        return anyio.run(main)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) != 1 or not isinstance(leaves[0], Exception):
            raise
        _exit_for(leaves[0], group)
    except Exception as exc:
        _exit_for(exc, exc)


def _exit_for(exc: Exception, original: BaseException) -> NoReturn:
    """Leave with the exit code that ``exc`` calls for, or re-raise ``original``."""
    if isinstance(exc, typer.Exit):
        raise exc
    if isinstance(exc, InvalidRequestError):
        fail(in_flags(exc), USAGE)
    if isinstance(exc, ConfigError | TaskNotFoundError):
        fail(str(exc), USAGE)
    if isinstance(exc, SoraTasksError):
        fail(str(exc), FAILED)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", FAILED)
    if _is_database_error(exc):
        fail(f"database: {str(exc).splitlines()[0]}", FAILED)
    raise original


# the request's fields that the job commands take as flags
_REQUEST_FIELDS = frozenset(CreateOptions.__optional_keys__) - {
    "media_type",
    "metadata",
    "deadline",
}
# the library speaks of Python arguments; on the command line they are flags
_ARGUMENTS = {
    "allow_unsupported=True": "--allow-unsupported",
    "provider_options={...}": "--option KEY=VALUE",
}
_FLAGS = {
    "reference_image": "--image",
    "reference_images": "--reference",
    "provider_options": "--option",
    "user_id": "--user",
}


# names written with an underscore are argument names wherever they appear in a message
_SPELT_OUT = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def in_flags(exc: InvalidRequestError) -> str:
    """The message of ``exc`` with the Python arguments it names spelt as the CLI's flags."""
    message = str(exc)
    for argument, flag in _ARGUMENTS.items():
        message = message.replace(argument, flag)
    field = exc.field.split(".", 1)[0]
    if field in _REQUEST_FIELDS and message.startswith((f"{exc.field}: ", f"{field} ")):
        message = _flag(field) + message[len(field) :]
    return _SPELT_OUT.sub(
        lambda match: _flag(match[0]) if match[0] in _REQUEST_FIELDS else match[0], message
    )


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _is_database_error(exc: Exception) -> bool:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - the cli extra brings SQLAlchemy
        return False
    return isinstance(exc, SQLAlchemyError)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves
