"""The Runway shape: ``image_to_video`` and ``text_to_video`` creates that answer only an id, the
task endpoint with its upper-case states and fractional progress, ``DELETE`` to cancel or
delete, and signed output URLs that expire.

Written from Runway's API reference as the official SDK carries it (``runwayml`` 5.24:
``resources/tasks.py``, ``types/task_retrieve_response.py``, the create params) and its
guidance that a task is not updated more often than every five seconds: every status request
sooner than that after the previous one for the same task is counted in
``state.tally.fast_polls`` (Runway does not refuse them; a well-behaved client makes none).
It lives under ``/runway/v1``; output files live under ``/runway/files`` without credentials
(on the ``files_host`` name when one is set), each URL valid for ``asset_ttl_seconds`` from the
read that signed it, so a client holding an old URL must read the task again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_state import Pin, SimulatedJob, SimulatorState

__all__ = [
    "RUNWAY_FILES_PATH",
    "RUNWAY_MIN_POLL_SECONDS",
    "RUNWAY_PATH",
    "RUNWAY_VERSION",
    "create",
    "delete",
    "error",
    "file",
    "get",
    "task_object",
]

RUNWAY_PATH = "/runway/v1"
RUNWAY_FILES_PATH = "/runway/files"
RUNWAY_VERSION = "2024-11-06"
"""The only ``X-Runway-Version`` the simulator speaks."""
RUNWAY_MIN_POLL_SECONDS = 5.0

_WORDS = {
    "queued": "PENDING",
    "in_progress": "RUNNING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
}
_FIELDS = frozenset(
    {
        "model",
        "promptText",
        "promptImage",
        "ratio",
        "duration",
        "seed",
        "audio",
        "negativePrompt",
        "contentModeration",
        "outputFormat",
    }
)
_RATIO = re.compile(r"^[1-9][0-9]{2,3}:[1-9][0-9]{2,3}$")
_MAX_PROMPT = 1000
_MAX_DATA_URI = 5_000_000
_SAFETY = "SAFETY.INPUT.TEXT"
_SAFETY_MESSAGE = "The prompt did not pass our content moderation. Please revise it."


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HTTPFault:
    """An error answer as Runway sends them: ``{"error": message}``."""
    return HTTPFault(Reply.json(status, {"error": message}, headers))


def task_object(state: SimulatorState, job: SimulatedJob, request: Request) -> dict[str, object]:
    """The task as of now, its output URL signed for ``asset_ttl_seconds`` from now."""
    view = state.view(job)
    pin = view.pin
    word = pin.word if pin is not None and pin.word else _WORDS[view.phase]
    body: dict[str, object] = {"id": job.id, "status": word, "createdAt": _iso(job.created_wall)}
    if view.phase == "in_progress" and not (pin is not None and pin.progress is None):
        body["progress"] = round(view.progress / 100, 4)
    if view.phase == "completed":
        body["output"] = [] if pin is not None and pin.empty else [_signed(state, job, request)]
    if view.phase == "failed":
        code, message = _failure(job, pin)
        body["failure"] = message
        if code is not None:
            body["failureCode"] = code
    if view.phase in ("completed", "failed", "cancelled"):
        body["cost"] = {"credits": 0 if view.phase != "completed" else 5 * _seconds(job)}
    else:
        body["estimatedCost"] = {"credits": 5 * _seconds(job)}
    return body


def create(state: SimulatorState, request: Request, endpoint: str) -> Reply:
    """``POST /image_to_video`` or ``/text_to_video``: checks the body, answers ``{"id"}``."""
    _check_version(request)
    body = _body(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "Required")
    prompt = body.get("promptText")
    if endpoint == "text_to_video" and not isinstance(prompt, str):
        raise _invalid("promptText", "Required")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise _invalid("promptText", "Must be a non-empty string")
    if isinstance(prompt, str) and len(prompt.encode("utf-16-le")) // 2 > _MAX_PROMPT:
        raise _invalid("promptText", f"Must be at most {_MAX_PROMPT} characters")
    images = body.get("promptImage")
    if endpoint == "image_to_video":
        if images is None:
            raise _invalid("promptImage", "Required")
        _check_images(images)
    elif images is not None:
        raise _invalid("promptImage", "Unrecognized key; use image_to_video for a first frame")
    ratio = body.get("ratio")
    if not isinstance(ratio, str) or not _RATIO.match(ratio):
        raise _invalid("ratio", "Must be one of the model's ratios, like 1280:720")
    duration = body.get("duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or not 2 <= duration <= 10
    ):
        raise _invalid("duration", "Must be an integer from 2 to 10")
    job = state.create_job(
        shape="runway",
        prompt=prompt if isinstance(prompt, str) else "",
        model=model,
        size=ratio.replace(":", "x"),
        seconds=str(duration or ""),
        fields={"endpoint": endpoint, "body": dict(body)},
        reference=None,
    )
    return Reply.json(200, {"id": job.id})


def get(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /tasks/{id}``, counting a poll sooner than five seconds after the last one."""
    _check_version(request)
    job = _job(state, task_id)
    state.tally.polled(job.id, state.config.clock(), RUNWAY_MIN_POLL_SECONDS)
    return Reply.json(200, task_object(state, job, request))


def delete(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``DELETE /tasks/{id}``: a pending or running task is cancelled, a finished one deleted
    (it cannot be read again)."""
    _check_version(request)
    job = _job(state, task_id)
    view = state.view(job)
    if view.phase in ("queued", "in_progress"):
        state.pin(job.id, Pin("cancelled", progress=view.progress))
    else:
        state.delete(job.id)
    return Reply(204, [], (), 0)


def file(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /runway/files/{id}/output.mp4?exp=..&sig=..``: the video while the URL is valid."""
    job = state.get(task_id, "runway")
    if job is None or state.view(job).phase != "completed":
        raise _denied(404, "NoSuchKey")
    try:
        expires = float(request.query.get("exp", ""))
    except ValueError:
        raise _denied(403, "AccessDenied") from None
    if request.query.get("sig") != _signature(job.id, expires):
        raise _denied(403, "AccessDenied")
    if state.view(job).updated_at >= expires:
        raise _denied(403, "AccessDenied")  # what a signed URL past its expiry answers
    content = state.config.content
    if state.config.unique_content:
        tail = job.id.encode()
        chunks = itertools.chain(content.chunks(), (tail,))
        return Reply(200, [("content-type", "video/mp4")], chunks, content.size + len(tail))
    return Reply(200, [("content-type", "video/mp4")], content.chunks(), content.size)


def _signed(state: SimulatorState, job: SimulatedJob, request: Request) -> str:
    view = state.view(job)
    expired = view.pin is not None and view.pin.expired
    expires = view.updated_at + (-1.0 if expired else state.config.asset_ttl_seconds)
    files = request.origin(state.config.files_host)
    return (
        f"{files}{RUNWAY_FILES_PATH}/{job.id}/output.mp4"
        f"?exp={expires:.3f}&sig={_signature(job.id, expires)}"
    )


def _signature(job_id: str, expires: float) -> str:
    return hashlib.sha256(f"{job_id}:{expires:.3f}".encode()).hexdigest()[:32]


def _failure(job: SimulatedJob, pin: Pin | None) -> tuple[str | None, str]:
    if pin is not None and (pin.error_code or pin.error_message):
        return pin.error_code, pin.error_message or "The task failed."
    if job.blocked:
        return _SAFETY, _SAFETY_MESSAGE
    return "INTERNAL", "An unexpected error occurred."


def _check_images(images: object) -> None:
    if isinstance(images, str):
        _check_uri("promptImage", images)
        return
    if not isinstance(images, list) or not images:
        raise _invalid("promptImage", "Must be a URI or a list of {uri, position}")
    positions = []
    for index, item in enumerate(images):
        where = f"promptImage.{index}"
        if not isinstance(item, dict) or item.get("position") not in ("first", "last"):
            raise _invalid(where, "Must be {uri, position: first|last}")
        _check_uri(f"{where}.uri", item.get("uri"))
        positions.append(item["position"])
    if len(set(positions)) != len(positions) or "first" not in positions:
        raise _invalid("promptImage", "Needs one first frame and at most one last frame")


def _check_uri(where: str, uri: object) -> None:
    if not isinstance(uri, str):
        raise _invalid(where, "Required")
    if uri.startswith("data:"):
        header, comma, data = uri.partition(",")
        if not comma or not header.endswith(";base64") or len(uri) > _MAX_DATA_URI:
            raise _invalid(where, "Must be a base64 data URI of at most 5MB")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(where, "Invalid base64") from None
    elif not uri.startswith("https://"):
        raise _invalid(where, "Must be an HTTPS URL or a data URI")


def _check_version(request: Request) -> None:
    version = request.headers.get("x-runway-version")
    if version is None:
        raise error(400, "You must provide an X-Runway-Version header.")
    if version != RUNWAY_VERSION:
        raise error(400, f"Unsupported X-Runway-Version: {version}")


def _body(request: Request) -> Mapping[str, object]:
    if request.content_type != "application/json":
        raise error(415, "Content-Type must be application/json")
    try:
        body = json.loads(request.body)
    except ValueError:
        raise error(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise error(400, "The body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _invalid(unknown[0], "Unrecognized key")
    return body


def _invalid(field: str, message: str) -> HTTPFault:
    payload = {
        "error": f"Validation of body failed: {field}: {message}",
        "issues": [{"path": field.split("."), "message": message}],
    }
    return HTTPFault(Reply.json(400, payload))


def _denied(status: int, code: str) -> HTTPFault:
    body = f"<Error><Code>{code}</Code></Error>".encode()
    return HTTPFault(Reply(status, [("content-type", "application/xml")], (body,), len(body)))


def _job(state: SimulatorState, task_id: str) -> SimulatedJob:
    job = state.get(task_id, "runway")
    if job is None:
        raise error(404, "Task not found")
    return job


def _seconds(job: SimulatedJob) -> int:
    return int(job.seconds) if job.seconds.isdigit() else 5


def _iso(moment: float) -> str:
    if not math.isfinite(moment):
        moment = 0.0
    return (
        datetime.fromtimestamp(moment, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
