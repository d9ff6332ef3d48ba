"""Replicate's predictions API (``https://api.replicate.com/v1``): one adapter, many video models.

Official models run with ``POST /models/{owner}/{name}/predictions``; any model pinned to a
version (``owner/name:<version id>``) with ``POST /predictions``. The engine polls
``GET /predictions/{id}`` (``Prefer: wait`` is never sent), cancels with
``POST /predictions/{id}/cancel`` and, when a task has a deadline, sends ``Cancel-After`` so
Replicate stops billing at that moment even if nobody is left to cancel. Outputs are deleted an
hour after a prediction finishes: the engine downloads them at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
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
from ._keys import api_key as resolve_key
from ._parsing import JSONLimitError, json_object, same_job
from ._replicate_models import REPLICATE_MODELS, ReplicateModel, model_input
from ._replicate_parse import REPLICATE_RETENTION, parse_prediction

__all__ = ["DEFAULT_REPLICATE_MODEL", "ReplicateProvider", "WebhookEvent"]

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
DEFAULT_REPLICATE_MODEL = "google/veo-3.1"

WebhookEvent = Literal["start", "output", "logs", "completed"]
"""The events ``webhook_events_filter`` can ask Replicate to deliver."""

_MODEL = re.compile(r"^([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)(?::([0-9a-f]{64}))?$")
_VERSION = re.compile(r"^[0-9a-f]{64}$")
# how far Replicate's clock may be behind ours when matching an attempt to a listed prediction
_CLOCK_SKEW = timedelta(minutes=5)

_UNKNOWN_MODEL = ProviderCapabilities(
    default_model=DEFAULT_REPLICATE_MODEL,
    default_size="1280x720",
    default_seconds=5,
    image_matches_size=False,
    can_cancel=True,
    can_list=True,
)


class ReplicateProvider(Provider):
    """Run video models on Replicate: submit, poll, cancel, find, download, verify webhooks.

    ``api_key`` falls back to ``REPLICATE_API_TOKEN``. ``model`` is the default model, as
    ``owner/name`` (an official model) or ``owner/name:<version id>``; :meth:`capabilities_for`
    knows the input of the models in ``models`` (by default the well-known video models), and
    any other model runs with the prompt and ``provider_options`` as its input. With
    ``webhook_url`` every create asks Replicate to POST the ``webhook_events`` there; the
    signing secret is ``webhook_secret`` or else fetched once from
    ``GET /webhooks/default/secret``. ``retention`` is how long outputs stay downloadable.
    ``client``, ``timeout``, ``call_timeout``, ``max_response_bytes``, ``max_retries`` and
    ``backoff`` are as for :class:`OpenAIVideosProvider`.
    """

    honours_call_bounds = True  # every call goes through ProviderClient's total deadline

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        model: str = DEFAULT_REPLICATE_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        client: httpx2.AsyncClient | None = None,
        timeout: httpx2.Timeout | float | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        name: str = "replicate",
        models: Mapping[str, ReplicateModel] = REPLICATE_MODELS,
        webhook_url: str | None = None,
        webhook_events: Sequence[WebhookEvent] = ("completed",),
        webhook_secret: str | SecretStr | None = None,
        retention: timedelta = REPLICATE_RETENTION,
        find_pages: int = 3,
        find_window: timedelta = timedelta(hours=1),
    ) -> None:
        key = resolve_key(api_key, "REPLICATE_API_TOKEN", what="API token")
        _route(model)
        if webhook_url is not None and not webhook_url.startswith(("https://", "http://")):
            raise InvalidRequestError(
                f"webhook_url must be an http(s) URL, got {webhook_url!r}", field="webhook_url"
            )
        self._http = ProviderClient(
            provider=name,
            base_url=base_url,
            api_key=key,
            client=client,
            timeout=timeout,
            call_timeout=call_timeout,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._model = model
        self._models = dict(models)
        self._webhook_url = webhook_url
        self._webhook_events = list(dict.fromkeys(webhook_events))
        self._secret: SecretStr | None = None
        if webhook_secret is not None:
            self._secret = _registered(webhook_secret)
        self._retention = retention
        self._find_pages = find_pages
        self._find_window = find_window
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
        """What ``model`` (``owner/name``, or with ``:version``) accepts, if the table has it."""
        found = _MODEL.match(model)
        spec = self._models.get(f"{found[1]}/{found[2]}") if found else None
        return spec.capabilities(model) if spec is not None else None

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """Create a prediction; ``Cancel-After`` carries the task's deadline when it has one."""
        path, body = self._create_body(request)
        headers = {}
        if request.deadline_at is not None:
            headers["Cancel-After"] = cancel_after(request.deadline_at)
        response = await self._http.request(
            "POST", path, create=True, json=body, headers=headers or None
        )
        try:
            return parse_prediction(json_object(response.content), retention=self._retention)
        except ValueError as exc:
            raise SubmissionUncertainError(
                f"the create answered {response.status_code} but its body is unreadable ({exc}); "
                "the prediction may have started",
                provider=self._http.provider,
            ) from None

    async def status(self, external_id: str) -> ProviderJob:
        """GET ``/predictions/{id}``; an answer about another prediction is refused."""
        response = await self._http.request("GET", _prediction_path(external_id))
        return same_job(self._parse(response), external_id, provider=self._http.provider)

    async def cancel(self, external_id: str) -> ProviderJob | None:
        """POST ``/predictions/{id}/cancel``; Replicate answers with the prediction."""
        response = await self._http.request("POST", _prediction_path(external_id, "/cancel"))
        return same_job(self._parse(response), external_id, provider=self._http.provider)

    @asynccontextmanager
    async def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AsyncIterator[ContentStream]:
        """Stream the prediction's output file (from ``replicate.delivery``, without the token).

        The URL stored in ``task`` is used while it is valid; otherwise the prediction is read
        again. A prediction whose output is gone is reported as expired by the engine (404).
        """
        if variant != "video":
            raise ProviderError(
                f"Replicate predictions have no {variant}", provider=self._http.provider
            )
        url = _stored_url(task)
        if url is None:
            job = await self.status(external_id)
            url = job.result_url
            if job.expired:
                raise ProviderError(
                    f"the output of prediction {external_id!r} has expired (Replicate removes "
                    f"outputs {self._retention} after a prediction finishes)",
                    provider=self._http.provider,
                )
            if url is None:
                raise ProviderError(
                    f"prediction {external_id!r} has no output to download "
                    f"({job.raw_status or 'no status'})",
                    provider=self._http.provider,
                )
        async with self._http.stream(self._http.resolve(url)) as stream:
            yield stream

    async def find(self, request: SubmitRequest) -> ProviderJob | None:
        """The newest listed prediction of this request's model with its prompt.

        Pages through ``GET /predictions`` (newest first, ``find_pages`` pages at most) and stops
        at predictions older than ``find_window``, or than the attempt less a clock-skew
        allowance. A listed prediction whose input is gone never matches.
        """
        oldest = datetime.now(UTC) - self._find_window
        if request.attempted_at is not None:
            oldest = max(oldest, request.attempted_at - _CLOCK_SKEW)
        path: str | None = "predictions"
        params: dict[str, str] | None = {"created_after": oldest.isoformat()}
        for _ in range(self._find_pages):
            if path is None:
                return None
            response = await self._http.request("GET", path, params=params)
            items, path = self._page(response)
            params = None  # the next page's URL carries its own query
            for item in items:
                job = _listed(item, self._retention)
                if job is None:
                    continue
                if job.created_at is not None and job.created_at < oldest:
                    return None
                if _matches(item, request):
                    return job
        return None

    async def webhook_secret(self) -> SecretStr | None:
        """The configured signing secret, or Replicate's default one, fetched once."""
        if self._secret is None:
            response = await self._http.request("GET", "webhooks/default/secret")
            try:
                key = json_object(response.content).get("key")
            except ValueError as exc:
                raise self._unreadable(exc) from None
            if not isinstance(key, str) or not key:
                raise ProviderResponseError(
                    "Replicate's webhook secret answer has no key", provider=self._http.provider
                )
            self._secret = _registered(key)
        return self._secret

    async def aclose(self) -> None:
        """Close the HTTP client this provider created (never an injected one)."""
        await self._http.aclose()

    def _create_body(self, request: SubmitRequest) -> tuple[str, dict[str, Any]]:
        owner_name, version = _route(request.model)
        spec = self._models.get(owner_name) if owner_name is not None else None
        body: dict[str, Any] = {"input": model_input(spec, request)}
        if self._webhook_url is not None:
            body["webhook"] = self._webhook_url
            body["webhook_events_filter"] = self._webhook_events
        if version is None:
            owner, name = str(owner_name).split("/")
            return f"models/{quote(owner, safe='')}/{quote(name, safe='')}/predictions", body
        return "predictions", {"version": version, **body}

    def _parse(self, response: httpx2.Response) -> ProviderJob:
        try:
            return parse_prediction(json_object(response.content), retention=self._retention)
        except ValueError as exc:
            raise self._unreadable(exc) from None

    def _page(self, response: httpx2.Response) -> tuple[list[dict[str, object]], str | None]:
        """The page's predictions and the path of the next page, when it is under our base."""
        try:
            data = json_object(response.content)
        except ValueError as exc:
            raise self._unreadable(exc) from None
        raw = data.get("results")
        items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
        following = data.get("next")
        base = str(self._http.base_url)
        if isinstance(following, str) and following.startswith(base):
            return items, following[len(base) :]
        return items, None

    def _unreadable(self, exc: ValueError) -> ProviderResponseError:
        provider = self._http.provider
        return ProviderResponseError(
            f"unreadable answer from {provider}: {exc}",
            provider=provider,
            limit=exc.limit if isinstance(exc, JSONLimitError) else None,
        )


def cancel_after(deadline_at: datetime, *, now: datetime | None = None) -> str:
    """The ``Cancel-After`` duration for a deadline: whole seconds from now, at least one."""
    left = (deadline_at - (now or datetime.now(UTC))).total_seconds()
    return f"{max(1, math.ceil(left))}s"


def _route(model: str) -> tuple[str | None, str | None]:
    """``(owner/name, version)`` for a model reference; an unusable one is refused."""
    if _VERSION.match(model):
        return None, model
    found = _MODEL.match(model)
    if found is None:
        raise InvalidRequestError(
            f"a Replicate model is owner/name or owner/name:<64-hex version id>, got {model!r}",
            field="model",
        )
    return f"{found[1]}/{found[2]}", found[3]


def _prediction_path(external_id: str, suffix: str = "") -> str:
    return f"predictions/{quote(external_id, safe='')}{suffix}"


def _registered(secret: str | SecretStr) -> SecretStr:
    value = secret if isinstance(secret, SecretStr) else SecretStr(secret)
    register_secret(value.get_secret_value())
    return value


def _stored_url(task: Task | None) -> str | None:
    result = task.result if task is not None else None
    if result is None or result.url is None:
        return None
    if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
        return None
    return result.url


def _listed(item: Mapping[str, object], retention: timedelta) -> ProviderJob | None:
    try:
        return parse_prediction(item, retention=retention)
    except ValueError:
        return None


def _matches(item: Mapping[str, object], request: SubmitRequest) -> bool:
    owner_name, version = _route(request.model)
    # a version id belongs to exactly one model, so it alone decides
    same_model = item.get("version") == version if version else item.get("model") == owner_name
    data = item.get("input")
    return same_model and isinstance(data, dict) and data.get("prompt") == request.prompt
