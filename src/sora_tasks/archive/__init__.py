"""Archiving finished videos to object storage (S3, GCS, Azure, R2, MinIO, a directory).

Give the manager an archive (``TaskManager(archive="s3://bucket/videos")``) and the engine
streams every completed task's video into it during the content phase, records the object in
``task.result`` (``archive_uri``, ``archive_byte_size``, ``archive_sha256``), and serves it back
through :meth:`~sora_tasks.TaskManager.content_url` and
:meth:`~sora_tasks.TaskManager.open_content`. :func:`open_archive` and
:class:`ObstoreArchive` need the ``archive`` extra (``pip install "sora-tasks[archive]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import (
    DEFAULT_KEY_TEMPLATE,
    Archive,
    ArchiveError,
    InvalidArchiveError,
    archive_key,
    check_key_template,
)
from ._upload import ArchivedObject, archive_stream
from ._verify import ArchiveProblem, verify_archive

if TYPE_CHECKING:
    from ._obstore import ObstoreArchive, open_archive

__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "Archive",
    "ArchiveError",
    "ArchiveProblem",
    "ArchivedObject",
    "InvalidArchiveError",
    "ObstoreArchive",
    "archive_key",
    "archive_stream",
    "check_key_template",
    "open_archive",
    "verify_archive",
]

_OPTIONAL = ("ObstoreArchive", "open_archive")


def __getattr__(name: str) -> Any:
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import _obstore
    except ImportError as exc:
        raise ImportError(
            f'archives need the "archive" extra: pip install "sora-tasks[archive]" ({exc})'
        ) from exc
    return getattr(_obstore, name)
