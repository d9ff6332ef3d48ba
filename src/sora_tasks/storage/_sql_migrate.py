"""Applying the Alembic migrations shipped in ``storage/migrations`` to a connection."""

from __future__ import annotations

from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

__all__ = ["upgrade_to_head"]

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
