"""A :class:`ContentStream` over streamed ``httpx2`` responses: a download that resumes.

When the body breaks off (connection reset, truncated body, read timeout), the stream asks
again: with ``Range: bytes=N-`` (and ``If-Range``) when the server said ``Accept-Ranges: bytes``,
and takes the ``206`` only if its ``Content-Range`` starts at ``N`` and ends at the total it
declared before. Anything else (a ``200``, a range that does not fit, no ranges at all) means the
body starts over from byte zero, which only a consumer that can discard what it has allows
(:meth:`ContentStream.aiter_restartable`). Each download gets a small budget of such retries.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import anyio
import httpx2

from .._exceptions import DownloadError, ProviderError
from ._base import ContentStream

__all__ = ["Reopen", "ResponseContent"]

Reopen = Callable[[Mapping[str, str]], Awaitable[httpx2.Response]]
"""Send the download's request again with extra headers; return the streamed 2xx answer."""

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_MAX_BACKOFF = 2.0


class ResponseContent(ContentStream):
    """A :class:`ContentStream` over an open streamed response, resumed through ``reopen``.

    Without ``reopen`` (or with ``resumes=0``) a body that breaks off is a
    :class:`DownloadError`. ``sleep`` waits out the short backoff between attempts.
    """

    def __init__(
        self,
        response: httpx2.Response,
        reopen: Reopen | None = None,
        *,
        resumes: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if resumes < 0:
            raise ValueError(f"resumes must not be negative (got {resumes})")
        self._reopen = reopen
        self._resumes = resumes
        self._backoff = backoff
        self._sleep = sleep
        self._response = response
        self._adopt(response)

    async def aclose(self) -> None:
        """Close the response being read."""
        await self._response.aclose()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives, resumed with ranges where the server allows it."""
        return self._iterate(None)

    def aiter_restartable(self, restart: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
        """Yield the body, resumed with ranges or else started over after ``restart()``."""
        return self._iterate(restart)

    def _adopt(self, response: httpx2.Response) -> None:
        headers = response.headers
        self.content_type = headers.get("content-type")
        encoded = headers.get("content-encoding", "identity").lower() != "identity"
        length = headers.get("content-length", "")
        # a declared length or digest describes encoded bytes, so it cannot check a decoded body
        self.content_length = int(length) if length.isdigit() and not encoded else None
        self.md5 = None if encoded else _declared_md5(headers)
        self._ranges = not encoded and headers.get("accept-ranges", "").lower() == "bytes"
        etag = headers.get("etag", "")
        strong = etag if etag and not etag.startswith("W/") else None
        self._validator = strong or headers.get("last-modified")

    async def _iterate(self, restart: Callable[[], Awaitable[None]] | None) -> AsyncIterator[bytes]:
        position = 0
        attempt = 0
        while True:
            try:
                async for chunk in self._response.aiter_bytes():
                    position += len(chunk)
                    yield chunk
                return
            except httpx2.RequestError as exc:
                broke = f"the download broke off after {position:,} bytes ({type(exc).__name__})"
                cause: BaseException = exc
            if self._reopen is None or attempt == self._resumes:
                raise DownloadError(broke) from cause
            if position and not self._ranges and restart is None:
                raise DownloadError(f"{broke}; the server offers no byte ranges") from cause
            attempt += 1
            await self._response.aclose()
            await self._sleep(min(self._backoff * 2 ** (attempt - 1), _MAX_BACKOFF))
            try:
                position = await self._resume(position, restart)
            except ProviderError as exc:
                raise DownloadError(f"{broke}; asking again failed: {exc}") from exc

    async def _resume(self, position: int, restart: Callable[[], Awaitable[None]] | None) -> int:
        """Reopen at ``position`` if the server allows it; else from zero. The new position."""
        assert self._reopen is not None
        if position and self._ranges:
            headers = {"Range": f"bytes={position}-"}
            if self._validator is not None:
                headers["If-Range"] = self._validator
            response = await self._reopen(headers)
            if response.status_code == 206:
                if self._fits(response, position):
                    self._response = response
                    return position
                await response.aclose()
                self._ranges = False
                response = await self._reopen({})
        else:
            response = await self._reopen({})
        if position:
            if restart is None:
                await response.aclose()
                raise DownloadError(
                    f"the download broke off after {position:,} bytes and the server sent it "
                    "whole again; this reader cannot start over"
                )
            self._response = response
            self._adopt(response)
            await restart()
        else:
            self._response = response
            self._adopt(response)
        return 0

    def _fits(self, response: httpx2.Response, position: int) -> bool:
        """Whether a 206 continues exactly where the body broke off, with the same total."""
        found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if found is None:
            return False
        start, end, total = (int(part) for part in found.groups())
        if start != position or end != total - 1:
            return False
        if self.content_length is None:
            self.content_length = total
        return total == self.content_length


def _declared_md5(headers: httpx2.Headers) -> bytes | None:
    values = headers.get_list("content-md5")
    for header in headers.get_list("x-goog-hash", split_commas=True):
        name, _, value = header.strip().partition("=")
        if name.lower() == "md5":
            values.append(value)
    for value in values:
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            continue
        if len(digest) == 16:
            return digest
    return None
