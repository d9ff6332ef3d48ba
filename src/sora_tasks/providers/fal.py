"""fal's queue API (``queue.fal.run``): one adapter for the many video models fal hosts.

A job is submitted with ``POST {base}/{model id}`` and then lives at ``{app}/requests/{id}``
(the app is the model id without its sub-path: ``fal-ai/veo3.1/fast`` runs in app
``fal-ai/veo3.1``). That path, as fal's own ``response_url`` gives it, is the task's
``external_id``, so status, result and cancel survive a restart with nothing else stored.
Status words: ``IN_QUEUE`` (with a queue position), ``IN_PROGRESS`` (with logs), ``COMPLETED``
— which a failed run answers too, with an ``error``, so a completed job is only COMPLETED once
its result names a video. Source: https://docs.fal.ai/model-endpoints/queue.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from .._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderRejectedError,
    ProviderResponseError,
    SubmissionUncertainError,
)
from .._models import ImageData, Task, TaskError, TaskStatus
from .._retry import Backoff
from .._webhooks import VerifiedWebhook
from ._base import (
    ContentStream,
    ContentVariant,
    Provider,
    ProviderCapabilities,
    ProviderJob,
    SubmitRequest,
)
from ._errors import MAX_CODE_CHARS, error_fields, provider_text
from ._fal_models import FAL_MODELS, FalModel, ImageMode, capabilities_of, fal_input
from ._fal_storage import DEFAULT_STORAGE_URL, FalStorage
from ._fal_webhooks import DEFAULT_JWKS_URL, FalWebhookVerifier
from ._http import DEFAULT_CALL_TIMEOUT, ProviderClient
from ._json import DEFAULT_MAX_JSON_BYTES
from ._parsing import (
    JobState,
    JSONLimitError,
    MalformedResponseError,
    build_job,
    first_string,
    json_object,
    parse_progress,
)

__all__ = ["DEFAULT_FAL_CAPABILITIES", "FAL_STATUS_WORDS", "FalProvider", "app_of"]

DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/veo3.1"

FAL_STATUS_WORDS: Mapping[str, JobState] = {
    "in_queue": "QUEUED",
    "in_progress": "PROCESSING",
    "completed": "COMPLETED",
    # not in fal's queue docs; a third-party schema lists them, so they are understood
    "failed": "FAILED",
    "canceled": "CANCELLED",
    "cancelled": "CANCELLED",
}
"""fal's status words (compared case-insensitively) and the states they stand for."""

DEFAULT_FAL_CAPABILITIES = ProviderCapabilities(
    default_model=DEFAULT_MODEL,
    default_size="1280x720",
    default_seconds=8,
    image_upload=True,
    image_url=True,
    image_matches_size=False,
    can_cancel=True,
    min_poll_interval=2.0,
)
"""The provider's switches and pace; each model's inputs come from :data:`FAL_MODELS`."""

# namespaces that put one more segment in front of owner/app (fal_client's AppId)
_NAMESPACES = frozenset({"workflows", "comfy"})
_PERCENT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s?%")
_MIN_START_TIMEOUT = 1.0  # fal refuses a start deadline of a second or less
_VIDEO_PATHS = ("video.url", "videos.0.url", "output.video.url")


def app_of(model: str) -> str:
    """The app a model id runs in: ``fal-ai/veo3.1/fast`` → ``fal-ai/veo3.1``."""
    parts = [part for part in model.strip("/").split("/") if part]
    size = 3 if parts and parts[0] in _NAMESPACES else 2
    if len(parts) < size:
        raise InvalidRequestError(
            f"a fal model id looks like owner/app[/path] (for example {DEFAULT_MODEL}), "
            f"got {model!r}",
            field="model",
        )
    return "/".join(parts[:size])


class FalProvider(Provider):
    """Submit, poll, download and cancel jobs on fal's queue, for any model fal hosts.

    ``api_key`` falls back to ``FAL_KEY`` and is sent as ``Authorization: Key <key>``. ``model``
    is the default model id; every model in :data:`FAL_MODELS` has its inputs mapped (see
    :meth:`capabilities_for`), any other is sent its prompt, images and ``provider_options``.
    Images given as bytes go inline as data URIs; with ``images="upload"`` they are uploaded to
    fal's storage (at ``storage_url``) first and sent as URLs; ``images="url_only"`` accepts URLs
    only.

    ``webhook_url`` asks fal to POST the outcome there; ``TaskManager.handle_webhook`` checks
    each delivery (:meth:`verify_webhook`) against fal's keys, fetched from ``jwks_url``, or
    against ``webhook_keys`` (raw Ed25519 public keys) when given; ``webhook_clock`` is the
    clock timestamps are checked by. ``object_lifetime`` (seconds) asks fal to keep outputs
    that long and dates ``expires_at`` by it; ``priority`` is fal's queue priority. A request's
    deadline goes out as ``X-Fal-Request-Timeout``, so a job still queued when the task would
    time out never starts. fal cannot list requests, so an uncertain submit is never found.

    ``models`` replaces the table of mapped models (:data:`FAL_MODELS`); ``capabilities`` sets
    what every model shares (the polling pace and floor, ``max_in_flight``), each model's own
    inputs coming from the table.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        images: Literal["data_uri", "upload", "url_only"] = "data_uri",
        storage_url: str = DEFAULT_STORAGE_URL,
        webhook_url: str | None = None,
        object_lifetime: int | None = None,
        priority: Literal["normal", "low"] | None = None,
        webhook_keys: Iterable[bytes] | None = None,
        jwks_url: str = DEFAULT_JWKS_URL,
        webhook_clock: Callable[[], float] = time.time,
        models: Mapping[str, FalModel] | None = None,
        capabilities: ProviderCapabilities | None = None,
        name: str = "fal",
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("FAL_KEY")
        if not key or (isinstance(key, SecretStr) and not key.get_secret_value()):
            raise InvalidRequestError("no API key: pass api_key= or set FAL_KEY", field="api_key")
        if object_lifetime is not None and object_lifetime < 1:
            raise InvalidRequestError(
                f"object_lifetime must be at least 1 second, got {object_lifetime}",
                field="object_lifetime",
                limit=1,
            )
        app_of(model)
        self._http = ProviderClient(
            provider=name,
            base_url=base_url,
            api_key=key if isinstance(key, SecretStr) else SecretStr(key),
            auth_scheme="Key",
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._models = dict(FAL_MODELS if models is None else models)
        self._base = capabilities or DEFAULT_FAL_CAPABILITIES
        self._model = model
        self._images = images
        key_secret = key if isinstance(key, SecretStr) else SecretStr(key)
        self._storage = (
            FalStorage(
                key_secret,
                storage_url=storage_url,
                client=client,
                call_timeout=call_timeout,
                object_lifetime=object_lifetime,
                name=name,
            )
            if images == "upload"
            else None
        )
        self._webhook_url = webhook_url
        self._lifetime = object_lifetime
        self._headers: dict[str, str] = {}
        if priority is not None:
            self._headers["X-Fal-Queue-Priority"] = priority
        if object_lifetime is not None:
            preference = {"expiration_duration_seconds": object_lifetime}
            self._headers["X-Fal-Object-Lifecycle-Preference"] = json.dumps(preference)
        self._new_verifier = partial(
            FalWebhookVerifier,
            keys=None if webhook_keys is None else list(webhook_keys),
            jwks_url=jwks_url,
            client=client,
            clock=webhook_clock,
            name=name,
        )
        self._verifier: FalWebhookVerifier | None = None
        # any model may be asked for, so the provider-wide capabilities check nothing per model;
        # the defaults are the default model's
        defaults: dict[str, object] = {"default_model": model}
        known = self.capabilities_for(model)
        if known is not None:
            defaults.update(default_size=known.default_size, default_seconds=known.default_seconds)
        self._capabilities = self._base.model_copy(update=defaults)

    def __repr__(self) -> str:
        http = getattr(self, "_http", None)  # absent when __init__ refused its arguments
        base_url = str(http.base_url) if http is not None else None
        return f"{type(self).__name__}(model={self._model!r}, base_url={base_url!r})"

    @property
    def capabilities(self) -> ProviderCapabilities:
        """Any model, with the default model's defaults; fal's pace; cancel. See
        :meth:`capabilities_for` for what one model takes."""
        return self._capabilities

    def capabilities_for(self, model: str) -> ProviderCapabilities | None:
        """What ``model`` takes, for the models in the table; ``None`` for any other."""
        known = self._models.get(model)
        return None if known is None else capabilities_of(known, self._base)

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """POST ``{base}/{model}`` with the model's JSON input; the job's path is its id."""
        app = app_of(request.model)
        if self._storage is not None:
            request = await self._uploaded(request, self._storage)
        mode: ImageMode = "data_uri" if self._images == "data_uri" else "url_only"
        body = fal_input(request, self._models.get(request.model), images=mode)
        headers = dict(self._headers)
        timeout = _start_timeout(request.deadline_at)
        if timeout is not None:
            headers["X-Fal-Request-Timeout"] = timeout
        params = {"fal_webhook": self._webhook_url} if self._webhook_url else None
        response = await self._http.request(
            "POST",
            _quoted(request.model),
            create=True,
            json=body,
            params=params,
            headers=headers,
        )
        try:
            data = json_object(response.content)
            external_id = self._given_path(data, app)
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the job may have started",
                provider=self._http.provider,
            ) from None
        # a new request is queued, whether or not the answer says so
        return self._job(external_id, data, default_word="IN_QUEUE")

    async def status(self, external_id: str) -> ProviderJob:
        """GET ``…/status?logs=1``; a COMPLETED job's result tells success from failure."""
        path = self._path(external_id)
        response = await self._http.request("GET", f"{path}/status", params={"logs": "1"})
        data = self._object(response)
        job = self._job(external_id, data)
        if job.status is not TaskStatus.COMPLETED:
            return job
        if data.get("error") is not None:
            return _failed(external_id, job.raw_status, data.get("error_type"), data.get("error"))
        return await self._result(external_id, job.raw_status)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the finished video from the URL its result names (fal's CDN, no key sent)."""
        if variant != "video":
            raise ProviderError(
                f"fal serves only the video, not a {variant}", provider=self._http.provider
            )
        url = _stored_url(task)
        if url is None:
            job = await self.status(external_id)
            url = job.result_url
            if url is None:
                why = "its output expired" if job.expired else f"it is {job.raw_status}"
                raise ProviderError(
                    f"job {external_id!r} has no video to download: {why}",
                    provider=self._http.provider,
                )
        async with self._http.stream(self._http.resolve(url)) as stream:
            yield stream

    async def cancel(self, external_id: str) -> ProviderJob | None:
        """PUT ``…/cancel``: a queued job is dropped, a running one is asked to stop.

        A job that finished first (fal answers 400 ``ALREADY_COMPLETED``) is left as it is.
        """
        path = self._path(external_id)
        try:
            response = await self._http.request("PUT", f"{path}/cancel")
        except ProviderRejectedError as exc:
            if exc.status_code == 400:
                return None
            raise
        word = self._object(response).get("status")
        raw = word if isinstance(word, str) else ""
        return ProviderJob(
            external_id=external_id,
            status=TaskStatus.CANCELLED,
            raw_status=provider_text(raw, MAX_CODE_CHARS),
        )

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedWebhook:
        """Check a fal webhook's Ed25519 signature and name the job it is about.

        fal's delivery carries the request id only; the job is looked for under the app of
        the default model and of every model in the table (a job of another model is left to
        polling). Raises :class:`WebhookVerificationError` when the delivery is not fal's.
        """
        if self._verifier is None:
            self._verifier = self._new_verifier()
        webhook = await self._verifier.verify(headers, body)
        apps = dict.fromkeys(app_of(model) for model in (self._model, *self._models))
        outcome = None
        try:
            event = json_object(body)
            word = event.get("status")
            outcome = word if isinstance(word, str) else None
        except ValueError:
            pass  # an authentic body that is not JSON still names its request in the headers
        return VerifiedWebhook(
            webhook_id=webhook.request_id,
            external_ids=tuple(f"{app}/requests/{webhook.request_id}" for app in apps),
            event_type=outcome,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients this provider created (never an injected one)."""
        try:
            if self._verifier is not None:
                await self._verifier.aclose()
            if self._storage is not None:
                await self._storage.aclose()
        finally:
            await self._http.aclose()

    @staticmethod
    async def _uploaded(request: SubmitRequest, storage: FalStorage) -> SubmitRequest:
        """``request`` with every image given as bytes uploaded, and named by its URL."""

        async def url(image: ImageData | str) -> str:
            return image if isinstance(image, str) else await storage.upload(image)

        first = await url(request.image) if request.image is not None else request.image_url
        last = await url(request.last_frame) if request.last_frame is not None else None
        references = tuple([await url(image) for image in request.reference_images])
        return replace(
            request, image=None, image_url=first, last_frame=last, reference_images=references
        )

    def _path(self, external_id: str) -> str:
        return _job_path(external_id, app_of(self._model))

    def _given_path(self, data: Mapping[str, object], app: str) -> str:
        """The job's path under ``base_url``: from fal's ``response_url`` when it is ours."""
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id or "/" in request_id:
            raise MalformedResponseError("the answer has no usable request_id")
        computed = f"{app}/requests/{request_id}"
        given = data.get("response_url")
        if isinstance(given, str):
            url = httpx2.URL(given)
            base = str(self._http.base_url)
            text = str(url.copy_with(query=None, fragment=None))
            if text.startswith(base) and text[len(base) :].endswith(f"/requests/{request_id}"):
                return text[len(base) :]
        return computed

    def _job(
        self, external_id: str, data: Mapping[str, object], *, default_word: str = ""
    ) -> ProviderJob:
        status = data.get("status")
        request_id = data.get("request_id")
        asked = external_id.rpartition("/requests/")[2]
        if isinstance(request_id, str) and request_id != asked:
            raise ProviderResponseError(
                f"asked {self._http.provider} about job {external_id!r} but the answer is about "
                f"request {provider_text(request_id, MAX_CODE_CHARS)!r}",
                provider=self._http.provider,
            )
        position = data.get("queue_position")
        return build_job(
            external_id=external_id,
            raw_status=status if isinstance(status, str) else default_word,
            words=FAL_STATUS_WORDS,
            progress=_log_progress(data.get("logs")),
            queue_position=position
            if isinstance(position, int) and not isinstance(position, bool) and position >= 0
            else None,
        )

    async def _result(self, external_id: str, raw_status: str) -> ProviderJob:
        try:
            response = await self._http.request("GET", self._path(external_id))
        except ProviderRejectedError as exc:
            if exc.status_code == 404:
                return ProviderJob(
                    external_id=external_id,
                    status=TaskStatus.FAILED,
                    raw_status=provider_text(raw_status, MAX_CODE_CHARS),
                    error=TaskError(code="expired", message="fal no longer has the result"),
                    expired=True,
                )
            if exc.status_code in (400, 422):
                # a failed run answers its result with the error that ended it
                return _failed(external_id, raw_status, exc.code, str(exc))
            raise
        data = self._object(response)
        url = first_string(data, _VIDEO_PATHS)
        if url is None:
            return _failed(
                external_id,
                raw_status,
                "content_filtered",
                "fal finished the request but its result names no video",
            )
        expires_at = None
        if self._lifetime is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=self._lifetime)
        return build_job(
            external_id=external_id,
            raw_status=raw_status,
            words=FAL_STATUS_WORDS,
            progress=100,
            result_url=url,
            expires_at=expires_at,
        )

    def _object(self, response: httpx2.Response) -> dict[str, object]:
        try:
            return json_object(response.content)
        except ValueError as exc:
            provider = self._http.provider
            raise ProviderResponseError(
                f"unreadable answer from {provider}: {exc}",
                provider=provider,
                limit=exc.limit if isinstance(exc, JSONLimitError) else None,
            ) from None


def _failed(external_id: str, raw_status: str, code: object, error: object) -> ProviderJob:
    """A FAILED job from fal's ``error`` (text or object) and ``error_type``."""
    found_code, message = error_fields(error)
    chosen = code if isinstance(code, str) and code else found_code
    return ProviderJob(
        external_id=external_id,
        status=TaskStatus.FAILED,
        raw_status=provider_text(raw_status, MAX_CODE_CHARS),
        error=TaskError(
            code=provider_text(chosen, MAX_CODE_CHARS) if chosen else "provider_error",
            message=provider_text(message or "fal reported an error"),
        ),
    )


def _log_progress(logs: object) -> int | None:
    """The last percentage a model printed in its logs (``"45%"``), when it prints one."""
    if not isinstance(logs, list):
        return None
    for entry in reversed(logs):
        message = entry.get("message") if isinstance(entry, dict) else None
        if isinstance(message, str):
            found = _PERCENT.findall(message)
            if found:
                return parse_progress(f"{found[-1]}%")
    return None


def _start_timeout(deadline_at: datetime | None) -> str | None:
    """Seconds left until ``deadline_at`` as fal's header wants them, when more than one."""
    if deadline_at is None:
        return None
    seconds = (deadline_at - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds) or seconds <= _MIN_START_TIMEOUT:
        return None
    return f"{seconds:.3f}"


def _quoted(model: str) -> str:
    return "/".join(quote(part, safe="") for part in model.strip("/").split("/") if part)


def _job_path(external_id: str, default_app: str) -> str:
    """The job's path, each segment quoted; a bare request id is one of the default model's."""
    head, marker, request_id = external_id.rpartition("/requests/")
    if not marker:
        head, request_id = default_app, external_id
    if not head or not request_id or "/" in request_id:
        raise InvalidRequestError(
            f"not a fal job id (app/requests/<request id>, or a request id): {external_id!r}",
            field="external_id",
        )
    return f"{_quoted(head)}/requests/{quote(request_id, safe='')}"


def _stored_url(task: Task | None) -> str | None:
    """The video URL recorded in ``task``, unless it is known to have expired."""
    result = task.result if task is not None else None
    if result is None or result.url is None:
        return None
    if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
        return None
    return result.url
