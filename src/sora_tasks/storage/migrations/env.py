"""Alembic environment: migrations run on the connection ``SQLStore.migrate()`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sora_tasks.storage._sql_schema import VERSION_TABLE, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection: Connection | None = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run these migrations through SQLStore.migrate(), not the alembic CLI")
_run(_connection)
