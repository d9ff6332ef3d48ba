"""Error answers: the one status-code → exception mapping, error payloads in the shapes
providers use, and :func:`provider_text`, which every string a provider sends passes through."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx2

from .._exceptions import (
    ProviderAuthError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderServerError,
)
from .._secrets import scrub
from ._json import loads

__all__ = [
    "MAX_CODE_CHARS",
    "MAX_MESSAGE_CHARS",
    "REQUEST_ID_HEADERS",
    "display_url",
    "error_details",
    "error_fields",
    "error_for_status",
    "provider_text",
    "request_id",
]

MAX_MESSAGE_CHARS = 500
"""Server messages are clipped: an HTML error page is not an error message."""

MAX_CODE_CHARS = 100
"""Codes and status words are identifiers; anything longer is clipped."""

# C0/C1 controls and the invisible format characters that reorder or hide text in a terminal
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)

REQUEST_ID_HEADERS = ("x-request-id", "x-fal-request-id", "x-goog-request-id", "request-id")
"""Where providers put the id of a request, first found wins: ``x-request-id`` (OpenAI-shaped
APIs; what openai-python reports), ``x-fal-request-id`` (fal; what fal-client looks for),
``x-goog-request-id`` (Google APIs), then the bare ``request-id``."""

_MESSAGE_KEYS = ("message", "msg", "error_message", "detail", "fail_reason", "reason")
_CODE_KEYS = ("code", "error_code", "type")


def request_id(headers: httpx2.Headers, names: tuple[str, ...] = REQUEST_ID_HEADERS) -> str | None:
    """The provider's id for the request a response answers, cleaned like any provider text."""
    for name in names:
        value = headers.get(name)
        if value and value.strip():
            return provider_text(value, MAX_CODE_CHARS) or None
    return None


def error_for_status(
    response: httpx2.Response,
    body: bytes,
    *,
    provider: str,
    retry_after: float | None,
    request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS,
) -> ProviderHTTPError:
    """Map an error response to its exception: 401/403, 429, 5xx, anything else final.

    The server's ``error.code``/``error.message`` are kept when the body is JSON, cleaned by
    :func:`provider_text` like the whole message (the URL may carry a provider's id).
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
        scrub(message),
        status_code=status,
        code=code,
        provider=provider,
        retry_after=retry_after,
        request_id=request_id(response.headers, request_id_headers),
    )


def display_url(url: httpx2.URL | str) -> str:
    """The URL without its query, which may hold signed tokens."""
    return str(url).split("#", 1)[0].split("?", 1)[0]


def provider_text(text: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """A string from a provider made safe to keep: one line, no control characters, no known
    secret (:func:`sora_tasks._secrets.scrub`), at most ``max_chars`` long.

    Controls go before secrets are looked for, so a key split by one is still found; clipping
    comes last, so no fragment of a key is left at the cut.
    """
    # whitespace controls become spaces (words stay apart); the others vanish
    text = " ".join(_CONTROLS.sub("", " ".join(text.split())).split())
    text = scrub(text)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def error_fields(payload: object) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error value or an object that carries one.

    Understands ``{"error": {"code", "message"}}``, ``{"error": "text"}``, ``{"error_code",
    "message"}``, ``{"detail": ...}`` and a bare string. Either part may be ``None``.
    """
    if isinstance(payload, str):
        return None, provider_text(payload)
    if not isinstance(payload, Mapping):
        return None, None
    nested = payload.get("error")
    if isinstance(nested, Mapping):
        code, message = error_fields(nested)
        if code or message:
            return code, message
    elif isinstance(nested, str) and nested.strip():
        return _text(payload, _CODE_KEYS, MAX_CODE_CHARS), provider_text(nested)
    return _text(payload, _CODE_KEYS, MAX_CODE_CHARS), _text(payload, _MESSAGE_KEYS)


def error_details(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error response body: JSON in any known shape, else its text.

    JSON nested too deep to parse safely counts as text, like any body that is not JSON.
    """
    try:
        payload = loads(body)
    except ValueError:
        text = provider_text(body.decode("utf-8", "replace"))
        return None, text or None
    return error_fields(payload)


def _text(
    payload: Mapping[str, object], keys: tuple[str, ...], max_chars: int = MAX_MESSAGE_CHARS
) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return provider_text(value, max_chars) or None
        if isinstance(value, int) and not isinstance(value, bool):
            return provider_text(str(value), max_chars)
    return None
