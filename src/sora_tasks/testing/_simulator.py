"""A provider simulator: an ASGI app speaking the OpenAI Videos, multipart relay, Replicate, fal
Runway and Veo shapes (the last four under ``/replicate/v1``, ``/fal``, ``/runway/v1`` and
``/veo/v1beta`` with ``/vertex/v1``).

It is what the integration tests, the benchmarks and users' own tests run against. Jobs advance
with a clock (no background tasks), prompts can be made to fail moderation, and faults can be
injected per route. Serve it with any ASGI server, or ``python -m sora_tasks.testing``.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial

import anyio

from . import _simulator_fal as fal_shape
from . import _simulator_openai as openai_shape
from . import _simulator_relay as relay_shape
from . import _simulator_replicate as replicate_shape
from . import _simulator_runway as runway_shape
from . import _simulator_veo as veo_shape
from ._simulator_asgi import (
    HTTPFault,
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    read_request,
    send_reply,
)
from ._simulator_config import (
    DEFAULT_MODELS,
    Content,
    CurveName,
    ProgressCurve,
    SimulatorConfig,
    compile_fail_prompts,
    resolve_curve,
)
from ._simulator_faults import Faults
from ._simulator_state import RequestRecord, SimulatorState

__all__ = ["Faults", "SimulatorApp", "create_simulator_app"]

Handler = Callable[..., Reply]

_PUBLIC_ROUTES = frozenset(
    {
        "relay_download",
        "files",
        "replicate_files",
        "fal_files",
        "fal_cdn_upload",
        "fal_cdn_files",
        "runway_files",
    }
)
_CREDENTIALS = ("authorization", "x-goog-api-key")


def create_simulator_app(
    *,
    render_seconds: float = 5.0,
    queue_seconds: float = 1.0,
    progress_curve: ProgressCurve | CurveName = "linear",
    fail_prompts: Iterable[str | re.Pattern[str]] = (),
    faults: Mapping[str, Faults] | None = None,
    api_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    content: bytes | None = None,
    content_size: int | None = None,
    poll_after_ms: int | None = 1000,
    asset_ttl_seconds: float = 3600.0,
    relay_path: str = "/relay/v1/videos",
    files_host: str | None = None,
    models: Iterable[str] | None = DEFAULT_MODELS,
    unique_content: bool = False,
    echo_key_in_failures: bool = False,
) -> SimulatorApp:
    """Build a simulator.

    A job is ``queued`` for ``queue_seconds``, then ``in_progress`` for ``render_seconds`` with its
    progress following ``progress_curve`` (a name or a function of the elapsed fraction), then
    ``completed`` — or ``failed`` with code ``moderation_blocked`` once it leaves the queue when
    its prompt matches one of ``fail_prompts`` (plain strings match as case-insensitive
    substrings). ``faults`` maps route names (or ``"*"``) to :class:`Faults`. With ``api_key``,
    API routes answer 401 unless ``Authorization: Bearer <key>`` is sent (relay routes also take
    the raw key; fal's routes, under ``/fal``, want ``Key <key>`` as fal does). Finished jobs
    serve ``content`` (default: the MP4 shipped with the package) or, with ``content_size``, a
    synthetic body of that many bytes generated chunk by chunk.
    ``files_host`` makes the relay's download redirect go to another host name (same port), to
    check that credentials are not forwarded across origins. With ``unique_content`` each job's
    body is that content followed by the job id (so a test knows every video's checksum and can
    tell them apart); with ``echo_key_in_failures`` a failed job's error quotes the key the status
    request sent, as a careless provider might (an ``echoed_keys`` fault does so for any route).
    """
    if content is not None and content_size is not None:
        raise ValueError("pass content or content_size, not both")
    if content is not None:
        body = Content(content, len(content))
    elif content_size is not None:
        body = Content.synthetic(content_size)
    else:
        body = Content.sample()
    config = SimulatorConfig(
        queue_seconds=queue_seconds,
        render_seconds=render_seconds,
        progress_curve=resolve_curve(progress_curve),
        fail_prompts=compile_fail_prompts(fail_prompts),
        api_key=api_key,
        models=None if models is None else frozenset(models),
        poll_after_ms=poll_after_ms,
        asset_ttl_seconds=asset_ttl_seconds,
        relay_path=relay_path,
        files_host=files_host,
        content=body,
        unique_content=unique_content,
        echo_key_in_failures=echo_key_in_failures,
        clock=clock,
    )
    return SimulatorApp(config, faults)


class SimulatorApp:
    """The simulator as a raw ASGI application.

    ``state`` is open for tests: ``state.creates``, ``state.hits[route]``, ``state.records()``,
    ``state.jobs`` and ``state.faults`` (see :class:`SimulatorState`).
    """

    def __init__(self, config: SimulatorConfig, faults: Mapping[str, Faults] | None = None) -> None:
        self.config = config
        self.state = SimulatorState.new(config, faults)
        self._routes = _route_table(config.relay_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the simulator speaks HTTP only, not {scope['type']!r}")
        try:
            request = await read_request(scope, receive, max_body=self.config.max_body_bytes)
        except HTTPFault as fault:
            await send_reply(send, fault.reply)
            return
        route, handler, job_id = self._resolve(request)
        self.state.arrived(route)
        tally = self.state.tally
        in_flight = job_id is not None

        def client_gone() -> None:
            nonlocal in_flight
            if in_flight:
                in_flight = False
                tally.leave(route, str(job_id))

        if job_id is not None:
            tally.enter(route, job_id)
        try:
            reply, cut_at, fault_name = await self._answer(
                route, handler, request, _Departure(receive, client_gone)
            )
            if fault_name is not None:
                tally.fault(route, job_id or _create_subject(route, request), fault_name)
            self._record(route, request, reply.status, fault_name)
            await send_reply(send, reply, cut_at=cut_at)
        finally:
            client_gone()

    def _record(self, route: str, request: Request, status: int, fault: str | None) -> None:
        self.state.record(
            RequestRecord(
                route=route,
                method=request.method,
                path=request.path,
                query=request.query,
                headers={k: v for k, v in request.headers.items() if k not in _CREDENTIALS},
                has_authorization=any(name in request.headers for name in _CREDENTIALS),
                status=status,
                fault=fault,
            )
        )

    async def _answer(
        self, route: str, handler: Handler, request: Request, departure: _Departure
    ) -> tuple[Reply, int | None, str | None]:
        plan = self.state.faults
        if route == "unknown":
            return _call(handler, self.state, request), None, None
        if route not in _PUBLIC_ROUTES and not self._authorized(route, request):
            return _unauthorized(route), None, None
        fault_name: str | None = None
        if (slow := plan.take(route, "slow_responses")) is not None:
            fault_name = "slow_responses"
            await departure.watch_for(slow.delay)
        if (limited := plan.take(route, "rate_limits")) is not None:
            return _rate_limited(route, limited.retry_after), None, "rate_limits"
        if (failing := plan.take(route, "server_errors")) is not None:
            return _server_error(route, failing.server_error_status), None, "server_errors"
        if plan.take(route, "auth_failures") is not None:
            return _unauthorized(route), None, "auth_failures"
        if (rejecting := plan.take(route, "rejections")) is not None:
            return _rejected(route, rejecting.rejection_status), None, "rejections"
        if plan.take(route, "echoed_keys") is not None:
            return _echoed_key(route, _sent_key(route, request)), None, "echoed_keys"
        reply = _call(handler, self.state, request)
        if 200 <= reply.status < 300:
            if plan.take(route, "dropped_responses") is not None:
                return reply, 0, "dropped_responses"
            if plan.take(route, "truncated_bodies") is not None:
                return reply, reply.length // 2, "truncated_bodies"
        return reply, None, fault_name

    def _authorized(self, route: str, request: Request) -> bool:
        key = self.config.api_key
        if key is None:
            return True
        if route.startswith("veo_"):
            given = request.headers.get("x-goog-api-key") or request.query.get("key", "")
            return hmac.compare_digest(given.encode(), key.encode())
        sent = request.headers.get("authorization", "")
        accepted = [f"Key {key}" if _is_fal(route) else f"Bearer {key}"]
        if route.startswith("relay_"):
            accepted.append(key)
        return any(hmac.compare_digest(sent.encode(), a.encode()) for a in accepted)

    def _resolve(self, request: Request) -> tuple[str, Handler, str | None]:
        """The route, its handler and the job (or task) id the path names, if any."""
        matched = False
        for pattern, methods in self._routes:
            found = pattern.fullmatch(request.path)
            if found is None:
                continue
            matched = True
            if request.method in methods:
                route, handler = methods[request.method]
                params = found.groupdict()
                job_id = params.get("video_id") or params.get("task_id") or params.get("request_id")
                return route, partial(handler, **params), job_id
        return "unknown", partial(_not_routed, status=405 if matched else 404), None


def _route_table(relay_path: str) -> list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]]:
    videos, relay, files = (
        re.escape(openai_shape.OPENAI_PATH),
        re.escape(relay_path),
        re.escape(relay_shape.FILES_PATH),
    )
    one = "/(?P<{}>[^/]+)"
    return [
        (
            re.compile(videos),
            {"POST": ("create", openai_shape.create), "GET": ("list", openai_shape.list_videos)},
        ),
        (
            re.compile(videos + one.format("video_id")),
            {"GET": ("retrieve", openai_shape.retrieve), "DELETE": ("delete", openai_shape.delete)},
        ),
        (
            re.compile(videos + one.format("video_id") + "/content"),
            {"GET": ("content", openai_shape.download)},
        ),
        (re.compile(relay), {"POST": ("relay_create", relay_shape.create)}),
        (re.compile(relay + one.format("task_id")), {"GET": ("relay_status", relay_shape.status)}),
        (
            re.compile(relay + one.format("task_id") + "/download"),
            {"GET": ("relay_download", relay_shape.redirect)},
        ),
        (re.compile(files + r"/(?P<task_id>[^/]+)\.mp4"), {"GET": ("files", relay_shape.file)}),
        *_replicate_routes(),
        *_veo_routes(),
        *_fal_routes(),
        *_runway_routes(),
    ]


def _replicate_routes() -> list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]]:
    api, files = re.escape(replicate_shape.REPLICATE_PATH), replicate_shape.REPLICATE_FILES_PATH
    one = r"/(?P<task_id>[^/]+)"
    shape = replicate_shape
    return [
        (
            re.compile(api + r"/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions"),
            {"POST": ("replicate_create", shape.create_for_model)},
        ),
        (
            re.compile(api + "/predictions"),
            {
                "POST": ("replicate_create", shape.create_for_version),
                "GET": ("replicate_list", shape.list_predictions),
            },
        ),
        (re.compile(api + "/predictions" + one), {"GET": ("replicate_get", shape.get)}),
        (
            re.compile(api + "/predictions" + one + "/cancel"),
            {"POST": ("replicate_cancel", shape.cancel)},
        ),
        (
            re.compile(api + "/webhooks/default/secret"),
            {"GET": ("replicate_secret", shape.webhook_secret)},
        ),
        (
            re.compile(re.escape(files) + one + r"/output\.mp4"),
            {"GET": ("replicate_files", shape.file)},
        ),
    ]


def _veo_routes() -> list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]]:
    api = re.escape(veo_shape.VEO_PATH)
    model = r"/models/(?P<model>[a-z0-9][a-z0-9.-]*)"
    vertex = (
        re.escape(veo_shape.VERTEX_PATH)
        + r"/projects/(?P<project>[a-z0-9-]+)/locations/(?P<location>[a-z0-9-]+)"
        + r"/publishers/google"
        + model
    )
    return [
        (
            re.compile(api + model + ":predictLongRunning"),
            {"POST": ("veo_create", veo_shape.create)},
        ),
        (
            re.compile(api + model + r"/operations/(?P<task_id>[^/]+)"),
            {"GET": ("veo_get", veo_shape.get)},
        ),
        (
            re.compile(api + r"/files/(?P<task_id>[^/:]+):download"),
            {"GET": ("veo_files", veo_shape.file)},
        ),
        (
            re.compile(vertex + ":predictLongRunning"),
            {"POST": ("vertex_create", veo_shape.vertex_create)},
        ),
        (
            re.compile(vertex + ":fetchPredictOperation"),
            {"POST": ("vertex_get", veo_shape.vertex_fetch)},
        ),
        (
            re.compile(re.escape(veo_shape.STORAGE_PATH) + r"/b/(?P<bucket>[^/]+)/o/(?P<name>.+)"),
            {"GET": ("vertex_storage", veo_shape.storage_object)},
        ),
    ]


def _runway_routes() -> list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]]:
    api, files = re.escape(runway_shape.RUNWAY_PATH), re.escape(runway_shape.RUNWAY_FILES_PATH)
    one = r"/(?P<task_id>[^/]+)"
    shape = runway_shape
    return [
        (
            re.compile(api + r"/(?P<endpoint>image_to_video|text_to_video)"),
            {"POST": ("runway_create", shape.create)},
        ),
        (
            re.compile(api + "/tasks" + one),
            {"GET": ("runway_get", shape.get), "DELETE": ("runway_delete", shape.delete)},
        ),
        (re.compile(files + one + r"/output\.mp4"), {"GET": ("runway_files", shape.file)}),
    ]


def _fal_routes() -> list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]]:
    fal = re.escape(fal_shape.FAL_PATH)
    job = fal + r"/(?P<app>(?:workflows/|comfy/)?[^/]+/[^/]+)/requests/(?P<request_id>[^/]+)"
    return [
        (
            re.compile(re.escape(fal_shape.FAL_FILES) + r"/(?P<request_id>[^/]+)\.mp4"),
            {"GET": ("fal_files", fal_shape.file)},
        ),
        (
            re.compile(re.escape(fal_shape.FAL_CDN) + "/files/upload"),
            {"POST": ("fal_cdn_upload", fal_shape.cdn_upload)},
        ),
        (
            re.compile(re.escape(fal_shape.FAL_CDN) + r"/files/(?P<file_id>[^/]+)"),
            {"GET": ("fal_cdn_files", fal_shape.cdn_file)},
        ),
        (
            re.compile(fal + "/storage/auth/token"),
            {"POST": ("fal_storage_token", fal_shape.storage_token)},
        ),
        (re.compile(job + "/status"), {"GET": ("fal_status", fal_shape.status)}),
        (re.compile(job + "/cancel"), {"PUT": ("fal_cancel", fal_shape.cancel)}),
        (re.compile(job), {"GET": ("fal_result", fal_shape.result)}),
        (re.compile(fal + r"/(?P<model>.+)"), {"POST": ("fal_submit", fal_shape.submit)}),
    ]


def _call(handler: Handler, state: SimulatorState, request: Request) -> Reply:
    try:
        return handler(state, request)
    except HTTPFault as fault:
        return fault.reply


def _not_routed(state: SimulatorState, request: Request, *, status: int) -> Reply:
    word = "Not found" if status == 404 else "Method not allowed"
    raise openai_shape.error(status, f"{word}: {request.method} {request.path}")


def _is_relay(route: str) -> bool:
    return route.startswith("relay_") or route == "files"


def _is_fal(route: str) -> bool:
    return route.startswith("fal_")


def _unauthorized(route: str) -> Reply:
    if route.startswith(("veo_", "vertex_")):
        return veo_shape.error(401, "API key not valid. Please pass a valid API key.").reply
    if route.startswith("replicate_"):
        detail = "You did not pass a valid authentication token"
        return replicate_shape.problem(401, "Unauthenticated", detail).reply
    if _is_fal(route):
        return fal_shape.error(401, "No user found for Key ID and Secret").reply
    if route.startswith("runway_"):
        return runway_shape.error(401, "Invalid API key").reply
    if _is_relay(route):
        return relay_shape.error(401, "invalid api key").reply
    return openai_shape.error(401, "Incorrect API key provided.", code="invalid_api_key").reply


def _rate_limited(route: str, retry_after: float) -> Reply:
    headers = (("retry-after", f"{retry_after:g}"),)
    if route.startswith("veo_"):
        return veo_shape.error(
            429, "Resource has been exhausted (e.g. check quota).", headers
        ).reply
    if route.startswith("replicate_"):
        detail = f"Request was throttled. Your rate limit resets in ~{math.ceil(retry_after)}s."
        return replicate_shape.problem(429, "Request was throttled.", detail, headers).reply
    if _is_fal(route):
        return fal_shape.error(429, "Too many requests", headers).reply
    if route.startswith("runway_"):
        return runway_shape.error(429, "You have exceeded your daily task limit.", headers).reply
    if _is_relay(route):
        return relay_shape.error(429, "rate limited, retry later", headers).reply
    return openai_shape.error(
        429, "Rate limit reached.", kind="requests", code="rate_limit_exceeded", headers=headers
    ).reply


def _server_error(route: str, status: int = 500) -> Reply:
    if route.startswith(("veo_", "vertex_")):
        return veo_shape.error(status, "An internal error has occurred.").reply
    if route.startswith("replicate_"):
        detail = "An unexpected error occurred; please retry."
        return replicate_shape.problem(status, "Internal server error", detail).reply
    if _is_fal(route):
        return fal_shape.error(status, "Internal server error").reply
    if route.startswith("runway_"):
        return runway_shape.error(status, "An unexpected error occurred.").reply
    if _is_relay(route):
        return relay_shape.error(status, "internal error").reply
    return openai_shape.error(
        status, "The server had an error while processing your request.", kind="server_error"
    ).reply


def _rejected(route: str, status: int) -> Reply:
    if route.startswith(("veo_", "vertex_")):
        return veo_shape.error(status, "Request contains an invalid argument.").reply
    if route.startswith("replicate_"):
        detail = "input: Additional property is not allowed"
        return replicate_shape.problem(status, "Input validation failed", detail).reply
    if _is_fal(route):
        return fal_shape.error(status, "The request was rejected as invalid").reply
    if route.startswith("runway_"):
        return runway_shape.error(status, "Validation of body failed").reply
    if _is_relay(route):
        return relay_shape.error(status, "invalid request").reply
    return openai_shape.error(
        status, "The request was rejected as invalid.", code="invalid_request"
    ).reply


def _echoed_key(route: str, key: str) -> Reply:
    if route.startswith(("veo_", "vertex_")):
        return veo_shape.error(400, f"API key {key} not valid for this request.").reply
    if route.startswith("replicate_"):
        return replicate_shape.problem(400, f"Bad token {key}", f"Token {key} was refused").reply
    if _is_fal(route):
        return fal_shape.error(400, f"Bad request made with key {key}").reply
    if route.startswith("runway_"):
        return runway_shape.error(400, f"The API key {key} is not valid for this request").reply
    if _is_relay(route):
        return relay_shape.error(400, f"bad request for key {key}").reply
    return openai_shape.error(
        400, f"Request with key {key} was rejected.", kind=f"invalid_request:{key}", code=key
    ).reply


def _sent_key(route: str, request: Request) -> str:
    if route.startswith("veo_"):
        return request.headers.get("x-goog-api-key") or request.query.get("key", "")
    return openai_shape.bearer_token(request)


def _create_subject(route: str, request: Request) -> str:
    """A JSON create's prompt (what the tally files its faults under); ``""`` otherwise."""
    creates = ("create", "relay_create", "replicate_create", "fal_submit", "runway_create")
    if route not in (*creates, "veo_create", "vertex_create"):
        return ""
    if request.content_type != "application/json":
        return ""
    try:
        body = json.loads(request.body)
        if route in ("veo_create", "vertex_create"):
            body = (body.get("instances") or [{}])[0]
        fields = body.get("input") or {} if route == "replicate_create" else body
        prompt = fields.get("promptText" if route == "runway_create" else "prompt")
    except (ValueError, AttributeError):
        return ""
    return prompt if isinstance(prompt, str) else ""


class _Departure:
    """Tells ``gone`` when the client disconnects during a slow answer's wait.

    The work still happens after the wait (a slow create whose client gave up still creates its
    job), but the request no longer counts as in flight once nobody waits for its answer.
    """

    def __init__(self, receive: Receive, gone: Callable[[], None]) -> None:
        self._receive = receive
        self._gone = gone

    async def watch_for(self, delay: float) -> None:
        """Wait ``delay`` seconds, reporting a disconnect as soon as it happens."""
        with anyio.move_on_after(delay):
            while (await self._receive())["type"] != "http.disconnect":
                pass
            self._gone()
            await anyio.sleep_forever()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
