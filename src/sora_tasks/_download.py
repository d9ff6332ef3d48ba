"""Streaming a provider's content to disk: whole and verified, or not at all."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._download_pace import Meter, Pace
from ._download_target import resolve_target
from ._exceptions import DownloadError
from .providers._base import ContentStream

__all__ = ["SavedFile", "check_target", "save_stream"]

# network chunks are small (about 64 KiB); each trip to a worker thread costs more than writing
# one, so they are gathered (not copied) into blocks, a few of which may wait for the disk
_BLOCK_BYTES = 1024 * 1024
_BLOCKS_IN_FLIGHT = 4
_PACE = Pace()


@dataclass(frozen=True, slots=True)
class SavedFile:
    """Where the content went, how big it is and its SHA-256 (when it was computed)."""

    path: Path
    byte_size: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class _Restart:
    md5: bool


async def check_target(target: str | os.PathLike[str]) -> Path:
    """The file a download to ``target`` would write; :class:`DownloadError` if it may not.

    Call it before requesting the content, so a missing directory or a target that is not a
    regular file (directory, device, FIFO, socket, dangling symlink) fails before any byte is
    asked for. A symlink to a regular file gives the file it points to.
    """
    return await anyio.to_thread.run_sync(resolve_target, target)


async def save_stream(
    stream: ContentStream,
    target: str | os.PathLike[str],
    *,
    max_bytes: int,
    checksum: bool = True,
    min_bytes_per_second: int = _PACE.min_bytes_per_second,
    speed_window: float = _PACE.window,
    stall_timeout: float = _PACE.stall_timeout,
) -> SavedFile:
    """Write ``stream`` to ``target`` through a temporary file beside it, then rename atomically.

    ``target`` is checked first (see :func:`check_target`); a symlink is written through and
    stays a link, and the returned path is the file written. :class:`DownloadError` is raised,
    and no file is left at ``target`` (an earlier file there stays untouched), when the body
    passes ``max_bytes``, does not match its declared length or MD5, or comes slower than
    ``min_bytes_per_second`` on average over ``speed_window`` seconds, or not at all for
    ``stall_timeout`` seconds. A stream that starts over (the server could not resume) is
    followed: what was written is discarded. Hashing (SHA-256 unless ``checksum`` is false; MD5
    whenever the server declared one) and writing happen in a worker thread while the next bytes
    arrive, so memory stays at a few MiB whatever the size.
    """
    meter = Meter(Pace(min_bytes_per_second, speed_window, stall_timeout))
    destination = await check_target(target)
    _check_declared(stream, max_bytes)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    try:
        try:
            handle = await anyio.to_thread.run_sync(temporary.open, "wb")
        except OSError as exc:
            raise DownloadError(
                f"cannot write in {destination.parent}: {exc.strerror or exc}"
            ) from None
        sink = _Sink(handle, sha256=checksum, md5=stream.md5 is not None)
        try:
            send, receive = anyio.create_memory_object_stream[list[bytes] | _Restart](
                _BLOCKS_IN_FLIGHT
            )
            async with anyio.create_task_group() as writing:
                writing.start_soon(_write_blocks, receive, sink)
                async with anyio.create_task_group() as watching, send:
                    watching.start_soon(meter.watch)
                    received = await _pump(stream, send, meter, max_bytes)
                    watching.cancel_scope.cancel()
            await anyio.to_thread.run_sync(_flush, handle)
        finally:
            await anyio.to_thread.run_sync(handle.close)
        _verify(stream, received, sink)
        await anyio.to_thread.run_sync(_replace, temporary, target, destination)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.Path(temporary).unlink(missing_ok=True)
        failure = _single(exc)
        if failure is not exc:
            raise failure from None
        raise
    return SavedFile(destination, received, sink.sha256.hexdigest() if sink.sha256 else None)


async def _pump(
    stream: ContentStream,
    send: MemoryObjectSendStream[list[bytes] | _Restart],
    meter: Meter,
    max_bytes: int,
) -> int:
    """Hand the body to the writer in blocks; the number of bytes in the body as it ends."""
    block: list[bytes] = []
    pending = received = 0

    async def restart() -> None:
        nonlocal block, pending, received
        _check_declared(stream, max_bytes)
        block, pending, received = [], 0, 0
        await send.send(_Restart(md5=stream.md5 is not None))

    async for chunk in stream.aiter_restartable(restart):
        size = len(chunk)
        received += size
        meter.arrived += size
        if received > max_bytes:
            raise DownloadError(f"content passed the download limit of {max_bytes:,} bytes")
        block.append(chunk)
        pending += size
        if pending >= _BLOCK_BYTES:
            await send.send(block)
            block, pending = [], 0
    if block:
        await send.send(block)
    return received


def _check_declared(stream: ContentStream, max_bytes: int) -> None:
    declared = stream.content_length
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"content is {declared:,} bytes; the download limit is {max_bytes:,}")


def _verify(stream: ContentStream, received: int, sink: _Sink) -> None:
    declared = stream.content_length
    if declared is not None and received != declared:
        raise DownloadError(f"content was cut short: {received:,} of {declared:,} bytes arrived")
    if stream.md5 is not None and (sink.md5 is None or sink.md5.digest() != stream.md5):
        raise DownloadError("content does not match the MD5 digest the server declared for it")


def _replace(temporary: Path, target: str | os.PathLike[str], destination: Path) -> None:
    if resolve_target(target) != destination:
        raise DownloadError(f"{target} changed while downloading; the download was not saved")
    os.replace(temporary, destination)


class _Sink:
    """The file and digests a download writes to; used from the worker thread only."""

    def __init__(self, handle: BinaryIO, *, sha256: bool, md5: bool) -> None:
        self.handle = handle
        self._want_sha256 = sha256
        self.sha256 = hashlib.sha256() if sha256 else None
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def write(self, block: list[bytes]) -> None:
        for digest in (self.sha256, self.md5):
            if digest is not None:
                for chunk in block:
                    digest.update(chunk)
        self.handle.writelines(block)

    def restart(self, md5: bool) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.sha256 = hashlib.sha256() if self._want_sha256 else None
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None


async def _write_blocks(
    blocks: MemoryObjectReceiveStream[list[bytes] | _Restart], sink: _Sink
) -> None:
    async with blocks:
        async for block in blocks:
            if isinstance(block, _Restart):
                await anyio.to_thread.run_sync(sink.restart, block.md5)
            else:
                await anyio.to_thread.run_sync(sink.write, block)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _single(exc: BaseException) -> BaseException:
    """The one error inside task-group wrapping, so callers see ``DownloadError`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
