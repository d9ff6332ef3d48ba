"""Applying the Alembic migrations shipped in ``storage/migrations`` to a connection."""

from __future__ import annotations

from functools import cache
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ._sql_schema import VERSION_TABLE

__all__ = ["schema_behind", "upgrade_to_head"]

SCRIPT_LOCATION: Final = "sora_tasks.storage:migrations"
# any fixed number: it names the lock that makes concurrent upgrades take turns
_PG_LOCK_KEY: Final = 0x50_4A_7A_5C


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration that runs the packaged migrations on ``connection``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema up to date; workers starting together upgrade one at a time."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    command.upgrade(alembic_config(connection), "head")


def schema_behind(connection: Connection) -> str | None:
    """Why the database's schema is too old for this code (never migrated, or at an older
    revision); None when it is at the head or at a revision this code does not know, which
    is a newer one during a rolling upgrade.
    """
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    current = set(context.get_current_heads())
    heads, known = _revisions()
    if not current:
        return "it has no sora-tasks tables"
    if current & heads or not current <= known:
        return None
    return (
        f"it is at revision {', '.join(sorted(current))}; "
        f"this code needs {', '.join(sorted(heads))}"
    )


@cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The head revisions and every revision shipped in the package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    script = ScriptDirectory.from_config(config)
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return frozenset(script.get_heads()), known
