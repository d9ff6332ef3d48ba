"""The SQL the store sends, checked as compiled text, plus its packaging and optional import."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from importlib.resources import files

from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from sqlalchemy.engine import Dialect

from sora_tasks import Task
from sora_tasks.storage import _sql_queries as q
from sora_tasks.storage._sql_migrate import SCRIPT_LOCATION
from sora_tasks.storage._sql_schema import tasks


def dialect_of(url: str) -> Dialect:
    return make_url(url).get_dialect()()


SQLITE = dialect_of("sqlite+aiosqlite://")
POSTGRES = dialect_of("postgresql+asyncpg://")


def compiled(dialect: Dialect, *, content: bool = True) -> str:
    statement = q.claim_due(dialect.name, owner="w1", limit=100, lease_seconds=30, content=content)
    return " ".join(str(statement.compile(dialect=dialect)).split())


def test_sqlite_claim_is_one_conditional_update_returning() -> None:
    sql = compiled(SQLITE)
    assert "FOR UPDATE" not in sql
    assert re.fullmatch(
        r"UPDATE sora_tasks SET .*"
        r" WHERE sora_tasks\.id IN \(SELECT sora_tasks\.id FROM sora_tasks WHERE .*"
        r" ORDER BY sora_tasks\.next_poll_at, sora_tasks\.id LIMIT \? OFFSET \?\)"
        r" AND \(sora_tasks\.lease_expires_at IS NULL OR sora_tasks\.lease_expires_at <= .*\)"
        r" RETURNING .*",
        sql,
    ), sql


def test_postgres_claim_skips_rows_other_claimers_hold() -> None:
    sql = compiled(POSTGRES)
    assert re.search(r"IN \(SELECT .* LIMIT \$\d+::INTEGER FOR UPDATE SKIP LOCKED\)", sql), sql
    assert "RETURNING" in sql


def test_claims_measure_time_with_the_database_clock_only() -> None:
    for dialect, clock in [(SQLITE, "strftime("), (POSTGRES, "now()")]:
        statement = q.claim_due(dialect.name, owner="w1", limit=5, lease_seconds=30, content=False)
        compiled_statement = statement.compile(dialect=dialect)
        assert clock in str(compiled_statement)
        assert not any(isinstance(v, datetime) for v in compiled_statement.params.values())


def test_claim_filter_repeats_the_partial_index_predicate_literally() -> None:
    # planners prove a partial index usable only from literal predicates
    sql = compiled(SQLITE)
    assert "sora_tasks.status IN ('PROCESSING', 'QUEUED')" in sql
    assert "sora_tasks.next_poll_at IS NOT NULL" in sql
    due = next(index for index in tasks.indexes if index.name == "ix_sora_tasks_due")
    assert [column.name for column in due.columns] == ["next_poll_at", "id"]


def test_claims_without_content_leave_collecting_tasks_alone() -> None:
    with_content, without = compiled(SQLITE), compiled(SQLITE, content=False)
    assert "sora_tasks.content_pending" in with_content
    assert "sora_tasks.content_pending" not in without


def test_migrations_ship_inside_the_package() -> None:
    folder = files("sora_tasks.storage") / "migrations"
    assert (folder / "env.py").is_file()
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    assert ScriptDirectory.from_config(config).get_heads() == ["0005"]


def test_storage_imports_without_the_sql_extra_and_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from sora_tasks.storage import InMemoryStore\n"
        "try:\n"
        "    from sora_tasks.storage import SQLStore\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert 'pip install "sora-tasks[sql]"' in result.stdout


def test_every_task_field_has_a_column() -> None:
    assert set(Task.model_fields) <= set(tasks.c.keys())
