"""Google Veo through the Gemini API (``https://generativelanguage.googleapis.com/v1beta``).

A create is ``POST models/{model}:predictLongRunning`` (header ``x-goog-api-key``); it answers
with a long-running operation whose ``name`` (``models/{model}/operations/{id}``) is the job's
id, read back with ``GET {name}``. Veo says only whether the operation is ``done``: no queue, no
progress, no cancel. A finished operation names its video as a ``files/{id}:download`` URL that
takes the same key; the video is kept two days. A finished operation without a video was stopped
by the safety filter: the task fails ``content_filtered`` with the filter's reasons.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from .._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderResponseError,
    SubmissionUncertainError,
)
from .._models import Task
from .._retry import Backoff
from .._secrets import register_secret
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
from ._veo_models import VEO_MODELS, VeoModel, check_request, predict_body
from ._veo_parse import VEO_RETENTION, parse_operation

__all__ = ["DEFAULT_VEO_MODEL", "VeoProvider"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_VEO_MODEL = "veo-3.1-generate-preview"

_MODEL = re.compile(r"^[a-z0-9][a-z0-9.-]{0,127}$")
_OPERATION = re.compile(r"^models/([a-z0-9][a-z0-9.-]{0,127})/operations/([A-Za-z0-9_-]{1,256})$")
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


class VeoProvider(Provider):
    """Generate videos with Veo on the Gemini API: submit, poll, download, verify webhooks.

    ``api_key`` falls back to ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``. ``model`` is the
    default model; :meth:`capabilities_for` knows the models in ``models`` (by default the Veo
    2, 3 and 3.1 family). ``person_generation`` (``"allow_all"``, ``"allow_adult"``,
    ``"dont_allow"``) is sent as ``personGeneration`` unless a request's ``provider_options``
    say otherwise; it is the server's default when ``None``. ``webhook_secret`` is the
    ``whsec_`` secret of the project's Gemini API webhook (subscribed to ``video.generated``),
    for :meth:`TaskManager.handle_webhook`. ``retention`` is how long a video stays downloadable.
    ``client``, ``timeout``, ``call_timeout``, ``max_response_bytes``, ``max_retries`` and
    ``backoff`` are as for :class:`OpenAIVideosProvider`.

    Veo cannot stop a job: cancelling a task ends it locally (the manager says so in the task),
    and Google may still render and bill it.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        model: str = DEFAULT_VEO_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        name: str = "veo",
        models: Mapping[str, VeoModel] = VEO_MODELS,
        person_generation: str | None = None,
        webhook_secret: str | SecretStr | None = None,
        retention: timedelta = VEO_RETENTION,
    ) -> None:
        key = api_key if api_key is not None else _key_from_environment()
        if not key or (isinstance(key, SecretStr) and not key.get_secret_value()):
            raise InvalidRequestError(
                "no API key: pass api_key= or set GEMINI_API_KEY (or GOOGLE_API_KEY)",
                field="api_key",
            )
        _check_model(model)
        self._http = ProviderClient(
            provider=name,
            base_url=base_url,
            api_key=key if isinstance(key, SecretStr) else SecretStr(key),
            auth_header="x-goog-api-key",
            auth_scheme=None,
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._model = model
        self._models = dict(models)
        self._extra = {"personGeneration": person_generation} if person_generation else {}
        self._secret: SecretStr | None = None
        if webhook_secret is not None:
            value = (
                webhook_secret
                if isinstance(webhook_secret, SecretStr)
                else SecretStr(webhook_secret)
            )
            register_secret(value.get_secret_value())
            self._secret = value
        self._retention = retention
        known = self.capabilities_for(model)
        fallback = ProviderCapabilities(
            default_model=model, default_size="1280x720", default_seconds=8, can_cancel=False
        )
        self._capabilities = (known or fallback).model_copy(
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
        return spec.capabilities(model, vertex=False) if spec is not None else None

    def check(self, request: SubmitRequest) -> None:
        """Refuse what Veo's rules between fields forbid (see :func:`check_request`)."""
        check_request(self._models.get(request.model), request)

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """``POST models/{model}:predictLongRunning``; checked again first, so a bad request is
        never sent."""
        _check_model(request.model)
        self.check(request)
        body = predict_body(request, vertex=False, extra=self._extra)
        path = f"models/{quote(request.model, safe='')}:predictLongRunning"
        response = await self._http.request("POST", path, create=True, json=body)
        try:
            return parse_operation(
                json_object(response.content),
                seen_at=datetime.now(UTC),
                retention=self._retention,
            )
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the operation may have started",
                provider=self._http.provider,
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """``GET {operation name}``; an answer about another operation is refused."""
        response = await self._http.request("GET", _operation_path(external_id))
        return same_job(self._parse(response), external_id, provider=self._http.provider)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the video from the files endpoint, with the key (never buffered whole).

        The URL stored in ``task`` is used while it is valid; otherwise the operation is read
        again. A filtered or failed operation has nothing to download.
        """
        if variant != "video":
            raise ProviderError(f"Veo has no {variant}", provider=self._http.provider)
        url = _stored_url(task)
        if url is None:
            job = await self.status(external_id)
            url = job.result_url
            if url is None:
                why = job.error.message if job.error is not None else job.raw_status
                raise ProviderError(
                    f"operation {external_id!r} has no video to download ({why})",
                    provider=self._http.provider,
                )
        async with self._http.stream(self._http.resolve(url)) as stream:
            yield stream

    async def webhook_secret(self) -> SecretStr | None:
        """The project webhook's signing secret, when one was given."""
        return self._secret

    async def aclose(self) -> None:
        """Close the HTTP client this provider created (never an injected one)."""
        await self._http.aclose()

    def _parse(self, response: httpx2.Response) -> ProviderJob:
        try:
            return parse_operation(
                json_object(response.content),
                seen_at=datetime.now(UTC),
                retention=self._retention,
            )
        except ValueError as exc:
            provider = self._http.provider
            raise ProviderResponseError(
                f"unreadable answer from {provider}: {exc}",
                provider=provider,
                limit=exc.limit if isinstance(exc, JSONLimitError) else None,
            ) from None


def _key_from_environment() -> str | None:
    for variable in _KEY_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


def _check_model(model: str) -> None:
    if not _MODEL.match(model):
        raise InvalidRequestError(
            f"a Veo model id is lowercase letters, digits, dots and dashes "
            f"(for example {DEFAULT_VEO_MODEL}), got {model!r}",
            field="model",
        )


def _operation_path(external_id: str) -> str:
    found = _OPERATION.match(external_id)
    if found is None:
        # an id that is not an operation name never becomes a path (no ../ into the API)
        return f"models/-/operations/{quote(external_id, safe='')}"
    return external_id


def _stored_url(task: Task | None) -> str | None:
    result = task.result if task is not None else None
    if result is None or result.url is None:
        return None
    if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
        return None
    return result.url
