"""The OpenAI Videos shape (``/v1/videos``): validate like the real API, answer per the contract."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping

from .._exceptions import ImageError
from .._validation import decode_image
from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_multipart import Upload, parse_form
from ._simulator_state import Pin, SimulatedJob, SimulatorState

__all__ = [
    "OPENAI_PATH",
    "bearer_token",
    "create",
    "delete",
    "download",
    "error",
    "list_videos",
    "retrieve",
    "video_object",
]

OPENAI_PATH = "/v1/videos"

_FIELDS = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
_MAX_PROMPT = 32_000


def error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> HTTPFault:
    """An error answer in OpenAI's envelope."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return HTTPFault(Reply.json(status, body, headers))


def video_object(
    state: SimulatorState, job: SimulatedJob, *, echoed_key: str | None = None
) -> dict[str, object]:
    """The Video object for ``job`` as of now (with an extra field, as real answers carry).

    ``echoed_key``, when given, is quoted in a failed job's error code and message. A pinned job
    answers with the pin's word, progress (none when the pin has none) and error.
    """
    view = state.view(job)
    pin = view.pin
    failure: dict[str, str | None] | None = None
    if pin is not None and pin.phase == "failed" and (pin.error_code or pin.error_message):
        failure = {"code": pin.error_code, "message": pin.error_message}
    elif view.phase == "failed":
        failure = {
            "code": "moderation_blocked",
            "message": "Your request was blocked by our moderation system.",
        }
        if echoed_key is not None:
            failure = {
                "code": f"moderation_blocked:{echoed_key}",
                "message": f"{failure['message']} (request made with key {echoed_key})",
            }
    video: dict[str, object] = {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": pin.word if pin is not None and pin.word else view.phase,
        "progress": view.progress,
        "created_at": int(job.created_wall),
        "completed_at": None if view.completed_at is None else int(view.completed_at),
        "expires_at": None if view.expires_at is None else int(view.expires_at),
        "prompt": job.prompt,
        "size": job.size,
        "seconds": job.seconds,
        "quality": "standard",
        "remixed_from_video_id": None,
        "error": failure,
    }
    if pin is not None and pin.progress is None:
        del video["progress"]
    return video


def create(state: SimulatorState, request: Request) -> Reply:
    """``POST /v1/videos`` as JSON, or as multipart with an ``input_reference`` file part."""
    reference: Upload | None = None
    fields: dict[str, object]
    if request.content_type == "application/json":
        fields = _json_object(request.body)
        if "input_reference" in fields:
            _check_reference_object(fields["input_reference"])
    elif request.content_type == "multipart/form-data":
        try:
            form = parse_form(request.body, request.headers["content-type"])
        except ValueError as exc:
            raise error(400, f"Could not parse multipart form: {exc}") from None
        fields = dict(form.fields)
        for name, upload in form.files.items():
            if name != "input_reference":
                raise error(
                    400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
            fields[name] = upload.filename or ""
            reference = upload
        if "input_reference" in form.fields:
            raise error(400, "input_reference must be a file upload in a multipart request.")
    else:
        raise error(400, "Content-Type must be application/json or multipart/form-data.")
    for name in fields:
        if name not in _FIELDS:
            raise error(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    prompt = _string(fields, "prompt", None)
    if not prompt.strip() or len(prompt) > _MAX_PROMPT:
        raise error(400, f"prompt must be 1 to {_MAX_PROMPT} characters.", param="prompt")
    model = _choice(fields, "model", "sora-2", state.config.models)
    seconds = _choice(fields, "seconds", "4", state.config.seconds)
    size = _choice(fields, "size", "720x1280", state.config.sizes)
    if reference is not None:
        _check_upload(reference, size)
    job = state.create_job(
        shape="openai",
        prompt=prompt,
        model=model,
        size=size,
        seconds=seconds,
        fields=fields,
        reference=reference,
    )
    return Reply.json(200, video_object(state, job), _poll_hint(state))


def retrieve(state: SimulatorState, request: Request, video_id: str) -> Reply:
    """``GET /v1/videos/{id}``."""
    job = _job(state, video_id)
    echoed = bearer_token(request) if state.config.echo_key_in_failures else None
    hint = _poll_hint(state, state.pins.get(job.id))
    return Reply.json(200, video_object(state, job, echoed_key=echoed), hint)


def delete(state: SimulatorState, request: Request, video_id: str) -> Reply:
    """``DELETE /v1/videos/{id}``: only a completed or failed video, as the contract says."""
    job = _job(state, video_id)
    if state.view(job).phase not in ("completed", "failed"):
        raise error(400, "Only completed or failed videos can be deleted.", code="invalid_state")
    state.delete(video_id)
    return Reply.json(200, {"id": video_id, "object": "video.deleted", "deleted": True})


def list_videos(state: SimulatorState, request: Request) -> Reply:
    """``GET /v1/videos?after=&limit=&order=``, newest first by default."""
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise error(400, "limit must be an integer.", param="limit") from None
    if not 0 <= limit <= 100:
        raise error(400, "limit must be between 0 and 100.", param="limit")
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise error(400, "order must be 'asc' or 'desc'.", param="order")
    ids = [job.id for job in list(state.jobs.values()) if state.get(job.id, "openai") is not None]
    if order == "desc":
        ids.reverse()
    after = request.query.get("after")
    if after is not None:
        if after not in ids:
            raise error(400, f"No video found with id '{after}'.", param="after")
        ids = ids[ids.index(after) + 1 :]
    data = [video_object(state, state.jobs[i]) for i in ids[:limit]]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ids) > limit,
    }
    return Reply.json(200, body)


def download(state: SimulatorState, request: Request, video_id: str) -> Reply:
    """``GET /v1/videos/{id}/content?variant=video``: the MP4 once completed and not yet expired."""
    variant = request.query.get("variant", "video")
    if variant not in ("video", "thumbnail", "spritesheet"):
        raise error(400, f"Invalid value for variant: '{variant}'.", param="variant")
    job = _job(state, video_id)
    view = state.view(job)
    if view.phase != "completed":
        raise error(
            404, f"Video '{video_id}' is {view.phase}; content is not ready.", code="not_ready"
        )
    if view.expired:
        raise error(404, f"The assets of video '{video_id}' have expired.", code="expired")
    if variant != "video":
        raise error(404, f"The simulator has no {variant} for video '{video_id}'.", param="variant")
    content = state.config.content
    if state.config.unique_content:
        tail = job.id.encode()
        chunks = itertools.chain(content.chunks(), (tail,))
        return Reply(200, [("content-type", "video/mp4")], chunks, content.size + len(tail))
    return Reply(200, [("content-type", "video/mp4")], content.chunks(), content.size)


def bearer_token(request: Request) -> str:
    """The credential of ``Authorization: Bearer <token>`` (or the raw header) as sent."""
    sent = request.headers.get("authorization", "")
    return sent.removeprefix("Bearer ").strip()


def _poll_hint(state: SimulatorState, pin: Pin | None = None) -> tuple[tuple[str, str], ...]:
    hint: float | None = state.config.poll_after_ms
    if pin is not None and pin.poll_after is not None:
        hint = pin.poll_after * 1000
    return () if hint is None else (("openai-poll-after-ms", f"{hint:g}"),)


def _job(state: SimulatorState, video_id: str) -> SimulatedJob:
    job = state.get(video_id, "openai")
    if job is None:
        raise error(
            404, f"Video with id '{video_id}' not found.", param="video_id", code="not_found"
        )
    return job


def _json_object(body: bytes) -> dict[str, object]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise error(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(payload, dict):
        raise error(400, "The JSON body must be an object.")
    return payload


def _string(fields: Mapping[str, object], name: str, default: str | None) -> str:
    value = fields.get(name, default)
    if value is None:
        raise error(
            400,
            f"Missing required parameter: '{name}'.",
            param=name,
            code="missing_required_parameter",
        )
    if not isinstance(value, str):
        raise error(
            400,
            f"Invalid type for '{name}': expected a string, "
            f"but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def _choice(
    fields: Mapping[str, object], name: str, default: str, allowed: frozenset[str] | None
) -> str:
    value = _string(fields, name, default)
    if allowed is not None and value not in allowed:
        choices = ", ".join(f"'{choice}'" for choice in sorted(allowed))
        raise error(
            400,
            f"Invalid value: '{value}'. Supported values are: {choices}.",
            param=name,
            code="invalid_value",
        )
    return value


def _check_reference_object(value: object) -> None:
    if (
        not isinstance(value, dict)
        or len(value) != 1
        or not isinstance(value.get("image_url", value.get("file_id")), str)
    ):
        raise error(
            400,
            "input_reference must be an object with exactly one of 'image_url' or 'file_id'.",
            param="input_reference",
        )


def _check_upload(upload: Upload, size: str) -> None:
    if not upload.filename:
        raise error(
            400, "input_reference must be uploaded with a filename.", param="input_reference"
        )
    if upload.content_type not in _IMAGE_TYPES:
        raise error(
            400,
            f"Invalid file type {upload.content_type!r} for input_reference; "
            "supported types are image/jpeg, image/png and image/webp.",
            param="input_reference",
        )
    try:
        image = decode_image(upload.data, max_bytes=len(upload.data))
    except ImageError as exc:
        raise error(
            400, f"input_reference is not a usable image: {exc}", param="input_reference"
        ) from None
    if isinstance(image, str) or f"{image.width}x{image.height}" != size:
        dimensions = "unknown" if isinstance(image, str) else f"{image.width}x{image.height}"
        raise error(
            400,
            f"Inpaint image must match the requested width and height: {dimensions} != {size}.",
            param="input_reference",
        )
