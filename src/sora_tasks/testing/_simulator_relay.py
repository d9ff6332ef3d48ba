"""The multipart relay shape: ``task_id``/``state`` answers, relay words, a ``video_url`` to follow.

Mirrors the third-party relays described in PROVIDERS.md: multipart only, progress as ``"36%"``,
errors as plain strings, timestamps in milliseconds, and a download URL that redirects.
"""

from __future__ import annotations

from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_multipart import parse_form
from ._simulator_state import SimulatedJob, SimulatorState

__all__ = ["FILES_PATH", "create", "error", "file", "redirect", "relay_object", "status"]

FILES_PATH = "/files"

_WORDS = {
    "queued": "pending",
    "in_progress": "processing",
    "completed": "success",
    "failed": "failure",
    "cancelled": "cancelled",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HTTPFault:
    """An error answer the way relays send them: a plain string."""
    return HTTPFault(Reply.json(status, {"error": message}, headers))


def relay_object(state: SimulatorState, job: SimulatedJob, request: Request) -> dict[str, object]:
    """The relay's view of ``job`` as of now.

    A pinned job answers with the pin's word and progress (none when the pin has none), its
    error as ``error_code``/``error_message`` fields, and no ``video_url`` when it is empty.
    """
    view = state.view(job)
    pin = view.pin
    done = view.phase == "completed" and not (pin is not None and pin.empty)
    answer: dict[str, object] = {
        "task_id": job.id,
        "state": pin.word if pin is not None and pin.word else _WORDS[view.phase],
        "progress": f"{view.progress}%",
        "model": job.model,
        "prompt": job.prompt,
        "created_at": int(job.created_wall * 1000),
        "updated_at": int(view.updated_at * 1000),
        "expires_at": None if view.expires_at is None else int(view.expires_at * 1000),
        "video_url": f"{request.origin()}{state.config.relay_path}/{job.id}/download"
        if done
        else None,
        "error": "moderation_blocked: the prompt was rejected by the content filter"
        if view.phase == "failed"
        else None,
    }
    if pin is not None:
        if pin.progress is None:
            del answer["progress"]
        if pin.phase == "failed" and (pin.error_code or pin.error_message):
            answer.update(error=None, error_code=pin.error_code, error_message=pin.error_message)
    return answer


def create(state: SimulatorState, request: Request) -> Reply:
    """``POST {relay_path}``: multipart only; field synonyms as relays accept them."""
    if request.content_type != "multipart/form-data":
        raise error(415, "Content-Type must be multipart/form-data")
    try:
        form = parse_form(request.body, request.headers["content-type"])
    except ValueError as exc:
        raise error(400, f"malformed multipart body: {exc}") from None
    fields = form.fields
    prompt = fields.get("prompt", "")
    if not prompt.strip():
        raise error(400, "prompt is required")
    seconds = fields.get("seconds", fields.get("duration", "4"))
    if not seconds.isdigit() or int(seconds) <= 0:
        raise error(400, f"seconds must be a positive whole number, got {seconds!r}")
    size = fields.get("size", fields.get("aspect_ratio", fields.get("orientation", "720x1280")))
    upload = form.files.get("input_reference")
    if upload is not None and upload.content_type not in _IMAGE_TYPES:
        raise error(
            400, f"input_reference must be a JPEG, PNG or WebP image, got {upload.content_type}"
        )
    reference_url = fields.get("input_reference")
    if reference_url is not None and not reference_url.startswith(("http://", "https://")):
        raise error(400, "input_reference must be an image file or an http(s) URL")
    recorded: dict[str, object] = dict(fields)
    recorded.update({name: part.filename or "" for name, part in form.files.items()})
    job = state.create_job(
        shape="relay",
        prompt=prompt,
        model=fields.get("model", "sora-2"),
        size=size,
        seconds=seconds,
        fields=recorded,
        reference=upload,
    )
    return Reply.json(200, relay_object(state, job, request))


def status(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET {relay_path}/{task_id}``; a pinned poll hint comes as ``openai-poll-after-ms``."""
    job = _job(state, task_id)
    pin = state.pins.get(job.id)
    hint = pin.poll_after if pin is not None else None
    headers = () if hint is None else (("openai-poll-after-ms", f"{hint * 1000:g}"),)
    return Reply.json(200, relay_object(state, job, request), headers)


def redirect(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET {relay_path}/{task_id}/download``: a 302 to the file, on ``files_host`` when set."""
    _finished(state, task_id)
    return Reply.redirect(f"{request.origin(state.config.files_host)}{FILES_PATH}/{task_id}.mp4")


def file(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /files/{task_id}.mp4``: the content, without credentials, like a CDN link."""
    _finished(state, task_id)
    content = state.config.content
    return Reply(200, [("content-type", "video/mp4")], content.chunks(), content.size)


def _job(state: SimulatorState, task_id: str) -> SimulatedJob:
    job = state.get(task_id, "relay")
    if job is None:
        raise error(404, f"task {task_id} not found")
    return job


def _finished(state: SimulatorState, task_id: str) -> None:
    view = state.view(_job(state, task_id))
    if view.phase != "completed" or (view.pin is not None and view.pin.empty):
        raise error(404, f"task {task_id} has no video (it is {_WORDS[view.phase]})")
    if view.expired:
        raise error(404, f"the video of task {task_id} has expired")
