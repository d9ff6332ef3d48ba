"""Runway's API (``https://api.dev.runwayml.com/v1``): Gen-4, Gen-4.5 and Veo 3.1 as tasks.

A create goes to ``POST /image_to_video`` when the request has a first frame and to
``POST /text_to_video`` when it has none, with the model's ratio (``"1280:720"``: the request's
size) and duration; Runway answers ``{"id": ...}`` only. The engine polls ``GET /tasks/{id}``,
never faster than every five seconds (Runway's own guidance, declared as the capabilities'
``min_poll_interval``), cancels and deletes with ``DELETE /tasks/{id}``. Runway has no webhooks
and no idempotency keys: a create that may have reached it is never sent again. Output URLs
are signed and expire within a day or two; reading the task again signs fresh ones, which
:meth:`RunwayProvider.open_content` does once when a stored URL is refused.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import quote

import httpx2
from pydantic import JsonValue, SecretStr

from .._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderHTTPError,
    ProviderResponseError,
    SubmissionUncertainError,
    UnsupportedParameterError,
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
from ._parsing import JSONLimitError, json_object, same_job
from ._runway_models import (
    RUNWAY_MIN_POLL_INTERVAL,
    RUNWAY_MODELS,
    RunwayInputError,
    RunwayModel,
    create_body,
)
from ._runway_parse import parse_task

__all__ = ["DEFAULT_RUNWAY_MODEL", "RUNWAY_API_VERSION", "RunwayProvider"]

DEFAULT_BASE_URL = "https://api.dev.runwayml.com/v1"
DEFAULT_RUNWAY_MODEL = "gen4_turbo"
RUNWAY_API_VERSION = "2024-11-06"
"""The ``X-Runway-Version`` every request carries (the official SDK's, still current)."""

# a stored output URL refused with these has expired (or was never ours): sign a fresh one
_STALE_URL = frozenset({401, 403, 404, 410})

_UNKNOWN_MODEL = ProviderCapabilities(
    default_model=DEFAULT_RUNWAY_MODEL,
    default_size="1280x720",
    default_seconds=5,
    image_url=True,
    image_matches_size=False,
    can_cancel=True,
    can_delete=True,
    min_poll_interval=RUNWAY_MIN_POLL_INTERVAL,
)


class RunwayRequestError(UnsupportedParameterError, ProviderError):
    """A request the Runway model cannot take, refused before anything was sent.

    It is an :class:`UnsupportedParameterError` (``field`` and ``limit`` name the rule) and, so
    that a task the manager already stored ends FAILED with this message rather than stuck, a
    :class:`ProviderError` too. Most such requests never get that far: the model's capabilities
    let the manager refuse them before storing anything.
    """

    def __init__(self, message: str, *, field: str, limit: object = None, provider: str) -> None:
        super().__init__(message, field=field, limit=limit)
        self.provider = provider


class RunwayProvider(Provider):
    """Generate videos with Runway's API: submit, poll, cancel, delete, download.

    ``api_key`` falls back to ``RUNWAYML_API_SECRET``. ``model`` is the default model;
    :meth:`capabilities_for` knows the models in ``models`` (by default ``gen4_turbo``,
    ``gen4.5``, ``veo3.1`` and ``veo3.1_fast``) and any other model is sent with the prompt,
    first frame, ratio and duration plus ``provider_options`` (Runway's own field names, e.g.
    ``{"contentModeration": {"publicFigureThreshold": "low"}}``). ``runway_version`` is the
    ``X-Runway-Version`` header. ``client``, ``timeout``, ``call_timeout``,
    ``max_response_bytes``, ``max_retries`` and ``backoff`` are as for
    :class:`OpenAIVideosProvider`.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        model: str = DEFAULT_RUNWAY_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        runway_version: str = RUNWAY_API_VERSION,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        name: str = "runway",
        models: Mapping[str, RunwayModel] = RUNWAY_MODELS,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("RUNWAYML_API_SECRET")
        if not key or (isinstance(key, SecretStr) and not key.get_secret_value()):
            raise InvalidRequestError(
                "no API secret: pass api_key= or set RUNWAYML_API_SECRET", field="api_key"
            )
        if not model.strip():
            raise InvalidRequestError("model must name a Runway model", field="model")
        self._http = ProviderClient(
            provider=name,
            base_url=base_url,
            api_key=key if isinstance(key, SecretStr) else SecretStr(key),
            headers={"X-Runway-Version": runway_version},
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._model = model
        self._models = dict(models)
        known = self.capabilities_for(model)
        self._capabilities = (known or _UNKNOWN_MODEL).model_copy(
            update={"models": None, "default_model": model}
        )

    def __repr__(self) -> str:
        http = getattr(self, "_http", None)  # absent when __init__ refused its arguments
        base_url = str(http.base_url) if http is not None else None
        model = getattr(self, "_model", None)
        return f"{type(self).__name__}(model={model!r}, base_url={base_url!r})"

    @property
    def capabilities(self) -> ProviderCapabilities:
        """The default model's capabilities, open to every model (see :meth:`capabilities_for`)."""
        return self._capabilities

    def capabilities_for(self, model: str) -> ProviderCapabilities | None:
        """What ``model`` accepts, if the table has it."""
        spec = self._models.get(model)
        return spec.capabilities(model) if spec is not None else None

    def check(self, request: SubmitRequest) -> None:
        """Refuse, before anything is stored, what the model's rules between fields forbid (a
        last frame without a first, a text-only ratio on an image model, an image too big to
        inline): the same :class:`RunwayRequestError` :meth:`submit` would raise."""
        self._body(request)

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """POST the create to ``image_to_video`` or ``text_to_video``; Runway answers the id.

        A ratio, duration or field the model does not take is a :class:`RunwayRequestError`,
        raised before anything is sent.
        """
        endpoint, body = self._body(request)
        response = await self._http.request("POST", endpoint, create=True, json=body)
        try:
            return parse_task({**json_object(response.content), "status": "PENDING"})
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the task may have started",
                provider=self._http.provider,
            ) from None

    def _body(self, request: SubmitRequest) -> tuple[str, dict[str, JsonValue]]:
        try:
            return create_body(self._models.get(request.model), request)
        except RunwayInputError as exc:
            raise RunwayRequestError(
                str(exc), field=exc.field, limit=exc.limit, provider=self._http.provider
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """GET ``/tasks/{id}``; an answer about another task is refused."""
        response = await self._http.request("GET", _task_path(external_id))
        return same_job(self._parse(response), external_id, provider=self._http.provider)

    async def cancel(self, external_id: str) -> ProviderJob | None:
        """DELETE ``/tasks/{id}``: Runway stops a pending or running task (204, no body)."""
        await self._http.request("DELETE", _task_path(external_id))
        return None

    async def delete(self, external_id: str) -> None:
        """DELETE ``/tasks/{id}``: a finished task and its outputs are gone for good."""
        await self._http.request("DELETE", _task_path(external_id))

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the task's output (a signed URL, fetched without the key).

        The URL stored in ``task`` is tried first; when it is refused (it expired), the task is
        read again for a freshly signed URL, once.
        """
        if variant != "video":
            raise ProviderError(f"Runway tasks have no {variant}", provider=self._http.provider)
        stored = task.result.url if task is not None and task.result is not None else None
        async with AsyncExitStack() as stack:
            url = stored or await self._fresh_url(external_id)
            try:
                stream = await stack.enter_async_context(self._http.stream(url))
            except ProviderHTTPError as exc:
                if stored is None or exc.status_code not in _STALE_URL:
                    raise
                fresh = await self._fresh_url(external_id)
                stream = await stack.enter_async_context(self._http.stream(fresh))
            yield stream

    async def aclose(self) -> None:
        """Close the HTTP client this provider created (never an injected one)."""
        await self._http.aclose()

    async def _fresh_url(self, external_id: str) -> str:
        """The output URL of a fresh read of the task; a task without one is an error."""
        job = await self.status(external_id)
        if job.result_url is None:
            raise ProviderError(
                f"task {external_id!r} has no output to download ({job.raw_status or 'no status'})",
                provider=self._http.provider,
            )
        return self._http.resolve(job.result_url)

    def _parse(self, response: httpx2.Response) -> ProviderJob:
        try:
            return parse_task(json_object(response.content))
        except ValueError as exc:
            provider = self._http.provider
            raise ProviderResponseError(
                f"unreadable answer from {provider}: {exc}",
                provider=provider,
                limit=exc.limit if isinstance(exc, JSONLimitError) else None,
            ) from None


def _task_path(external_id: str) -> str:
    return f"tasks/{quote(external_id, safe='')}"
