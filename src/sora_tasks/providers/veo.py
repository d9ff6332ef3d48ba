"""Google Veo through the Gemini API (``https://generativelanguage.googleapis.com/v1beta``).

A create is ``POST models/{model}:predictLongRunning`` (header ``x-goog-api-key``); it answers
with a long-running operation whose ``name`` (``models/{model}/operations/{id}``) is the job's
id, read back with ``GET {name}``. Veo says only whether the operation is ``done``: no queue, no
progress, no cancel. A finished operation names its video as a ``files/{id}:download`` URL that
takes the same key; the video is kept two days. A finished operation without a video was stopped
by the safety filter: the task fails ``content_filtered`` with the filter's reasons.

:meth:`VeoProvider.vertex` speaks the same models on Vertex AI: the create goes under
``projects/{p}/locations/{l}/publishers/google/models/``, the operation is read with
``POST ...:fetchPredictOperation`` and the video comes back in a ``gs://`` bucket or inline.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
from pydantic import SecretStr

from .._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderResponseError,
    ProviderTransportError,
    SubmissionUncertainError,
)
from .._models import Task, TaskStatus
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
from ._google_auth import GoogleAuth
from ._http import DEFAULT_CALL_TIMEOUT, ProviderClient
from ._json import DEFAULT_MAX_JSON_BYTES
from ._parsing import json_object, same_job
from ._veo_inline import InlineVideo
from ._veo_models import VEO_MODELS, VeoModel, check_request, predict_body
from ._veo_parse import VEO_RETENTION, parse_operation

__all__ = ["DEFAULT_VEO_MODEL", "VeoProvider"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_VEO_MODEL = "veo-3.1-generate-preview"
DEFAULT_STORAGE_URL = "https://storage.googleapis.com"

_MODEL = re.compile(r"^[a-z0-9][a-z0-9.-]{0,127}$")
_OPERATION = re.compile(r"^models/([a-z0-9][a-z0-9.-]{0,127})/operations/([A-Za-z0-9_-]{1,256})$")
_VERTEX_OPERATION = re.compile(
    r"^(projects/[a-z0-9-]+/locations/[a-z0-9-]+/publishers/google/models/[a-z0-9][a-z0-9.-]*)"
    r"/operations/[A-Za-z0-9_-]{1,256}$"
)
_FILE = re.compile(r"/files/([A-Za-z0-9_-]{1,256}):download(?:\?|$)")
_SEGMENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
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
        http = ProviderClient(
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
        extra = {"personGeneration": person_generation} if person_generation else {}
        self._setup(http, None, model=model, models=models, extra=extra, retention=retention)
        self._secret: SecretStr | None = None
        if webhook_secret is not None:
            value = (
                webhook_secret
                if isinstance(webhook_secret, SecretStr)
                else SecretStr(webhook_secret)
            )
            register_secret(value.get_secret_value())
            self._secret = value

    @classmethod
    def vertex(
        cls,
        project: str,
        location: str = "us-central1",
        credentials: Any = None,
        *,
        model: str = "veo-3.1-generate-001",
        base_url: str | None = None,
        storage_url: str = DEFAULT_STORAGE_URL,
        storage_uri: str | None = None,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        name: str = "veo",
        models: Mapping[str, VeoModel] = VEO_MODELS,
        person_generation: str | None = None,
    ) -> VeoProvider:
        """Veo on Vertex AI, in ``project`` at ``location``, with Google Cloud credentials.

        ``credentials`` is a google-auth credentials object; without it, Application Default
        Credentials are used (both need ``pip install "sora-tasks[vertex]"``). Tokens are
        refreshed in a worker thread. ``base_url`` defaults to the location's endpoint
        (``https://{location}-aiplatform.googleapis.com/v1``). With ``storage_uri``
        (``gs://bucket/prefix/``) videos are written to your bucket and read from it through
        the Cloud Storage JSON API at ``storage_url``; without it they come back inline
        (base64), decoded as they stream. Vertex AI takes ``seed`` and ``audio`` too.
        """
        for label, value in (("project", project), ("location", location)):
            if not _SEGMENT.match(value):
                raise InvalidRequestError(
                    f"a Google Cloud {label} is letters, digits and dashes, got {value!r}",
                    field=label,
                )
        _check_model(model)
        if storage_uri is not None and not storage_uri.startswith("gs://"):
            raise InvalidRequestError(
                f"storage_uri must be a gs:// URI, got {storage_uri!r}", field="storage_uri"
            )
        if credentials is None:
            try:
                import google.auth  # noqa: F401 - fail now, not on the first request
            except ImportError:
                raise ImportError(
                    'Vertex AI needs google-auth: pip install "sora-tasks[vertex]"'
                ) from None
        auth = GoogleAuth(credentials, provider=name)
        host = "aiplatform.googleapis.com"
        root = base_url or f"https://{host if location == 'global' else f'{location}-{host}'}/v1"
        shared: dict[str, Any] = {
            "provider": name,
            "api_key": None,
            "client": client,
            "timeout": timeout,
            "call_timeout": call_timeout,
            "max_response_bytes": max_response_bytes,
            "max_retries": max_retries,
            "backoff": backoff,
            "auth": auth,
        }
        http = ProviderClient(base_url=root, **shared)
        place = _Vertex(
            prefix=f"projects/{project}/locations/{location}/publishers/google/models/",
            storage=ProviderClient(base_url=storage_url, **shared),
        )
        extra: dict[str, Any] = {"personGeneration": person_generation} if person_generation else {}
        if storage_uri is not None:
            extra["storageUri"] = storage_uri
        provider = cls.__new__(cls)
        provider._setup(http, place, model=model, models=models, extra=extra, retention=None)
        provider._secret = None
        return provider

    def _setup(
        self,
        http: ProviderClient,
        vertex: _Vertex | None,
        *,
        model: str,
        models: Mapping[str, VeoModel],
        extra: Mapping[str, Any],
        retention: timedelta | None,
    ) -> None:
        self._http = http
        self._vertex = vertex
        self._model = model
        self._models = dict(models)
        self._extra = dict(extra)
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
        """What ``model`` accepts (on the Gemini API or Vertex AI), if the table has it."""
        spec = self._models.get(model)
        return spec.capabilities(model, vertex=self._vertex is not None) if spec else None

    def check(self, request: SubmitRequest) -> None:
        """Refuse what Veo's rules between fields forbid (see :func:`check_request`)."""
        check_request(self._models.get(request.model), request)

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """``POST models/{model}:predictLongRunning``; checked again first, so a bad request is
        never sent."""
        _check_model(request.model)
        self.check(request)
        vertex = self._vertex
        body = predict_body(request, vertex=vertex is not None, extra=self._extra)
        model = quote(request.model, safe="")
        path = f"{vertex.prefix if vertex else 'models/'}{model}:predictLongRunning"
        response = await self._http.request("POST", path, create=True, json=body)
        try:
            return self._read(json_object(response.content))
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the operation may have started",
                provider=self._http.provider,
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """Read the operation (``GET {name}``, or Vertex AI's ``fetchPredictOperation``); an
        answer about another operation is refused."""
        if self._vertex is None:
            response = await self._http.request("GET", _operation_path(external_id))
            job = self._parse(response.content)
        else:
            job = await self._fetch(external_id)
        return same_job(job, external_id, provider=self._http.provider)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the video (never buffered whole): from the files endpoint with the key, from
        Cloud Storage with the credentials, or decoded from Vertex AI's inline answer.

        The URL stored in ``task`` is used while it is valid; otherwise the operation is read
        again. A filtered or failed operation has nothing to download.
        """
        provider = self._http.provider
        if variant != "video":
            raise ProviderError(f"Veo has no {variant}", provider=provider)
        url = _stored_url(task)
        if url is None:
            job = await self.status(external_id)
            url = job.result_url
            if job.status is not TaskStatus.COMPLETED:
                why = job.error.message if job.error is not None else job.raw_status
                raise ProviderError(
                    f"operation {external_id!r} has no video to download ({why})",
                    provider=provider,
                )
        vertex = self._vertex
        if url is not None and url.startswith("gs://") and vertex is not None:
            async with vertex.storage.stream(_object_url(vertex.storage, url)) as stream:
                yield stream
        elif url is not None:
            async with self._http.stream(self._file_url(url)) as stream:
                yield stream
        elif vertex is not None:
            async with self._inline(external_id) as stream:
                yield stream
        else:
            raise ProviderError(f"operation {external_id!r} names no video", provider=provider)

    async def webhook_secret(self) -> SecretStr | None:
        """The project webhook's signing secret, when one was given."""
        return self._secret

    async def aclose(self) -> None:
        """Close the HTTP clients this provider created (never an injected one)."""
        await self._http.aclose()
        if self._vertex is not None:
            await self._vertex.storage.aclose()

    def _file_url(self, url: str) -> str:
        """A Gemini API file's download URL under our ``base_url`` (a proxy's, say), so the key
        goes where the API calls go and nowhere else; any other URL as it came."""
        found = _FILE.search(url)
        if found is None:
            return self._http.resolve(url)
        return self._http.url(f"files/{found[1]}:download?alt=media")

    def _read(self, data: Mapping[str, object]) -> ProviderJob:
        return parse_operation(data, seen_at=datetime.now(UTC), retention=self._retention)

    def _parse(self, body: bytes | bytearray) -> ProviderJob:
        try:
            return self._read(json_object(bytes(body)))
        except ValueError as exc:
            provider = self._http.provider
            raise ProviderResponseError(
                f"unreadable answer from {provider}: {exc}",
                provider=provider,
                limit=getattr(exc, "limit", None),
            ) from None

    def _fetch_call(self, external_id: str) -> tuple[str, dict[str, str]]:
        found = _VERTEX_OPERATION.match(external_id)
        vertex = self._vertex
        assert vertex is not None
        if found is None or not found[1].startswith(vertex.prefix):
            # not one of this project's operations: ask about a name that cannot exist
            model = quote(self._model, safe="")
            return f"{vertex.prefix}{model}:fetchPredictOperation", {"operationName": "-"}
        return f"{found[1]}:fetchPredictOperation", {"operationName": external_id}

    async def _fetch(self, external_id: str) -> ProviderJob:
        """Vertex AI's ``fetchPredictOperation``, streamed so an inline video is skipped."""
        path, body = self._fetch_call(external_id)
        scan = InlineVideo(max_json_bytes=self._max_json)
        provider = self._http.provider
        with anyio.move_on_after(self._call_timeout) as scope:
            async with self._http.stream(
                self._http.url(path), method="POST", json=body, resumes=0
            ) as stream:
                async for chunk in stream.aiter_bytes():
                    scan.feed(chunk)
            try:
                scan.finish()
            except ValueError as exc:
                raise ProviderResponseError(
                    f"unreadable answer from {provider}: {exc}", provider=provider
                ) from None
        if scope.cancelled_caught:
            raise ProviderTransportError(
                f"fetchPredictOperation took longer than {self._call_timeout:g} s (call_timeout)",
                provider=provider,
            )
        return self._parse(scan.json)

    @asynccontextmanager
    async def _inline(self, external_id: str) -> AsyncIterator[ContentStream]:
        path, body = self._fetch_call(external_id)
        async with self._http.stream(
            self._http.url(path), method="POST", json=body, resumes=0
        ) as stream:
            yield _InlineStream(stream, max_json_bytes=self._max_json)

    @property
    def _max_json(self) -> int:
        return self._http.max_response_bytes

    @property
    def _call_timeout(self) -> float:
        return self._http.call_timeout


@dataclass(frozen=True, slots=True)
class _Vertex:
    """Where Veo lives on Vertex AI, and the Cloud Storage client for ``gs://`` results."""

    prefix: str  # projects/{project}/locations/{location}/publishers/google/models/
    storage: ProviderClient


class _InlineStream(ContentStream):
    """The video decoded from an inline ``fetchPredictOperation`` answer as it streams."""

    content_type = "video/mp4"

    def __init__(self, stream: ContentStream, *, max_json_bytes: int) -> None:
        self._stream = stream
        self._max = max_json_bytes

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        scan = InlineVideo(max_json_bytes=self._max)
        async for chunk in self._stream.aiter_bytes():
            video = scan.feed(chunk)
            if video:
                yield video
        scan.finish()
        if not scan.found:
            raise ProviderError("the operation holds no inline video")


def _object_url(storage: ProviderClient, uri: str) -> str:
    """The Cloud Storage JSON API's media URL of ``gs://bucket/object``."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise ProviderError(f"not a Cloud Storage object: {uri!r}", provider=storage.provider)
    return storage.url(f"storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media")


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
