"""The archive interface: an object store the engine streams finished videos into.

An archive stores whole objects under keys and hands them back; it knows nothing of tasks. The
engine decides the keys (:func:`archive_key`), hashes and counts what it streams, and records
the outcome in ``task.result``.
"""

from __future__ import annotations

import abc
import string
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from .._exceptions import InvalidRequestError, SoraTasksError

if TYPE_CHECKING:
    from .._models import Task
    from ..providers._base import ContentStream

__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "Archive",
    "ArchiveError",
    "InvalidArchiveError",
    "archive_key",
    "check_key_template",
    "thumbnail_key",
]

DEFAULT_KEY_TEMPLATE = "{user_id}/{task_id}.mp4"
"""Where a task's video goes in the archive unless the manager is told otherwise."""

# the key segment of a task created without a user: not a valid user id of any sane backend,
# and it keeps every key of a template at the same depth
NO_USER = "_anonymous"
_FIELDS = frozenset({"user_id", "task_id", "provider", "model"})


class ArchiveError(SoraTasksError):
    """The archive failed to store, read, sign or delete an object."""


class InvalidArchiveError(InvalidRequestError):
    """The archive cannot be used: unknown scheme, missing bucket or credentials, bad template.

    Raised when the manager starts, before any task is taken. The message names what is wrong
    (a bucket, an environment variable), never a credential's value.
    """


class Archive(abc.ABC):
    """Where finished videos are kept: an object store addressed by keys.

    :attr:`uri` is the archive's base (``s3://bucket/prefix``); an object's URI is the base, a
    slash and its key. :meth:`upload` must be atomic: an upload that fails or is interrupted
    (even by the process being killed) leaves no object at ``key``, and an earlier object there
    is replaced only by a complete new one. Subclass it to keep videos elsewhere;
    :class:`~sora_tasks.archive.ObstoreArchive` covers S3, GCS, Azure, local files and memory.
    """

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The archive's base URI, without a trailing slash."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise :class:`InvalidArchiveError` if the archive cannot be used (bucket, access)."""

    @abc.abstractmethod
    async def upload(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> None:
        """Store the bytes ``chunks`` yields at ``key``, atomically, without holding them all."""

    @abc.abstractmethod
    async def size(self, key: str) -> int | None:
        """The size in bytes of the object at ``key``; ``None`` if there is none."""

    @abc.abstractmethod
    def open(self, key: str) -> AbstractAsyncContextManager[ContentStream]:
        """Open the object at ``key`` for streaming; :class:`ArchiveError` if it is missing."""

    async def sign(self, key: str, expires_in: timedelta) -> str | None:
        """A presigned GET URL for ``key``, valid ``expires_in``; ``None`` if the store cannot."""
        return None

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object at ``key``; a missing object is not an error."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most archives hold nothing
        """Release connections. The manager calls it on exit."""

    def uri_of(self, key: str) -> str:
        """The URI of the object at ``key``."""
        return f"{self.uri}/{key}"

    def key_of(self, uri: str) -> str | None:
        """The key of the object ``uri`` names; ``None`` if it is not in this archive."""
        base = f"{self.uri}/"
        return uri[len(base) :] if uri.startswith(base) and len(uri) > len(base) else None


def check_key_template(template: str) -> str:
    """``template`` if it is a usable key template; :class:`InvalidArchiveError` otherwise.

    Fields: ``{user_id}``, ``{task_id}``, ``{provider}``, ``{model}``; ``{task_id}`` is required
    so no two tasks share an object.
    """
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InvalidArchiveError(
            f"archive key template {template!r} is malformed: {exc}", field="archive_key"
        ) from None
    unknown = fields - _FIELDS
    if unknown:
        raise InvalidArchiveError(
            f"archive key template {template!r} names unknown fields {sorted(unknown)}",
            field="archive_key",
            limit=sorted(_FIELDS),
        )
    if "task_id" not in fields:
        raise InvalidArchiveError(
            f"archive key template {template!r} must contain {{task_id}}",
            field="archive_key",
        )
    if template.startswith("/") or template.endswith("/"):
        raise InvalidArchiveError(
            f"archive key template {template!r} must not start or end with '/'",
            field="archive_key",
        )
    return template


def archive_key(template: str, task: Task) -> str:
    """The key of ``task``'s video under ``template`` (see :func:`check_key_template`).

    Every value is one path segment: a user id holding ``/`` or ``..`` is percent-encoded, so
    it cannot climb out of its own prefix.
    """
    values = {
        "user_id": task.user_id if task.user_id else NO_USER,
        "task_id": task.id,
        "provider": task.provider,
        "model": task.model,
    }
    return template.format_map({name: _segment(value) for name, value in values.items()})


def thumbnail_key(video_key: str, content_type: str | None) -> str:
    """The key of the thumbnail beside the video at ``video_key``."""
    stem = video_key.rsplit(".", 1)[0] if "." in video_key.rsplit("/", 1)[-1] else video_key
    kind = (content_type or "").split(";")[0].strip().lower()
    suffix = {"image/webp": ".webp", "image/jpeg": ".jpg", "image/png": ".png"}.get(kind, "")
    return f"{stem}.thumbnail{suffix}"


def _segment(value: str) -> str:
    encoded = quote(value, safe="-_.~@+=")
    return "%2E%2E" if encoded == ".." else "%2E" if encoded == "." else encoded
