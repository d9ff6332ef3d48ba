"""The one HTTP seam every adapter goes through: client, retries, errors, credentials, downloads.

:class:`ProviderClient` owns (or borrows) one ``httpx2.AsyncClient`` per provider. It retries in
call as :mod:`sora_tasks._retry` decides, turns every failure into the library's error tree
(:func:`error_for_status` is the only place a status code becomes an exception) and never lets the
key out: it is added per request, only for the provider's own origin, scrubbed from server
messages and redacted from every log line.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import anyio
import httpx2
import tenacity
from pydantic import SecretStr

from .._exceptions import (
    DownloadError,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
)
from .._retry import (
    Action,
    Backoff,
    Delivery,
    classify,
    parse_retry_after,
    parse_should_retry,
    sleep_before_retry,
)
from ._base import ContentStream
from ._errors import error_details, scrub

__all__ = ["DEFAULT_TIMEOUT", "ProviderClient", "error_for_status", "redact_headers"]

logger = logging.getLogger("sora_tasks.providers")

DEFAULT_TIMEOUT = httpx2.Timeout(60.0, connect=5.0)
"""Connect within 5 s; 60 s for everything else (a slow create still answers within it)."""

SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
_ERROR_BODY_LIMIT = 64 * 1024
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.ProxyError)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _user_agent() -> str:
    try:
        return f"sora-tasks/{metadata.version('sora-tasks')}"
    except metadata.PackageNotFoundError:
        return "sora-tasks"


def redact_headers(headers: Iterable[tuple[str, str]], sensitive: Iterable[str]) -> dict[str, str]:
    """A loggable copy of ``headers`` with every sensitive value replaced."""
    names = {name.lower() for name in sensitive}
    return {key: "[redacted]" if key.lower() in names else value for key, value in headers}


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


def display_url(url: httpx2.URL) -> str:
    """The URL without its query, which may hold signed tokens."""
    return str(url.copy_with(query=None, fragment=None))


def origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port, with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


class _RetryLater(Exception):
    def __init__(self, error: ProviderError, delay: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class ProviderClient:
    """HTTP for one provider: ``base_url``, credentials, timeouts and the retry policy.

    A ``client`` passed in is used as is and never closed here; otherwise one is created with
    :data:`DEFAULT_TIMEOUT` (or ``timeout``) and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: SecretStr | None,
        auth_header: str = "Authorization",
        auth_scheme: str | None = "Bearer",
        headers: Mapping[str, str] | None = None,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        max_redirects: int = 5,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        if max_retries < 0 or max_redirects < 0:
            raise ValueError("max_retries and max_redirects must not be negative")
        self.provider = provider
        self.base_url = httpx2.URL(base_url.rstrip("/") + "/")
        self._origin = origin(self.base_url)
        self._auth_header = auth_header
        self._auth_value: SecretStr | None = None
        self._secrets: tuple[str, ...] = ()
        if api_key is not None and api_key.get_secret_value():
            key = api_key.get_secret_value()
            value = f"{auth_scheme} {key}" if auth_scheme else key
            self._auth_value = SecretStr(value)
            self._secrets = (value, key)
        self._sensitive = SENSITIVE_HEADERS | {auth_header.lower()}
        self._headers = {"User-Agent": _user_agent(), **(headers or {})}
        self._owns_client = client is None
        self._client = client or httpx2.AsyncClient(timeout=timeout or DEFAULT_TIMEOUT)
        self._timeout: httpx2.Timeout | float | None = timeout
        self._max_retries = max_retries
        self._backoff = backoff or Backoff()
        self._max_redirects = max_redirects
        self._sleep = sleep
        self._random = random_source

    def __repr__(self) -> str:
        return f"<ProviderClient {self.provider!r} {self.base_url}>"

    def url(self, path: str) -> httpx2.URL:
        """``path`` (already quoted) under ``base_url``."""
        return self.base_url.join(path.lstrip("/"))

    def scrub(self, text: str) -> str:
        """``text`` with this client's secrets masked (for messages built from server data)."""
        return scrub(text, self._secrets)

    async def request(
        self,
        method: str,
        url: httpx2.URL,
        *,
        create: bool = False,
        **kwargs: Any,
    ) -> httpx2.Response:
        """Send with in-call retries and return a 2xx response, body read.

        ``create=True`` applies the create-safety rules: :class:`SubmissionUncertainError` when
        the job may have started. ``kwargs`` go to ``httpx2.AsyncClient.build_request``.
        """
        return await self._with_retries(method, url, create=create, stream=False, kwargs=kwargs)

    @asynccontextmanager
    async def stream(
        self, url: httpx2.URL, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[ContentStream]:
        """GET ``url`` as a stream, following redirects; credentials only to our own origin."""
        kwargs: dict[str, Any] = {"params": params, "headers": {"Accept-Encoding": "identity"}}
        response = await self._with_retries("GET", url, create=False, stream=True, kwargs=kwargs)
        try:
            yield ResponseContent(response)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the underlying client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _with_retries(
        self, method: str, url: httpx2.URL, *, create: bool, stream: bool, kwargs: dict[str, Any]
    ) -> httpx2.Response:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self._max_retries + 1),
            wait=_planned_delay,
            retry=tenacity.retry_if_exception_type(_RetryLater),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = itertools.count(1)

        async def attempt() -> httpx2.Response:
            return await self._attempt(method, url, next(attempts), create, stream, kwargs)

        try:
            response: httpx2.Response = await retrying(attempt)
        except _RetryLater as exhausted:
            raise exhausted.error from exhausted.error.__cause__
        return response

    async def _attempt(
        self,
        method: str,
        url: httpx2.URL,
        number: int,
        create: bool,
        stream: bool,
        kwargs: dict[str, Any],
    ) -> httpx2.Response:
        hops = 0
        while True:
            try:
                response = await self._send(method, url, stream=stream, kwargs=kwargs)
            except httpx2.TransportError as exc:
                delivery = Delivery.NOT_SENT if isinstance(exc, _NOT_SENT) else Delivery.MAYBE_SENT
                error = ProviderTransportError(
                    f"{method} {display_url(url)} failed: {type(exc).__name__}",
                    provider=self.provider,
                )
                error.__cause__ = exc
                action = classify(create=create, delivery=delivery)
                raise self._verdict(action, error, number, retry_after=None) from exc
            if response.is_success:
                return response
            next_request = response.next_request if stream else None
            if next_request is None:
                raise self._failure(response, await _error_body(response), create, number)
            await response.aclose()
            if hops == self._max_redirects:
                raise DownloadError(f"more than {self._max_redirects} redirects")
            if next_request.url.scheme not in _DEFAULT_PORTS:
                raise DownloadError(f"refusing a redirect to a {next_request.url.scheme!r} URL")
            hops += 1
            url = next_request.url
            kwargs = {**kwargs, "params": None}

    async def _send(
        self, method: str, url: httpx2.URL, *, stream: bool, kwargs: dict[str, Any]
    ) -> httpx2.Response:
        own_origin = origin(url) == self._origin
        headers = dict(self._headers)
        if own_origin and self._auth_value is not None:
            headers[self._auth_header] = self._auth_value.get_secret_value()
        headers.update(kwargs.get("headers") or {})
        timeout = self._timeout if self._timeout is not None else httpx2.USE_CLIENT_DEFAULT
        request = self._client.build_request(
            method, url, **{**kwargs, "headers": headers, "timeout": timeout}
        )
        if not own_origin:
            for name in self._sensitive:
                request.headers.pop(name, None)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s headers=%s",
                method,
                display_url(url),
                redact_headers(request.headers.multi_items(), self._sensitive),
                extra={"provider": self.provider, "action": "http"},
            )
        auth = httpx2.USE_CLIENT_DEFAULT if own_origin else None
        return await self._client.send(request, stream=stream, follow_redirects=False, auth=auth)

    def _failure(
        self, response: httpx2.Response, body: bytes, create: bool, number: int
    ) -> Exception:
        retry_after = parse_retry_after(response.headers, now=datetime.now(UTC))
        error = error_for_status(
            response, body, provider=self.provider, retry_after=retry_after, secrets=self._secrets
        )
        action = classify(
            create=create,
            status_code=response.status_code,
            should_retry=parse_should_retry(response.headers),
            retry_after=retry_after,
        )
        return self._verdict(action, error, number, retry_after=retry_after)

    def _verdict(
        self, action: Action, error: ProviderError, number: int, *, retry_after: float | None
    ) -> Exception:
        if action is Action.UNCERTAIN:
            uncertain = SubmissionUncertainError(
                f"{error}; the job may have started, so it was not sent again",
                provider=self.provider,
            )
            uncertain.__cause__ = error
            return uncertain
        if action is Action.RETRY:
            delay = sleep_before_retry(
                number - 1, self._backoff, retry_after=retry_after, random_source=self._random
            )
            if delay is not None:
                return _RetryLater(error, delay)
        return error

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.info(
            "retrying in %.2f s (attempt %d of %d): %s",
            state.upcoming_sleep,
            state.attempt_number + 1,
            self._max_retries + 1,
            error,
            extra={"provider": self.provider, "attempt": state.attempt_number, "action": "retry"},
        )


def _planned_delay(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    return error.delay if isinstance(error, _RetryLater) else 0.0


async def _error_body(response: httpx2.Response) -> bytes:
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_LIMIT:
                break
    except httpx2.HTTPError:
        pass  # an unreadable error body still leaves its status to report
    finally:
        await response.aclose()
    return bytes(body[:_ERROR_BODY_LIMIT])


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
