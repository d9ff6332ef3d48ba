"""Streaming a provider's content to disk: whole and verified, or not at all."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import anyio

from ._exceptions import DownloadError
from .providers._base import ContentStream

__all__ = ["SavedFile", "save_stream"]


@dataclass(frozen=True, slots=True)
class SavedFile:
    """Where the content went, how big it is and its SHA-256."""

    path: Path
    byte_size: int
    sha256: str


async def save_stream(
    stream: ContentStream, target: str | os.PathLike[str], *, max_bytes: int
) -> SavedFile:
    """Write ``stream`` to ``target`` through a temporary file beside it, then rename atomically.

    The declared ``Content-Length`` must match what arrived and the body must not pass
    ``max_bytes``; otherwise :class:`DownloadError` is raised and no file is left at ``target``
    (an earlier file there stays untouched).
    """
    destination = Path(target)
    declared = stream.content_length
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"content is {declared:,} bytes; the download limit is {max_bytes:,}")
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    received = 0
    try:
        async with await anyio.open_file(temporary, "wb") as handle:
            async for chunk in stream.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise DownloadError(f"content passed the download limit of {max_bytes:,} bytes")
                digest.update(chunk)
                await handle.write(chunk)
            await handle.flush()
            await anyio.to_thread.run_sync(os.fsync, handle.wrapped.fileno())
        if declared is not None and received != declared:
            raise DownloadError(
                f"content was cut short: {received:,} of {declared:,} bytes arrived"
            )
        await anyio.to_thread.run_sync(os.replace, temporary, destination)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.Path(temporary).unlink(missing_ok=True)
        raise
    return SavedFile(destination, received, digest.hexdigest())
