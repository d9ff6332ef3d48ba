"""The saved copy of a task's video: found only when it is on this machine whole."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from ._models import MediaType, Task
from .providers._base import ContentStream

__all__ = ["SavedContent", "saved_copy"]

_CHUNK_BYTES = 256 * 1024


async def saved_copy(task: Task) -> Path | None:
    """The file ``task.result`` names, if it is a regular file of the recorded size."""
    result = task.result
    if result is None or result.local_path is None or result.byte_size is None:
        return None
    try:
        found = await anyio.Path(result.local_path).stat()
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode) or found.st_size != result.byte_size:
        return None
    return Path(result.local_path)


class SavedContent(ContentStream):
    """A :class:`ContentStream` over a saved copy; ``path`` lets a server send it with ranges."""

    def __init__(self, path: Path, *, byte_size: int, media_type: MediaType) -> None:
        self.path = path
        self.content_length = byte_size
        # an image's type is whatever the provider made; the file's own bytes tell, not us
        self.content_type = None if media_type is MediaType.IMAGE else "video/mp4"

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the file in chunks, read off the event loop."""
        async with await anyio.open_file(self.path, "rb") as handle:
            while chunk := await handle.read(_CHUNK_BYTES):
                yield chunk
