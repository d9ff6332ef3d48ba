"""Error answers: the one status-code → exception mapping, error payloads in the shapes
providers use, and keeping secrets out of every message built from them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import httpx2

from .._exceptions import (
    ProviderAuthError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderServerError,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "display_url",
    "error_details",
    "error_fields",
    "error_for_status",
    "scrub",
]

MAX_MESSAGE_CHARS = 500
"""Server messages are clipped: an HTML error page is not an error message."""

_MESSAGE_KEYS = ("message", "msg", "error_message", "detail", "fail_reason", "reason")
_CODE_KEYS = ("code", "error_code", "type")


def error_for_status(
    response: httpx2.Response,
    body: bytes,
    *,
    provider: str,
    retry_after: float | None,
    secrets: Iterable[str] = (),
) -> ProviderHTTPError:
    """Map an error response to its exception: 401/403, 429, 5xx, anything else final.

    The server's ``error.code``/``error.message`` are kept when the body is JSON; any secret the
    server echoed back is scrubbed from the message.
    """
    status = response.status_code
    code, detail = error_details(body)
    message = f"{response.request.method} {display_url(response.request.url)} answered {status}"
    if response.reason_phrase:
        message += f" {response.reason_phrase}"
    if detail:
        message += f": {detail}"
    cls: type[ProviderHTTPError]
    if status in (401, 403):
        cls = ProviderAuthError
    elif status == 429:
        cls = ProviderRateLimitError
    elif status >= 500:
        cls = ProviderServerError
    else:
        cls = ProviderRejectedError
    return cls(
        scrub(message, secrets),
        status_code=status,
        code=code,
        provider=provider,
        retry_after=retry_after,
    )


def display_url(url: httpx2.URL | str) -> str:
    """The URL without its query, which may hold signed tokens."""
    return str(url).split("#", 1)[0].split("?", 1)[0]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``[redacted]``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def error_fields(payload: object) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error value or an object that carries one.

    Understands ``{"error": {"code", "message"}}``, ``{"error": "text"}``, ``{"error_code",
    "message"}``, ``{"detail": ...}`` and a bare string. Either part may be ``None``.
    """
    if isinstance(payload, str):
        return None, _clip(payload)
    if not isinstance(payload, Mapping):
        return None, None
    nested = payload.get("error")
    if isinstance(nested, Mapping):
        code, message = error_fields(nested)
        if code or message:
            return code, message
    elif isinstance(nested, str) and nested.strip():
        return _text(payload, _CODE_KEYS), _clip(nested)
    return _text(payload, _CODE_KEYS), _text(payload, _MESSAGE_KEYS)


def error_details(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error response body: JSON in any known shape, else its text."""
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return None, _clip(text) if text else None
    return error_fields(payload)


def _text(payload: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
