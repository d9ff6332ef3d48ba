"""A :class:`ContentStream` over a streamed ``httpx2`` response: a download in progress."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from .._exceptions import DownloadError
from ._base import ContentStream

__all__ = ["ResponseContent"]


class ResponseContent(ContentStream):
    """A :class:`ContentStream` over an open streamed ``httpx2`` response."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self.content_type = response.headers.get("content-type")
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        length = response.headers.get("content-length", "")
        # a declared length counts encoded bytes, so it cannot check a decoded body
        self.content_length = int(length) if length.isdigit() and not encoded else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives; a broken connection is a :class:`DownloadError`."""
        received = 0
        try:
            async for chunk in self._response.aiter_bytes():
                received += len(chunk)
                yield chunk
        except httpx2.RequestError as exc:
            raise DownloadError(
                f"the download broke off after {received:,} bytes ({type(exc).__name__})"
            ) from exc
