"""fal's queue shape (``queue.fal.run``), served under ``/fal``: written from fal's queue docs.

``POST /fal/{model id}`` queues a request and answers its ``request_id`` with the
``status_url``, ``response_url`` and ``cancel_url`` of its app (the model id without its
sub-path). ``GET …/status?logs=1`` answers ``IN_QUEUE`` with ``queue_position``,
``IN_PROGRESS`` with logs (the simulated model prints its progress as ``"… 45%"``) and
``COMPLETED`` — with ``error`` and ``error_type`` when the run failed, as fal does. ``GET
…/requests/{id}`` is the result (``{"video": {"url": …}}``, the file served under
``/fal/files``); ``PUT …/cancel`` answers 202 ``CANCELLATION_REQUESTED`` or 400
``ALREADY_COMPLETED``. Errors are ``{"detail": …}``, validation errors a list of
``{"loc", "msg", "type"}``. Storage: ``POST /fal/storage/auth/token`` issues an upload token,
``POST /fal/cdn/files/upload`` (with it) stores a file and answers its ``access_url``, served
publicly under ``/fal/cdn/files``. For the models in the adapter's table, inputs are checked against
their documented values. What fal answers for a cancelled request is not documented; the
simulator answers ``CANCELED`` (UNCERTAIN).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from datetime import UTC, datetime

from ..providers._fal_models import FAL_MODELS, FalModel
from ..providers.fal import app_of
from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_multipart import Upload
from ._simulator_state import JobView, Pin, SimulatedJob, SimulatorState

__all__ = [
    "FAL_CDN",
    "FAL_PATH",
    "FAL_WORDS",
    "cancel",
    "cdn_file",
    "cdn_upload",
    "error",
    "file",
    "result",
    "status",
    "storage_token",
    "submit",
]

FAL_PATH = "/fal"
FAL_FILES = FAL_PATH + "/files"
FAL_CDN = FAL_PATH + "/cdn"

FAL_WORDS = {
    "queued": "IN_QUEUE",
    "in_progress": "IN_PROGRESS",
    "completed": "COMPLETED",
    "failed": "COMPLETED",
    "cancelled": "CANCELED",
}
"""The word the simulator answers for each phase (a failed run is COMPLETED with an error)."""

_MAX_PROMPT = 20_000
_IMAGE_PREFIXES = ("http://", "https://", "data:image/")
_MODERATION = "content_policy_violation"


def error(status: int, detail: object, headers: tuple[tuple[str, str], ...] = ()) -> HTTPFault:
    """An error answer in fal's shape: ``{"detail": …}``."""
    return HTTPFault(Reply.json(status, {"detail": detail}, headers))


def submit(state: SimulatorState, request: Request, model: str) -> Reply:
    """``POST /fal/{model id}``: a JSON input, checked where the model is a known one."""
    try:
        app = app_of(model)
    except ValueError:
        raise error(404, f"Application '{model}' not found") from None
    if request.content_type != "application/json":
        raise error(422, [_invalid(("body",), "Input should be a valid JSON object")])
    try:
        body = json.loads(request.body)
    except ValueError:
        raise error(422, [_invalid(("body",), "Invalid JSON")]) from None
    if not isinstance(body, dict):
        raise error(422, [_invalid(("body",), "Input should be a valid dictionary")])
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > _MAX_PROMPT:
        raise error(422, [_invalid(("body", "prompt"), "Field required", "missing")])
    known = FAL_MODELS.get(model)
    if known is not None:
        _check(known, body)
    for name, value in body.items():
        if name.endswith(("image_url", "frame_url")) and not _image_ref(value):
            raise error(422, [_invalid(("body", name), "Input should be a valid URL")])
    job = state.create_job(
        shape="fal",
        prompt=prompt,
        model=model,
        size=str(body.get("resolution", "")),
        seconds=str(body.get("duration", "")),
        fields=body,
        reference=None,
    )
    answer = {
        "status": "IN_QUEUE",
        "request_id": job.id,
        "gateway_request_id": job.id,
        "queue_position": 0,
        **_urls(request, app, job.id),
    }
    return Reply.json(200, answer)


def status(state: SimulatorState, request: Request, app: str, request_id: str) -> Reply:
    """``GET …/requests/{id}/status[?logs=1]``."""
    job = _job(state, app, request_id)
    view = state.view(job)
    pin = view.pin
    word = pin.word if pin is not None and pin.word else FAL_WORDS[view.phase]
    answer: dict[str, object] = {
        "status": word,
        "request_id": job.id,
        **_urls(request, app, job.id),
    }
    if view.phase == "queued":
        position = pin.queue_position if pin is not None else None
        answer["queue_position"] = position if position is not None else 0
    if view.phase != "queued":
        wanted = request.query.get("logs") in ("1", "true", "True")
        answer["logs"] = _logs(view) if wanted else None
    if view.phase in ("completed", "failed"):
        answer["metrics"] = {"inference_time": state.config.render_seconds}
    if view.phase == "failed":
        code, message = _failure(view)
        answer["error"] = message
        answer["error_type"] = code
    return Reply.json(200, answer)


def result(state: SimulatorState, request: Request, app: str, request_id: str) -> Reply:
    """``GET …/requests/{id}``: the model's output once COMPLETED."""
    job = _job(state, app, request_id)
    view = state.view(job)
    if view.phase in ("queued", "in_progress"):
        raise error(400, "Request is still in progress")
    if view.phase == "cancelled":
        raise error(400, "Request was cancelled")
    if view.phase == "failed":
        code, message = _failure(view)
        raise error(422, message, (("x-fal-error-type", code),))
    if view.expired:
        raise error(404, "Request not found")
    if view.pin is not None and view.pin.empty:
        return Reply.json(200, {"video": None, "seed": 0})
    url = f"{request.origin(state.config.files_host)}{FAL_FILES}/{job.id}.mp4"
    video = {
        "url": url,
        "content_type": "video/mp4",
        "file_name": "output.mp4",
        "file_size": _content_size(state, job),
    }
    return Reply.json(200, {"video": video, "seed": 42})


def cancel(state: SimulatorState, request: Request, app: str, request_id: str) -> Reply:
    """``PUT …/requests/{id}/cancel``: queued or running requests are cancelled."""
    job = _job(state, app, request_id)
    phase = state.view(job).phase
    if phase in ("completed", "failed", "cancelled"):
        return Reply.json(400, {"status": "ALREADY_COMPLETED"})
    state.pin(job.id, Pin("cancelled"))
    return Reply.json(202, {"status": "CANCELLATION_REQUESTED"})


def file(state: SimulatorState, request: Request, request_id: str) -> Reply:
    """``GET /fal/files/{id}.mp4``: the video, public like fal's CDN."""
    job = state.get(request_id, "fal")
    if job is None:
        raise error(404, "File not found")
    view = state.view(job)
    if view.phase != "completed" or view.expired or (view.pin is not None and view.pin.empty):
        raise error(404, "File not found")
    content = state.config.content
    if state.config.unique_content:
        tail = job.id.encode()
        chunks = itertools.chain(content.chunks(), (tail,))
        return Reply(200, [("content-type", "video/mp4")], chunks, content.size + len(tail))
    return Reply(200, [("content-type", "video/mp4")], content.chunks(), content.size)


def storage_token(state: SimulatorState, request: Request) -> Reply:
    """``POST /fal/storage/auth/token?storage_type=fal-cdn-v3``: a token to upload with."""
    token = "sim-upload-" + secrets.token_hex(16)
    state.upload_tokens.add(token)
    expires = datetime.fromtimestamp(time.time() + 3600, tz=UTC).isoformat()
    answer = {
        "token": token,
        "token_type": "Bearer",
        "base_url": f"{request.origin()}{FAL_CDN}",
        "expires_at": expires,
    }
    return Reply.json(200, answer)


def cdn_upload(state: SimulatorState, request: Request) -> Reply:
    """``POST /fal/cdn/files/upload``: the body stored under a new URL."""
    sent = request.headers.get("authorization", "")
    if sent.removeprefix("Bearer ") not in state.upload_tokens:
        raise error(401, "Invalid upload token")
    if not request.body:
        raise error(400, "Empty upload")
    name = request.headers.get("x-fal-file-name", "upload.bin")
    file_id = secrets.token_hex(8) + "-" + name.replace("/", "_")
    state.uploads[file_id] = Upload(name, request.content_type, request.body)
    return Reply.json(200, {"access_url": f"{request.origin()}{FAL_CDN}/files/{file_id}"})


def cdn_file(state: SimulatorState, request: Request, file_id: str) -> Reply:
    """``GET /fal/cdn/files/{id}``: an uploaded file, public."""
    upload = state.uploads.get(file_id)
    if upload is None:
        raise error(404, "File not found")
    content_type = upload.content_type or "application/octet-stream"
    return Reply(200, [("content-type", content_type)], iter((upload.data,)), len(upload.data))


def _content_size(state: SimulatorState, job: SimulatedJob) -> int:
    extra = len(job.id) if state.config.unique_content else 0
    return state.config.content.size + extra


def _urls(request: Request, app: str, request_id: str) -> dict[str, str]:
    base = f"{request.origin()}{FAL_PATH}/{app}/requests/{request_id}"
    return {"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"}


def _job(state: SimulatorState, app: str, request_id: str) -> SimulatedJob:
    job = state.get(request_id, "fal")
    if job is None or app_of(job.model) != app:
        raise error(404, f"Request '{request_id}' not found")
    return job


def _logs(view: JobView) -> list[dict[str, str]]:
    stamp = datetime.fromtimestamp(view.updated_at, tz=UTC).isoformat()
    if view.pin is not None:
        messages = list(view.pin.logs)
        if view.pin.progress is not None:
            messages.append(f"Generating video: {view.pin.progress}%")
    else:
        messages = [f"Generating video: {view.progress}%"]
    return [
        {"message": message, "level": "INFO", "source": "user", "timestamp": stamp}
        for message in messages
    ]


def _failure(view: JobView) -> tuple[str, str]:
    pin = view.pin
    if pin is not None and (pin.error_code or pin.error_message):
        return pin.error_code or "internal_error", pin.error_message or "The request failed"
    return _MODERATION, "The content could not be processed because it violated content policy."


def _check(model: FalModel, body: dict[str, object]) -> None:
    allowed = {
        "duration": {model.duration.format(seconds) for seconds in model.seconds},
        "aspect_ratio": model.aspect_ratios,
        "resolution": None
        if model.resolutions is None
        else {r.upper() if model.resolution_upper else r for r in model.resolutions},
    }
    for name, values in allowed.items():
        value = body.get(name)
        if value is not None and values is not None and value not in values:
            choices = ", ".join(f"'{choice}'" for choice in sorted(values))
            raise error(
                422,
                [_invalid(("body", name), f"Input should be {choices}", "enum")],
            )
    if model.image_required and model.image is not None and model.image not in body:
        raise error(422, [_invalid(("body", model.image), "Field required", "missing")])


def _invalid(loc: tuple[str, ...], message: str, kind: str = "value_error") -> dict[str, object]:
    return {"loc": list(loc), "msg": message, "type": kind}


def _image_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_IMAGE_PREFIXES)
