"""Task stores and the protocol they implement.

:class:`SQLStore` needs the ``sql`` extra and is imported only when first used, so this package
works without SQLAlchemy installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import ChangeCursor, TaskStore
from ._copy import CopyReport, copy_tasks
from .memory import InMemoryStore

if TYPE_CHECKING:
    from .sql import SQLStore

__all__ = ["ChangeCursor", "CopyReport", "InMemoryStore", "SQLStore", "TaskStore", "copy_tasks"]


def __getattr__(name: str) -> Any:
    if name != "SQLStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from .sql import SQLStore
    except ImportError as exc:
        raise ImportError(
            f'SQLStore needs the "sql" extra: pip install "sora-tasks[sql]" ({exc})'
        ) from exc
    return SQLStore
