"""Vertex AI's inline videos, read as they stream: the operation without its video, and the video.

Without ``storageUri``, ``fetchPredictOperation`` answers with the whole video inside the JSON
(``"bytesBase64Encoded": "<base64>"``), megabytes of it. :class:`InlineVideo` scans the answer
chunk by chunk: it keeps the JSON around the first such string (with the string replaced by a
short marker, so the operation still parses and still shows a video) and decodes the string's
base64 into bytes as it passes, four characters at a time. Nothing holds the video whole.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["INLINE_MARKER", "InlineVideo"]

INLINE_MARKER = "sora-tasks:inline-video"
"""What the kept JSON holds in place of the inline video."""

_OPENING = re.compile(rb'"(?:bytesBase64Encoded|encodedVideo)"\s*:\s*"')
_KEEP = 64  # enough of a chunk's end to hold a split opening


class InlineVideo:
    """Splits a streamed operation into its JSON (``json``) and its first inline video.

    Feed every chunk to :meth:`feed`, which returns the video bytes that chunk completed; then
    call :meth:`finish`. ``max_json_bytes`` bounds what is kept.
    """

    def __init__(self, *, max_json_bytes: int) -> None:
        self.json = bytearray()
        self.found = False
        self._max = max_json_bytes
        self._state = "seek"
        self._tail = b""
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        """Take the next chunk; the video bytes it completed (often none)."""
        data = self._tail + chunk
        self._tail = b""
        if self._state == "seek":
            found = _OPENING.search(data)
            if found is None:
                self._keep(data[:-_KEEP])
                self._tail = data[-_KEEP:]
                return b""
            self._keep(data[: found.end()])
            self._state, self.found = "inside", True
            data = data[found.end() :]
        if self._state == "inside":
            end = data.find(b'"')
            part = data if end < 0 else data[:end]
            video = self._decode(part.replace(b"\\", b""), last=end >= 0)
            if end >= 0:
                self._keep(INLINE_MARKER.encode() + data[end:])
                self._state = "after"
            return video
        self._keep(data)
        return b""

    def finish(self) -> None:
        """Check the answer ended whole (not inside the video)."""
        if self._state == "inside":
            raise ValueError("the operation ended inside its inline video")
        self._keep(self._tail)
        self._tail = b""

    def _decode(self, text: bytes, *, last: bool) -> bytes:
        text = self._carry + text
        cut = len(text) if last else len(text) - len(text) % 4
        self._carry = text[cut:]
        try:
            return base64.b64decode(text[:cut], validate=True)
        except binascii.Error:
            raise ValueError("the inline video is not valid base64") from None

    def _keep(self, data: bytes) -> None:
        self.json += data
        if len(self.json) > self._max:
            raise _TooLarge(self._max)


class _TooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the operation is over the {limit:,}-byte limit without its video")
        self.limit = limit
