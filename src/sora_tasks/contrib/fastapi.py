"""A FastAPI router that serves the original video-task backend's REST API from a TaskManager.

Install the extra (``pip install "sora-tasks[fastapi]"``) and mount it::

    manager = TaskManager(providers=..., store=SQLStore(...), webhook_secrets={...})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(manager, current_user=user_id_from_jwt))

Authentication is the host application's: ``current_user`` is any FastAPI dependency that returns
the caller's user id (or raises 401). Every route but the webhook acts only on that user's tasks.

Two routes stream live events (Server-Sent Events, see ``docs/push.md``): one task's
(``GET /tasks/{videoId}/events``) and all of the caller's (``GET /events``).
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime, and
# they use aliases local to create_router
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from starlette.types import Message, Receive, Scope, Send

from .._exceptions import (
    BudgetExceededError,
    ImageTooLargeError,
    InvalidRequestError,
    ProviderError,
    SoraTasksError,
    StoreUnavailableError,
    TaskNotFoundError,
    TaskNotReadyError,
    WebhookVerificationError,
)
from .._manager import TaskManager
from .._models import Limits, MediaType, Task, TaskStatus
from .._saved import SavedContent
from ..providers._base import ContentStream
from ._events import LiveEvents, decode_event_id
from ._rest_models import (
    CreateTaskBody,
    ProblemAnswer,
    ProblemBody,
    StatsBody,
    TaskBody,
    TaskListBody,
    WebhookAnswer,
)

__all__ = ["create_router", "default_max_body_bytes"]

WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
_CONTENT_ROUTE = "sora_tasks_content"
# a redirect is followed at once: its URL need not outlive a slow client by much
_REDIRECT_LIFETIME = timedelta(minutes=15)
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "`event: task` events"},
}


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than the router reads."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """A JSON route got a body that does not say it is JSON."""


# the one place where errors become HTTP answers; the first matching class wins
_STATUS: tuple[tuple[type[SoraTasksError], int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (ImageTooLargeError, 413),
    (BudgetExceededError, 402),
    (InvalidRequestError, 400),
    (WebhookVerificationError, 400),
    (TaskNotFoundError, 404),
    (TaskNotReadyError, 409),
    (ProviderError, 502),
    (StoreUnavailableError, 503),
)
# the store's own message may name a file or a server: clients get only this, and a retry hint
_STORE_AWAY = "the task store is unavailable; try again shortly"
_STORE_RETRY_AFTER = "5"


def error_response(exc: SoraTasksError) -> JSONResponse | None:
    """The answer for ``exc``: ``{"error": {code, message, field, limit}}``; None if unmapped."""
    status = next((status for kind, status in _STATUS if isinstance(exc, kind)), None)
    if status is None:
        return None
    field = getattr(exc, "field", None)
    away = isinstance(exc, StoreUnavailableError)
    problem = ProblemBody(
        code="store_unavailable" if away else _code(type(exc)),
        message=_STORE_AWAY if away else str(exc),
        field=_api_field(field) if isinstance(field, str) else None,
        limit=jsonable_encoder(getattr(exc, "limit", None)),
    )
    answer = ProblemAnswer(error=problem)
    headers = {"Retry-After": _STORE_RETRY_AFTER} if away else None
    return JSONResponse(
        answer.model_dump(mode="json", by_alias=True), status_code=status, headers=headers
    )


def _code(kind: type[SoraTasksError]) -> str:
    """``ImageTooLargeError`` → ``image_too_large``: stable while the class names are."""
    name = kind.__name__.removesuffix("Error")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class _MappedErrorsRoute(APIRoute):
    """Answers library errors and bad query parameters through :func:`error_response`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def mapped(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                # the location's first part is "query", "path" or "header"
                error: SoraTasksError = _invalid(exc.errors(), skip=1)
            except SoraTasksError as exc:
                error = exc
            answer = error_response(error)
            if answer is None:
                raise error
            return answer

        return mapped


def _invalid(errors: Sequence[Mapping[str, Any]], *, skip: int = 0) -> InvalidRequestError:
    """The first pydantic error as an :class:`InvalidRequestError` naming the API field."""
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"][skip:]) or "body"
    return InvalidRequestError(f"{field}: {first['msg']}", field=field)


def default_max_body_bytes(limits: Limits) -> int:
    """The largest create body worth reading: the biggest allowed image as base64, the prompt
    and metadata at their most escaped (``\\uXXXX`` surrogate pairs), and room for the rest.
    """
    image = 4 * -(-limits.max_image_bytes // 3)
    return image + 12 * limits.max_prompt_chars + 6 * limits.max_metadata_bytes + 16 * 1024


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``, before parsing."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


def _require_json(request: Request) -> None:
    """Refuse a body not declared as JSON, before reading it.

    A cross-site HTML form (or a no-cors ``fetch``) can send ``text/plain`` or no type at all
    without a CORS preflight, with the user's cookies: parsing such a body as JSON would let
    another site start paid jobs where the host authenticates by cookie.
    """
    declared = request.headers.get("content-type", "")
    media_type = declared.partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    if kind == "application" and (subtype == "json" or subtype.endswith("+json")):
        return
    shown = repr(declared) if declared else "missing"
    raise UnsupportedMediaTypeError(
        f"Content-Type is {shown}; this route accepts only application/json",
        field="content-type",
        limit="application/json",
    )


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body is at least {size:,} bytes; the limit is {limit:,} bytes",
        field="body",
        limit=limit,
    )


def _api_field(field: str) -> str:
    """A library parameter name as the API's clients know it: ``reference_images[1]`` →
    ``referenceImages[1]``."""
    name, bracket, index = field.partition("[")
    if not name.isidentifier():
        return field  # a header's name (content-type) stays as HTTP spells it
    return to_camel(name) + bracket + index


def _reference_image(value: str | None) -> str | None:
    return None if value is None else _image(value)


def _image(value: str) -> str:
    # bare base64 is wrapped as a data URL so that no string from a client is ever read as a
    # path on this server
    if value.startswith(("data:", "http://", "https://")):
        return value
    return f"data:;base64,{value}"


class _TaskContent(Response):
    """Sends a task's content through ``TaskManager.open_content``, opened within the response.

    Opening happens here rather than in the endpoint so the download's context (and any cancel
    scope inside it) lives in one task; an error before the first byte (not ready, not found,
    the provider's) still gets a proper error answer. A saved copy goes out as a file, which
    answers Range requests (a browser's player seeks with them; Safari plays nothing without).
    An archived video that ``signer`` can presign is not sent at all: the client is redirected
    (307) to the object store.
    """

    def __init__(
        self,
        opener: Callable[[], AbstractAsyncContextManager[ContentStream]],
        signer: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        super().__init__()
        self._opener = opener
        self._signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            signed = await self._signer() if self._signer is not None else None
            if signed is not None:
                await RedirectResponse(signed, status_code=307)(scope, receive, tracked)
                return
            async with self._opener() as stream:
                if isinstance(stream, SavedContent):
                    await FileResponse(stream.path)(scope, receive, tracked)
                    return
                headers = {}
                if stream.content_length is not None:
                    headers["content-length"] = str(stream.content_length)
                media_type = stream.content_type or "application/octet-stream"
                body = StreamingResponse(_chunks(stream), headers=headers, media_type=media_type)
                await body(scope, receive, tracked)
        except SoraTasksError as exc:
            answer = error_response(exc)
            if started or answer is None:
                raise
            await answer(scope, receive, send)


async def _chunks(stream: ContentStream) -> AsyncIterator[bytes]:
    async for chunk in stream.aiter_bytes():
        yield chunk


def create_router(
    manager: TaskManager,
    *,
    current_user: Callable[..., Awaitable[str] | str],
    prefix: str = "/api/video",
    max_body_bytes: int | None = None,
    heartbeat_interval: float = 15.0,
    events_poll_interval: float = 1.0,
) -> APIRouter:
    """The REST routes of the original backend, under ``prefix``, served from ``manager``.

    ``current_user`` is a FastAPI dependency returning the caller's user id. Create bodies over
    ``max_body_bytes`` (default :func:`default_max_body_bytes` of ``manager.limits``) are refused
    with 413 before they are parsed. The live-event streams send a heartbeat comment every
    ``heartbeat_interval`` seconds and read the store every ``events_poll_interval`` seconds
    (at once when this process's manager changes a task).
    """
    body_limit = max_body_bytes or default_max_body_bytes(manager.limits)
    live = LiveEvents(manager, heartbeat=heartbeat_interval, poll_interval=events_poll_interval)
    router = APIRouter(
        prefix=prefix,
        route_class=_MappedErrorsRoute,
        tags=["video tasks"],
        responses={400: {"model": ProblemAnswer}, 404: {"model": ProblemAnswer}},
    )
    User = Annotated[str, Depends(current_user)]
    VideoId = Annotated[str, Path(alias="videoId")]
    LastEventId = Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="the id of the last event seen, to resume"),
    ]

    def view(request: Request, task: Task) -> TaskBody:
        url = None
        if task.status is TaskStatus.COMPLETED:
            url = str(request.url_for(_CONTENT_ROUTE, videoId=task.id))
        return TaskBody.of(task, url)

    @router.post(
        "/tasks",
        status_code=201,
        responses={413: {"model": ProblemAnswer}, 415: {"model": ProblemAnswer}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": CreateTaskBody.model_json_schema(
                            ref_template="#/components/schemas/{model}"
                        )
                    }
                },
            }
        },
    )
    async def create_task(request: Request, user: User) -> TaskBody:
        """Validate and submit a task; on bad input (400, 413, 415) nothing is stored or sent."""
        _require_json(request)
        raw = await _read_body(request, body_limit)
        try:
            body = CreateTaskBody.model_validate_json(raw)
        except ValidationError as exc:
            raise _invalid(exc.errors()) from None
        if None not in (body.seconds, body.duration) and body.seconds != body.duration:
            raise InvalidRequestError(
                f"seconds ({body.seconds}) and duration ({body.duration}) disagree; send one",
                field="duration",
            )
        task = await manager.create(
            body.prompt,
            model=body.model,
            size=body.size,
            seconds=body.seconds if body.seconds is not None else body.duration,
            aspect_ratio=body.aspect_ratio,
            resolution=body.resolution,
            reference_image=_reference_image(body.reference_image),
            last_frame=_reference_image(body.last_frame),
            reference_images=[_image(image) for image in body.reference_images],
            negative_prompt=body.negative_prompt,
            seed=body.seed,
            audio=body.audio,
            provider_options=body.provider_options,
            user_id=user,
            provider=body.provider,
            media_type=body.media_type,
            metadata=body.metadata,
        )
        return view(request, task)

    @router.get("/tasks/{videoId}")
    async def get_task(request: Request, video_id: VideoId, user: User) -> TaskBody:
        """One of the caller's tasks, by our id or the provider's."""
        return view(request, await manager.get(video_id, user_id=user))

    @router.get("/tasks")
    async def list_tasks(
        request: Request,
        user: User,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
        cursor: str | None = None,
        status: TaskStatus | None = None,
        media_type: Annotated[MediaType | None, Query(alias="mediaType")] = None,
        created_after: Annotated[datetime | None, Query(alias="createdAfter")] = None,
        created_before: Annotated[datetime | None, Query(alias="createdBefore")] = None,
    ) -> TaskListBody:
        """The caller's tasks, newest first, a page at a time."""
        page = await manager.list(
            user_id=user,
            status=status,
            media_type=media_type,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
        items = [view(request, task) for task in page.items]
        return TaskListBody(items=items, next_cursor=page.next_cursor, has_more=page.has_more)

    @router.get(
        "/tasks/{videoId}/content",
        name=_CONTENT_ROUTE,
        response_class=Response,
        responses={
            200: {"content": {"video/mp4": {}}, "description": "the video, streamed"},
            206: {"description": "a byte range of the downloaded copy"},
            307: {"description": "a presigned URL of the archived video"},
            409: {"model": ProblemAnswer},
            502: {"model": ProblemAnswer},
        },
    )
    async def get_content(video_id: VideoId, user: User) -> Response:
        """A COMPLETED task's video; 409 before then.

        Redirected (307) to a presigned URL of the archived object when the archive can sign;
        else served from the archive or the saved copy (a file, with Range support), otherwise
        streamed from the provider.
        """
        return _TaskContent(
            partial(manager.open_content, video_id, user_id=user),
            partial(manager.archive_url, video_id, user_id=user, expires_in=_REDIRECT_LIFETIME),
        )

    @router.post("/tasks/{videoId}/cancel")
    async def cancel_task(request: Request, video_id: VideoId, user: User) -> TaskBody:
        """Cancel one of the caller's tasks; a task that already ended comes back unchanged."""
        return view(request, await manager.cancel(video_id, user_id=user))

    @router.get(
        "/tasks/{videoId}/events",
        response_class=Response,
        responses={**_EVENT_STREAM, 204: {"description": "the client has the final state"}},
    )
    async def task_events(
        request: Request, video_id: VideoId, user: User, last_event_id: LastEventId = None
    ) -> Response:
        """One of the caller's tasks, live: its state now, each change, and the end after the
        final state. Resumes after ``Last-Event-ID``; 404 for another user's task.
        """
        after = decode_event_id(last_event_id) if last_event_id else None
        task = await manager.get(video_id, user_id=user)
        return live.task_stream(task, after, partial(view, request))

    @router.get("/events", response_class=Response, responses=_EVENT_STREAM)
    async def user_events(
        request: Request, user: User, last_event_id: LastEventId = None
    ) -> Response:
        """All of the caller's tasks, live: every change since ``Last-Event-ID`` (or the last
        few seconds), then each change as it happens. It never ends by itself.
        """
        after = decode_event_id(last_event_id) if last_event_id else None
        return await live.user_stream(user, after, partial(view, request))

    @router.get("/stats")
    async def get_stats(user: User) -> StatsBody:
        """The caller's counts by status and provider, success rate and render times."""
        return StatsBody.of(await manager.stats(user_id=user))

    @router.post("/webhooks/{provider}")
    async def receive_webhook(provider: str, request: Request) -> WebhookAnswer:
        """A provider's signed event (Standard Webhooks); no user authentication, 400 if forged."""
        raw = await _read_body(request, WEBHOOK_MAX_BODY_BYTES)
        result = await manager.handle_webhook(provider, request.headers, raw)
        return WebhookAnswer(outcome=result.outcome, webhook_id=result.webhook_id)

    return router
