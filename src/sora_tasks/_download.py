"""Streaming a provider's content to disk: whole and verified, or not at all."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ._exceptions import DownloadError
from .providers._base import ContentStream

__all__ = ["SavedFile", "save_stream"]

# network chunks are small (about 64 KiB); each trip to a worker thread costs more than writing
# one, so they are gathered (not copied) into blocks, a few of which may wait for the disk
_BLOCK_BYTES = 1024 * 1024
_BLOCKS_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class SavedFile:
    """Where the content went, how big it is and its SHA-256 (when it was computed)."""

    path: Path
    byte_size: int
    sha256: str | None


async def save_stream(
    stream: ContentStream,
    target: str | os.PathLike[str],
    *,
    max_bytes: int,
    checksum: bool = True,
) -> SavedFile:
    """Write ``stream`` to ``target`` through a temporary file beside it, then rename atomically.

    The declared ``Content-Length`` must match what arrived and the body must not pass
    ``max_bytes``; otherwise :class:`DownloadError` is raised and no file is left at ``target``
    (an earlier file there stays untouched). Hashing (unless ``checksum`` is false) and writing
    happen in a worker thread while the next bytes arrive, so memory stays at a few MiB whatever
    the size.
    """
    destination = Path(target)
    declared = stream.content_length
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"content is {declared:,} bytes; the download limit is {max_bytes:,}")
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256() if checksum else None
    received = 0
    try:
        handle = await anyio.to_thread.run_sync(temporary.open, "wb")
        try:
            send, receive = anyio.create_memory_object_stream[list[bytes]](_BLOCKS_IN_FLIGHT)
            async with anyio.create_task_group() as group:
                group.start_soon(_write_blocks, receive, handle, digest)
                async with send:
                    block: list[bytes] = []
                    pending = 0
                    async for chunk in stream.aiter_bytes():
                        received += len(chunk)
                        if received > max_bytes:
                            raise DownloadError(
                                f"content passed the download limit of {max_bytes:,} bytes"
                            )
                        block.append(chunk)
                        pending += len(chunk)
                        if pending >= _BLOCK_BYTES:
                            await send.send(block)
                            block, pending = [], 0
                    if block:
                        await send.send(block)
            await anyio.to_thread.run_sync(_flush, handle)
        finally:
            await anyio.to_thread.run_sync(handle.close)
        if declared is not None and received != declared:
            raise DownloadError(
                f"content was cut short: {received:,} of {declared:,} bytes arrived"
            )
        await anyio.to_thread.run_sync(os.replace, temporary, destination)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.Path(temporary).unlink(missing_ok=True)
        failure = _single(exc)
        if failure is not exc:
            raise failure from None
        raise
    return SavedFile(destination, received, digest.hexdigest() if digest else None)


async def _write_blocks(
    blocks: MemoryObjectReceiveStream[list[bytes]],
    handle: BinaryIO,
    digest: hashlib._Hash | None,
) -> None:
    def write(block: list[bytes]) -> None:
        if digest is not None:
            for chunk in block:
                digest.update(chunk)
        handle.writelines(block)

    async with blocks:
        async for block in blocks:
            await anyio.to_thread.run_sync(write, block)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _single(exc: BaseException) -> BaseException:
    """The one error inside task-group wrapping, so callers see ``DownloadError`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
