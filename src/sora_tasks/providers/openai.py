"""The OpenAI Videos API (``/v1/videos``) and every server that speaks its shape.

OpenAI scheduled its own endpoint to shut down on 2026-09-24, but relays and self-hosted servers
keep the shape alive, so nothing here assumes ``api.openai.com``: point ``base_url`` anywhere.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from .._exceptions import (
    ProviderRejectedError,
    ProviderResponseError,
    SubmissionUncertainError,
)
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
from ._http import DEFAULT_CALL_TIMEOUT, ProviderClient
from ._json import DEFAULT_MAX_JSON_BYTES
from ._keys import api_key as resolve_key
from ._parsing import (
    DEFAULT_STATUS_WORDS,
    JSONLimitError,
    MalformedResponseError,
    build_job,
    json_object,
    parse_poll_after,
    parse_progress,
    parse_timestamp,
    same_job,
)

__all__ = ["DEFAULT_OPENAI_CAPABILITIES", "OpenAIVideosProvider", "parse_video"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# how far the provider's clock may be behind ours when matching an attempt to a listed job
_CLOCK_SKEW = timedelta(minutes=5)

DEFAULT_OPENAI_CAPABILITIES = ProviderCapabilities(
    models=frozenset({"sora-2", "sora-2-pro"}),
    sizes=frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"}),
    seconds=frozenset({4, 8, 12}),
    default_model="sora-2",
    default_size="720x1280",
    default_seconds=4,
    image_upload=True,
    image_url=True,
    can_delete=True,
    can_list=True,
    min_poll_interval=1.0,
)
"""What OpenAI documents; pass ``capabilities=`` for servers that accept more."""


def parse_video(data: Mapping[str, object], headers: Mapping[str, str]) -> ProviderJob:
    """Normalise a Video object; extra fields are ignored, unknown statuses kept as raw words.

    ``headers`` supply the ``openai-poll-after-ms`` hint, read on every response.
    """
    external_id = data.get("id")
    if not isinstance(external_id, str) or not external_id:
        raise MalformedResponseError("the video object has no id")
    status = data.get("status")
    return build_job(
        external_id=external_id,
        raw_status=status if isinstance(status, str) else "",
        words=DEFAULT_STATUS_WORDS,
        error=data.get("error"),
        progress=parse_progress(data.get("progress")),
        created_at=parse_timestamp(data.get("created_at")),
        completed_at=parse_timestamp(data.get("completed_at")),
        expires_at=parse_timestamp(data.get("expires_at")),
        poll_after=parse_poll_after(headers),
    )


class OpenAIVideosProvider(Provider):
    """Submit, poll, download and delete jobs on an OpenAI-shaped ``/videos`` API.

    ``api_key`` falls back to ``OPENAI_API_KEY`` and ``base_url`` to ``OPENAI_BASE_URL``. Creates
    carry ``Idempotency-Key: <submission id>`` (harmless where ignored), and :meth:`find` looks an
    uncertain create up in the list of recent videos. ``client`` may be a shared
    ``httpx2.AsyncClient``; it is then never closed here. ``call_timeout`` bounds each call in
    all (retries included) and ``max_response_bytes`` each JSON answer.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        organization: str | None = None,
        project: str | None = None,
        capabilities: ProviderCapabilities | None = None,
        name: str = "openai",
        find_pages: int = 3,
        find_window: timedelta = timedelta(hours=2),
    ) -> None:
        key = resolve_key(api_key, "OPENAI_API_KEY")
        headers = {"OpenAI-Organization": organization, "OpenAI-Project": project}
        self._http = ProviderClient(
            provider=name,
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            api_key=key,
            headers={header: value for header, value in headers.items() if value},
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._capabilities = capabilities or DEFAULT_OPENAI_CAPABILITIES
        self._find_pages = find_pages
        self._find_window = find_window

    def __repr__(self) -> str:
        http = getattr(self, "_http", None)  # absent when __init__ refused its arguments
        base_url = str(http.base_url) if http is not None else None
        return f"{type(self).__name__}(base_url={base_url!r})"

    @property
    def capabilities(self) -> ProviderCapabilities:
        """What this server accepts (OpenAI's documented values unless overridden)."""
        return self._capabilities

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """POST ``/videos``: JSON, or multipart with an ``input_reference`` file part."""
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "size": request.size,
            "seconds": str(request.seconds),
            **request.provider_options,
        }
        body: dict[str, Any]
        if request.image is not None:
            image = request.image
            files = {"input_reference": (image.filename, image.data, image.mime_type)}
            body = {"data": {key: str(value) for key, value in fields.items()}, "files": files}
        else:
            if request.image_url is not None:
                fields["input_reference"] = {"image_url": request.image_url}
            body = {"json": fields}
        response = await self._http.request(
            "POST",
            "videos",
            create=True,
            headers={"Idempotency-Key": request.idempotency_key},
            **body,
        )
        try:
            return parse_video(json_object(response.content), response.headers)
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the job may have started",
                provider=self._http.provider,
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """GET ``/videos/{id}``, with the server's poll-after hint; refused if about another job."""
        response = await self._http.request("GET", self._video_path(external_id))
        return same_job(self._parse(response), external_id, provider=self._http.provider)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream ``/videos/{id}/content?variant=`` (video, thumbnail or spritesheet)."""
        url = self._http.url(self._video_path(external_id, "/content"))
        async with self._http.stream(url, params={"variant": variant}) as stream:
            yield stream

    async def delete(self, external_id: str) -> None:
        """DELETE ``/videos/{id}``; a video that is already gone counts as deleted."""
        try:
            await self._http.request("DELETE", self._video_path(external_id))
        except ProviderRejectedError as exc:
            if exc.status_code != 404:
                raise

    async def find(self, request: SubmitRequest) -> ProviderJob | None:
        """The newest listed video with this request's prompt, model, size and seconds.

        Pages through ``GET /videos?order=desc`` (at most ``find_pages`` pages) and stops at videos
        older than ``find_window`` — or, when the request says when it was attempted, older than
        that moment less a clock-skew allowance. A listed video without its prompt never matches.
        """
        oldest = datetime.now(UTC) - self._find_window
        if request.attempted_at is not None:
            oldest = max(oldest, request.attempted_at - _CLOCK_SKEW)
        params = {"order": "desc", "limit": "100"}
        for _ in range(self._find_pages):
            response = await self._http.request("GET", "videos", params=params)
            items, last_id = self._page(response)
            for item in items:
                job = self._listed(item)
                if job is None:
                    continue
                if job.created_at is not None and job.created_at < oldest:
                    return None
                if _matches(item, request):
                    return job
            if last_id is None:
                return None
            params = {**params, "after": last_id}
        return None

    async def aclose(self) -> None:
        """Close the HTTP client this provider created (never an injected one)."""
        await self._http.aclose()

    @staticmethod
    def _video_path(external_id: str, suffix: str = "") -> str:
        return f"videos/{quote(external_id, safe='')}{suffix}"

    def _parse(self, response: httpx2.Response) -> ProviderJob:
        try:
            return parse_video(json_object(response.content), response.headers)
        except ValueError as exc:
            raise self._unreadable(exc) from None

    def _page(self, response: httpx2.Response) -> tuple[list[dict[str, object]], str | None]:
        """The page's video objects and the cursor of the next page, if there is one."""
        try:
            data = json_object(response.content)
        except ValueError as exc:
            raise self._unreadable(exc) from None
        raw = data.get("data")
        items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
        last_id = data.get("last_id") or (items[-1].get("id") if items else None)
        has_more = data.get("has_more") is True
        return items, last_id if has_more and isinstance(last_id, str) else None

    def _unreadable(self, exc: ValueError) -> ProviderResponseError:
        provider = self._http.provider
        return ProviderResponseError(
            f"unreadable answer from {provider}: {exc}",
            provider=provider,
            limit=exc.limit if isinstance(exc, JSONLimitError) else None,
        )

    def _listed(self, item: Mapping[str, object]) -> ProviderJob | None:
        try:
            return parse_video(item, {})
        except ValueError:
            return None


def _matches(item: Mapping[str, object], request: SubmitRequest) -> bool:
    model = item.get("model")
    # servers may answer with a dated snapshot of the requested model (sora-2-2025-10-06)
    same_model = isinstance(model, str) and (
        model == request.model or model.startswith(f"{request.model}-2")
    )
    return (
        item.get("prompt") == request.prompt
        and same_model
        and item.get("size") == request.size
        and str(item.get("seconds")) == str(request.seconds)
    )
