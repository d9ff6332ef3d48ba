"""Multipart relays: third-party services that resell video generation in a look-alike API.

The original backend spoke to one of these. Every relay names things a little differently, so
:class:`MultipartRelayProvider` takes a :class:`RelayConfig` instead of hard-coding a dialect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from .._exceptions import ProviderError, ProviderResponseError, SubmissionUncertainError
from .._models import Task
from .._retry import Backoff
from ._base import (
    ContentStream,
    ContentVariant,
    Provider,
    ProviderCapabilities,
    ProviderJob,
    SubmitRequest,
)
from ._errors import provider_text
from ._http import DEFAULT_CALL_TIMEOUT, ProviderClient
from ._json import DEFAULT_MAX_JSON_BYTES
from ._parsing import DEFAULT_STATUS_WORDS, JSONLimitError, json_object, same_job
from ._relay_config import RelayConfig, form_parts, parse_relay_job

__all__ = ["DEFAULT_STATUS_WORDS", "MultipartRelayProvider", "RelayConfig"]


def default_relay_capabilities(config: RelayConfig) -> ProviderCapabilities:
    """Any model, size and length (relays vary); images as the config says; polls 5 s apart."""
    return ProviderCapabilities(
        default_model="sora-2",
        default_size="720x1280",
        default_seconds=4,
        image_upload=True,
        image_url=config.image_mode == "url",
        min_poll_interval=5.0,
    )


class MultipartRelayProvider(Provider):
    """A relay that takes ``multipart/form-data`` creates and answers in its own JSON dialect.

    ``base_url`` is the relay's origin (``https://relay.example``); ``config.path_prefix`` adds
    the path. Creates are always multipart and carry ``Idempotency-Key``. The result is fetched
    from the URL the status names (credentials only when it is on the relay's own origin), or
    from ``config.content_path`` under the job. ``call_timeout`` bounds each call in all
    (retries included) and ``max_response_bytes`` each JSON answer.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str,
        config: RelayConfig | None = None,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        capabilities: ProviderCapabilities | None = None,
        name: str = "relay",
    ) -> None:
        self._config = config or RelayConfig()
        self._http = ProviderClient(
            provider=name,
            base_url=base_url,
            api_key=api_key if isinstance(api_key, SecretStr) else SecretStr(api_key),
            auth_header=self._config.auth_header,
            auth_scheme="Bearer" if self._config.auth_scheme == "bearer" else None,
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._capabilities = capabilities or default_relay_capabilities(self._config)

    def __repr__(self) -> str:
        http = getattr(self, "_http", None)  # absent when __init__ refused its arguments
        base_url = str(http.base_url) if http is not None else None
        return f"{type(self).__name__}(base_url={base_url!r})"

    @property
    def config(self) -> RelayConfig:
        """The dialect this relay speaks."""
        return self._config

    @property
    def capabilities(self) -> ProviderCapabilities:
        """What this relay accepts (anything, unless overridden)."""
        return self._capabilities

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """POST ``{prefix}`` as multipart; an answer without a readable job id is uncertain."""
        response = await self._http.request(
            "POST",
            self._config.path_prefix,
            create=True,
            headers={"Idempotency-Key": request.idempotency_key},
            files=form_parts(request, self._config),
        )
        try:
            return parse_relay_job(json_object(response.content), self._config, response.headers)
        except ValueError as exc:
            body = provider_text(response.content.decode("utf-8", "replace"), 200)
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} without a readable job ({exc}): "
                f"{body}; the job may have started",
                provider=self._http.provider,
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """GET ``{prefix}/{id}``; an answer about another job is refused."""
        response = await self._http.request("GET", self._job_path(external_id))
        provider = self._http.provider
        try:
            job = parse_relay_job(json_object(response.content), self._config, response.headers)
        except ValueError as exc:
            raise ProviderResponseError(
                f"unreadable job from {provider}: {exc}",
                provider=provider,
                limit=exc.limit if isinstance(exc, JSONLimitError) else None,
            ) from None
        return same_job(job, external_id, provider=provider)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the result: the job's result URL when it names one, else the content path.

        The URL stored in ``task`` is used while it is valid; otherwise the job is asked again.
        """
        stored = _stored_url(task) if variant == "video" else None
        result_url = stored or (await self.status(external_id)).result_url
        if result_url is not None:
            url = self._http.resolve(result_url)
            params = None
        elif self._config.content_path is not None:
            url = self._http.url(self._job_path(external_id, self._config.content_path))
            params = {"variant": variant} if variant != "video" else None
        else:
            raise ProviderError(
                f"job {external_id!r} names no result URL and the relay has no content path",
                provider=self._http.provider,
            )
        async with self._http.stream(url, params=params) as stream:
            yield stream

    async def aclose(self) -> None:
        """Close the HTTP client this provider created (never an injected one)."""
        await self._http.aclose()

    def _job_path(self, external_id: str, suffix: str = "") -> str:
        path = f"{self._config.path_prefix}/{quote(external_id, safe='')}"
        return path + ("/" + suffix.lstrip("/") if suffix else "")


def _stored_url(task: Task | None) -> str | None:
    """The result URL recorded in ``task``, unless it is known to have expired."""
    result = task.result if task is not None else None
    if result is None or result.url is None:
        return None
    if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
        return None
    return result.url
