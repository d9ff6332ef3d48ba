"""Archive commands: ``archive verify``."""

from __future__ import annotations

from typing import Annotated

import typer

from .._build import open_manager
from ..archive import ArchiveProblem, verify_archive
from ._common import ConfigOption, DatabaseOption, JsonOption, UserOption, prepare, run
from ._output import FAILED, USAGE, fail, print_json, say

__all__ = ["verify"]


def verify(
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum", help="Read every object back and compare its SHA-256 (downloads all)."
        ),
    ] = False,
    user: UserOption = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the tasks whose archived video is missing or differs (size, or SHA-256)."""
    settings = prepare(config, database_url, None)
    if settings.archive is None:
        fail("no archive is configured (archive in the config file, or SORA_TASKS_ARCHIVE)", USAGE)

    async def main() -> list[ArchiveProblem]:
        async with open_manager(settings) as manager:
            return [
                problem
                async for problem in verify_archive(manager, checksum=checksum, user_id=user)
            ]

    problems = run(main)
    if json_output:
        print_json(
            [
                {"task_id": p.task_id, "uri": p.uri, "problem": p.problem, "detail": p.detail}
                for p in problems
            ]
        )
    else:
        for problem in problems:
            typer.echo(f"{problem.task_id}  {problem.problem:<10}  {problem.uri}  {problem.detail}")
        if not problems:
            say("every archived video is in place", "green")
    if problems:
        raise typer.Exit(FAILED)
