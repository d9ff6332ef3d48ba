"""The one HTTP seam every adapter goes through: client, retries, errors, credentials, downloads.

:class:`ProviderClient` owns (or borrows) one ``httpx2.AsyncClient`` per provider. It retries in
call as :mod:`sora_tasks._retry` decides, turns every failure into the library's error tree
(through ``_errors.error_for_status``, the one place a status code becomes an exception) and
never lets the key out: it is added per request, only for the provider's own origin, registered
with :mod:`sora_tasks._secrets` so it is scrubbed from all server text, and redacted from every
log line.

Every :meth:`ProviderClient.request` is bounded twice: in time, by one total deadline over
connect, send, body and retries (the earlier of ``call_timeout`` and the caller's
:func:`sora_tasks._deadlines.bounded`), and in size, by ``max_response_bytes`` for the body,
read as a stream so an oversized answer is refused before it is held.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import tenacity
from pydantic import SecretStr

from .._deadlines import deadline
from .._exceptions import (
    DownloadError,
    ProviderError,
    ProviderResponseError,
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
from .._secrets import register_secret, scrub
from .._telemetry import note_http
from .._version import __version__
from ._base import ContentStream
from ._content import ResponseContent
from ._errors import REQUEST_ID_HEADERS, display_url, error_for_status, request_id
from ._json import DEFAULT_MAX_JSON_BYTES
from ._transport import PollingTransport, environment_proxies

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "SENSITIVE_HEADERS",
    "ProviderClient",
    "origin",
    "redact_headers",
]

logger = logging.getLogger("sora_tasks.providers")

DEFAULT_TIMEOUT = httpx2.Timeout(60.0, connect=5.0)
"""Connect within 5 s; 60 s for everything else (a slow create still answers within it)."""

DEFAULT_CALL_TIMEOUT = 120.0
"""Seconds one :meth:`ProviderClient.request` may take in all, retries included."""

SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
_ERROR_BODY_LIMIT = 64 * 1024
# errors raised before a request can reach the server: no connection, or one we refused to send on
_NOT_SENT = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.ProxyError,
    httpx2.LocalProtocolError,
    httpx2.UnsupportedProtocol,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _require_httpx2(client: object) -> None:
    # an httpx (not httpx2) client looks alike but fails deep inside the first call
    if client is not None and not isinstance(client, httpx2.AsyncClient):
        kind = f"{type(client).__module__}.{type(client).__qualname__}"
        raise TypeError(
            f"client= must be an httpx2.AsyncClient, not {kind}: sora_tasks speaks httpx2; "
            "pass httpx2.AsyncClient(...) (in tests, with transport=httpx2.MockTransport(handler))"
        )


def _default_client(timeout: httpx2.Timeout | float) -> httpx2.AsyncClient:
    # a proxy named by the environment keeps httpx2's own transports, which honour it; an
    # explicit transport would turn environment proxies off
    if environment_proxies():
        return httpx2.AsyncClient(timeout=timeout)
    return httpx2.AsyncClient(timeout=timeout, transport=PollingTransport())


def redact_headers(headers: Iterable[tuple[str, str]], sensitive: Iterable[str]) -> dict[str, str]:
    """A loggable copy of ``headers`` with every sensitive value replaced."""
    names = {name.lower() for name in sensitive}
    return {key: "[redacted]" if key.lower() in names else value for key, value in headers}


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

    A ``client`` passed in must be an ``httpx2.AsyncClient``; it is used as is and never closed
    here. Otherwise one is created with :data:`DEFAULT_TIMEOUT` (or ``timeout``, which bounds
    each network operation) and closed by :meth:`aclose`. ``call_timeout`` bounds a whole
    :meth:`request`, retries included; ``max_response_bytes`` bounds the body it reads.
    ``request_id_headers`` are the response headers that may carry the provider's id of a
    request (first found wins); it lands on every error raised from an answer.
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
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        max_redirects: int = 5,
        request_id_headers: Iterable[str] = REQUEST_ID_HEADERS,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random_source: Callable[[], float] = random.random,
        auth: httpx2.Auth | None = None,
    ) -> None:
        _require_httpx2(client)
        if max_retries < 0 or max_redirects < 0:
            raise ValueError("max_retries and max_redirects must not be negative")
        if not (isinstance(call_timeout, int | float) and 0 < call_timeout < math.inf):
            raise ValueError(
                f"call_timeout must be a positive number of seconds, not {call_timeout!r}"
            )
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be at least 1, not {max_response_bytes!r}")
        self.provider = provider
        self.base_url = httpx2.URL(base_url.rstrip("/") + "/")
        self._base = str(self.base_url)
        self._origin = origin(self.base_url)
        self._foreign_headers = {"User-Agent": f"sora-tasks/{__version__}", **(headers or {})}
        self._own_headers = dict(self._foreign_headers)
        if api_key is not None and api_key.get_secret_value():
            key = api_key.get_secret_value()
            value = f"{auth_scheme} {key}" if auth_scheme else key
            self._own_headers[auth_header] = value
            register_secret(value)
            register_secret(key)
        self._sensitive = SENSITIVE_HEADERS | {auth_header.lower()}
        self._owns_client = client is None
        self._client = client or _default_client(timeout or DEFAULT_TIMEOUT)
        self._timeout = {} if timeout is None else {"timeout": timeout}
        self._call_timeout = float(call_timeout)
        self._max_response_bytes = max_response_bytes
        self._max_retries = max_retries
        self._backoff = backoff or Backoff()
        self._max_redirects = max_redirects
        self._request_id_headers = tuple(name.lower() for name in request_id_headers)
        self._sleep = sleep
        self._random = random_source
        self._auth: httpx2.Auth | Any = httpx2.USE_CLIENT_DEFAULT if auth is None else auth

    def __repr__(self) -> str:
        return f"<ProviderClient {self.provider!r} {self._base}>"

    @property
    def call_timeout(self) -> float:
        """Seconds one :meth:`request` may take in all."""
        return self._call_timeout

    @property
    def max_response_bytes(self) -> int:
        """The largest body :meth:`request` reads."""
        return self._max_response_bytes

    def url(self, path: str) -> str:
        """An API ``path`` (already quoted) under ``base_url``, even with a leading slash."""
        return self._base + path.lstrip("/")

    def resolve(self, reference: str) -> str:
        """A URL a server gave us (absolute, or relative to ``base_url``), made absolute."""
        return str(self.base_url.join(reference))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret masked (for messages built from server data)."""
        return scrub(text)

    async def request(
        self, method: str, path: str, *, create: bool = False, **kwargs: Any
    ) -> httpx2.Response:
        """Send ``path`` (under ``base_url``) with in-call retries; return a 2xx, body read.

        ``create=True`` applies the create-safety rules: :class:`SubmissionUncertainError` when
        the job may have started. ``kwargs`` go to ``httpx2.AsyncClient.build_request``.

        The whole call, retries included, ends by ``call_timeout`` or the caller's
        :func:`~sora_tasks._deadlines.bounded`, whichever comes first; past it, it fails like a
        read timeout (:class:`ProviderTransportError`, or for a create that may have been sent
        :class:`SubmissionUncertainError`). A body over ``max_response_bytes`` is refused with
        :class:`ProviderResponseError` (for a create: uncertain, since the job may exist).
        """
        now = anyio.current_time()
        until = deadline()
        if until is None or until - now >= self._call_timeout:
            call = _Call(self._call_timeout, "call_timeout", now)
        else:
            call = _Call(max(0.0, until - now), "the caller's bound", now)
        target = _Target(method, self.url(path), own_origin=True)
        if create:
            kwargs = {**kwargs, "extensions": {**kwargs.get("extensions", {}), "trace": call.trace}}
        with anyio.CancelScope(deadline=call.deadline):
            return await self._with_retries(
                target, create=create, stream=False, kwargs=kwargs, call=call
            )
        error = self._expired(target, create, call)
        note_http(method, None, call.attempts - 1 if call.attempts else 0)
        raise error

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        resumes: int = 3,
        method: str = "GET",
        json: object = None,
    ) -> AsyncIterator[ContentStream]:
        """GET ``url`` as a stream, following redirects; credentials only to our own origin.

        A body that breaks off is asked for again, up to ``resumes`` times: from where it broke
        off when the server serves byte ranges, else whole (see :mod:`._content`). ``method``
        and ``json`` stream the answer of a read that is sent as a POST (Vertex AI's
        ``fetchPredictOperation``); it must be safe to send again.
        """
        parsed = httpx2.URL(url)
        target = _Target(method, parsed, own_origin=origin(parsed) == self._origin)
        kwargs: dict[str, Any] = {"params": params, "headers": {"Accept-Encoding": "identity"}}
        if json is not None:
            kwargs["json"] = json

        async def reopen(headers: Mapping[str, str]) -> httpx2.Response:
            again = {**kwargs, "headers": {**kwargs["headers"], **headers}}
            return await self._with_retries(target, create=False, stream=True, kwargs=again)

        response = await self._with_retries(target, create=False, stream=True, kwargs=kwargs)
        content = ResponseContent(
            response, reopen, resumes=resumes, backoff=self._backoff.initial, sleep=self._sleep
        )
        try:
            yield content
        finally:
            await content.aclose()

    async def aclose(self) -> None:
        """Close the underlying client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _with_retries(
        self,
        target: _Target,
        *,
        create: bool,
        stream: bool,
        kwargs: dict[str, Any],
        call: _Call | None = None,
    ) -> httpx2.Response:
        attempts = itertools.count(1)
        tried = 0

        async def attempt() -> httpx2.Response:
            nonlocal tried
            tried = next(attempts)
            if call is not None:
                call.phase = _Phase.UNKNOWN
                call.attempts = tried
            try:
                response = await self._attempt(target, tried, create, stream, kwargs, call)
            except _RetryLater:
                if call is not None:
                    call.phase = _Phase.IDLE
                raise
            except ProviderError as exc:
                note_http(target.method, getattr(exc, "status_code", None), tried - 1)
                raise
            note_http(target.method, response.status_code, tried - 1)
            return response

        # the first attempt runs outside tenacity: its setup costs more than a status parse, and
        # nearly every call succeeds at once (see benchmarks/bench_provider_poll.py)
        try:
            return await attempt()
        except _RetryLater as failed:
            if self._max_retries == 0:
                note_http(target.method, getattr(failed.error, "status_code", None), 0)
                raise failed.error from failed.error.__cause__
            self._log_retry(failed.delay, 1, failed.error)
            await self._sleep(failed.delay)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self._max_retries),
            wait=_planned_delay,
            retry=tenacity.retry_if_exception_type(_RetryLater),
            sleep=self._sleep,
            before_sleep=self._log_tenacity_retry,
            reraise=True,
        )
        try:
            response: httpx2.Response = await retrying(attempt)
        except _RetryLater as exhausted:
            note_http(target.method, getattr(exhausted.error, "status_code", None), tried - 1)
            raise exhausted.error from exhausted.error.__cause__
        return response

    async def _attempt(
        self,
        target: _Target,
        number: int,
        create: bool,
        stream: bool,
        kwargs: dict[str, Any],
        call: _Call | None,
    ) -> httpx2.Response:
        hops = 0
        while True:
            try:
                response = await self._send(target, kwargs=kwargs)
                if response.is_success and not stream:
                    return await self._read_body(response, target, create, number)
            except httpx2.TransportError as exc:
                delivery = Delivery.NOT_SENT if isinstance(exc, _NOT_SENT) else Delivery.MAYBE_SENT
                error = ProviderTransportError(
                    f"{target.method} {display_url(target.url)} failed: {type(exc).__name__}",
                    provider=self.provider,
                )
                error.__cause__ = exc
                action = classify(create=create, delivery=delivery)
                raise self._verdict(action, error, number, retry_after=None, call=call) from exc
            if response.is_success:
                return response
            next_request = response.next_request if stream else None
            if next_request is None:
                body = await _error_body(response)
                raise self._failure(response, body, create, number, call)
            await response.aclose()
            if hops == self._max_redirects:
                raise DownloadError(f"more than {self._max_redirects} redirects")
            if next_request.url.scheme not in _DEFAULT_PORTS:
                raise DownloadError(f"refusing a redirect to a {next_request.url.scheme!r} URL")
            hops += 1
            own = origin(next_request.url) == self._origin
            target = _Target("GET", next_request.url, own_origin=own)
            kwargs = {key: value for key, value in kwargs.items() if key != "json"}
            kwargs["params"] = None

    async def _send(self, target: _Target, *, kwargs: dict[str, Any]) -> httpx2.Response:
        headers = self._own_headers if target.own_origin else self._foreign_headers
        extra = kwargs.get("headers")
        request = self._client.build_request(
            target.method,
            target.url,
            **{**kwargs, **self._timeout, "headers": {**headers, **extra} if extra else headers},
        )
        if not target.own_origin:
            for name in self._sensitive:
                request.headers.pop(name, None)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s headers=%s",
                target.method,
                display_url(target.url),
                redact_headers(request.headers.multi_items(), self._sensitive),
                extra={"provider": self.provider, "action": "http"},
            )
        auth = self._auth if target.own_origin else None
        # always a stream: a JSON body is read here, under the size limit (see _read_body)
        response = await self._client.send(request, stream=True, follow_redirects=False, auth=auth)
        if logger.isEnabledFor(logging.DEBUG):
            rid = request_id(response.headers, self._request_id_headers)
            logger.debug(
                "%s %s answered %d request_id=%s",
                target.method,
                display_url(target.url),
                response.status_code,
                rid,
                extra={"provider": self.provider, "action": "http", "request_id": rid},
            )
        return response

    async def _read_body(
        self, response: httpx2.Response, target: _Target, create: bool, number: int
    ) -> httpx2.Response:
        """The response with its body read, or the refusal of a body over the size limit."""
        limit = self._max_response_bytes
        declared = _declared_length(response.headers)
        too_large = declared is not None and declared > limit
        body = bytearray()
        try:
            if not too_large:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        too_large = True
                        break
        finally:
            await response.aclose()
        if too_large:
            error = ProviderResponseError(
                f"{target.method} {display_url(target.url)} answered {response.status_code} "
                f"with a body over the {limit:,}-byte limit (max_response_bytes)",
                provider=self.provider,
                limit=limit,
                request_id=request_id(response.headers, self._request_id_headers),
            )
            action = Action.UNCERTAIN if create else Action.FAIL
            raise self._verdict(action, error, number, retry_after=None)
        # where Response.aread() keeps the body it reads; building a new Response around it
        # instead costs as much as parsing a status (see benchmarks/bench_provider_poll.py)
        response._content = bytes(body)
        return response

    def _expired(self, target: _Target, create: bool, call: _Call) -> ProviderError:
        seconds = f"{round(call.bound, 2):g}"
        error = ProviderTransportError(
            f"{target.method} {display_url(target.url)} took longer than {seconds} s "
            f"({call.limit_name})",
            provider=self.provider,
        )
        sent = call.phase in (_Phase.UNKNOWN, _Phase.SENT)
        delivery = Delivery.MAYBE_SENT if sent else Delivery.NOT_SENT
        if classify(create=create, delivery=delivery) is Action.UNCERTAIN:
            uncertain = SubmissionUncertainError(
                f"{error}; the job may have started, so it was not sent again",
                provider=self.provider,
            )
            uncertain.__cause__ = error
            return uncertain
        return error

    def _failure(
        self,
        response: httpx2.Response,
        body: bytes,
        create: bool,
        number: int,
        call: _Call | None,
    ) -> Exception:
        retry_after = parse_retry_after(response.headers, now=datetime.now(UTC))
        error = error_for_status(
            response,
            body,
            provider=self.provider,
            retry_after=retry_after,
            request_id_headers=self._request_id_headers,
        )
        action = classify(
            create=create,
            status_code=response.status_code,
            should_retry=parse_should_retry(response.headers),
            retry_after=retry_after,
        )
        return self._verdict(action, error, number, retry_after=retry_after, call=call)

    def _verdict(
        self,
        action: Action,
        error: ProviderError,
        number: int,
        *,
        retry_after: float | None,
        call: _Call | None = None,
    ) -> Exception:
        if action is Action.UNCERTAIN:
            uncertain = SubmissionUncertainError(
                f"{error}; the job may have started, so it was not sent again",
                provider=self.provider,
                request_id=error.request_id,
            )
            uncertain.__cause__ = error
            return uncertain
        if action is Action.RETRY:
            delay = sleep_before_retry(
                number - 1, self._backoff, retry_after=retry_after, random_source=self._random
            )
            # a wait that would end past the call's deadline is not begun: the error stands
            if delay is not None and (call is None or not call.ends_within(delay)):
                return _RetryLater(error, delay)
        return error

    def _log_retry(self, delay: float, failed_attempt: int, error: BaseException | None) -> None:
        logger.info(
            "retrying in %.2f s (attempt %d of %d): %s",
            delay,
            failed_attempt + 1,
            self._max_retries + 1,
            error,
            extra={
                "provider": self.provider,
                "attempt": failed_attempt,
                "action": "retry",
                "request_id": getattr(error, "request_id", None),
            },
        )

    def _log_tenacity_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._log_retry(state.upcoming_sleep, state.attempt_number + 1, error)


class _Phase(enum.Enum):
    IDLE = "idle"  # between attempts: nothing in flight
    UNKNOWN = "unknown"  # in flight, no trace seen yet (a pooled connection, or no tracing)
    CONNECTING = "connecting"  # opening a connection: nothing has been sent
    SENT = "sent"  # the request has begun to go out


class _Call:
    """One :meth:`ProviderClient.request`: its deadline, and how far its attempt has got."""

    __slots__ = ("attempts", "bound", "deadline", "limit_name", "phase")

    def __init__(self, bound: float, limit_name: str, now: float) -> None:
        self.attempts = 0
        self.bound = bound
        self.deadline = now + bound
        self.limit_name = limit_name
        self.phase = _Phase.IDLE

    def ends_within(self, delay: float) -> bool:
        """Whether waiting ``delay`` seconds would reach the deadline."""
        return anyio.current_time() + delay >= self.deadline

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore2's ``trace`` extension: sent once request headers start to go out."""
        if event.endswith(".send_request_headers.started"):
            self.phase = _Phase.SENT
        elif event.startswith("connection.") and self.phase is _Phase.UNKNOWN:
            self.phase = _Phase.CONNECTING


@dataclass(frozen=True, slots=True)
class _Target:
    method: str
    url: str | httpx2.URL
    own_origin: bool


def _planned_delay(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    return error.delay if isinstance(error, _RetryLater) else 0.0


def _declared_length(headers: httpx2.Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


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
