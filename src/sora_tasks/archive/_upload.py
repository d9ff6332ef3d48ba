"""Streaming a provider's content into an archive: whole, counted and hashed, or not at all."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from .._download_pace import Meter, Pace
from .._exceptions import DownloadError
from ..providers._base import ContentStream
from ._base import Archive, ArchiveError

__all__ = ["ArchivedObject", "archive_stream"]

# network chunks are about 64 KiB; gathering them into blocks lets the hashing run in a thread
# (hashlib lets go of the GIL for large buffers) while the store uploads the previous block
_BLOCK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """An object the engine stored: its URI, size and SHA-256 (of the bytes streamed)."""

    uri: str
    byte_size: int
    sha256: str


async def archive_stream(
    archive: Archive, key: str, stream: ContentStream, *, max_bytes: int, pace: Pace
) -> ArchivedObject:
    """Upload ``stream`` to ``key``, hashing it on the way; check the stored size after.

    The body is checked against its declared length and MD5 and ``max_bytes`` before its last
    byte goes, so a bad body aborts the upload and leaves no object. A body slower than
    ``pace`` fails the same way. Raises :class:`DownloadError` for a bad body,
    :class:`ArchiveError` when the store fails or keeps something else than was sent.
    """
    declared = stream.content_length
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"content is {declared:,} bytes; the download limit is {max_bytes:,}")
    meter = Meter(pace)
    body = _Body(stream, meter, max_bytes)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(meter.watch)
            await archive.upload(key, body.blocks(), content_type=stream.content_type)
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        raise _single(group_error) from None
    stored = await archive.size(key)
    if stored != body.received:
        raise ArchiveError(
            f"{archive.uri_of(key)} holds {stored} bytes after an upload of {body.received:,}"
        )
    return ArchivedObject(archive.uri_of(key), body.received, body.sha256.hexdigest())


class _Body:
    """The stream as blocks for the store, counting and hashing them as they pass."""

    def __init__(self, stream: ContentStream, meter: Meter, max_bytes: int) -> None:
        self._stream = stream
        self._meter = meter
        self._max_bytes = max_bytes
        self.received = 0
        self.sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if stream.md5 is not None else None

    async def blocks(self) -> AsyncIterator[bytes]:
        block: list[bytes] = []
        pending = 0
        async for chunk in self._stream.aiter_bytes():
            self.received += len(chunk)
            self._meter.arrived += len(chunk)
            if self.received > self._max_bytes:
                raise DownloadError(
                    f"content passed the download limit of {self._max_bytes:,} bytes"
                )
            block.append(chunk)
            pending += len(chunk)
            if pending >= _BLOCK_BYTES:
                yield await self._hashed(block)
                block, pending = [], 0
        last = await self._hashed(block) if block else b""
        self._verify()
        if last:
            yield last

    async def _hashed(self, block: list[bytes]) -> bytes:
        joined = b"".join(block)
        await anyio.to_thread.run_sync(self._update, joined)
        return joined

    def _update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)

    def _verify(self) -> None:
        declared = self._stream.content_length
        if declared is not None and self.received != declared:
            raise DownloadError(
                f"content was cut short: {self.received:,} of {declared:,} bytes arrived"
            )
        if self._md5 is not None and self._md5.digest() != self._stream.md5:
            raise DownloadError("content does not match the MD5 digest the server declared for it")


def _single(exc: BaseException) -> BaseException:
    """The one error inside task-group wrapping, so callers see it as itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
