"""The Replicate shape: predictions on models and versions, logs with tqdm progress, output files
served for an hour, the default webhook secret, errors as problem details.

Written from Replicate's HTTP API reference (https://replicate.com/docs/reference/http), the
prediction lifecycle and data-retention pages, and the deadlines changelog
(https://replicate.com/changelog/2025-10-16-prediction-deadlines). It lives under
``/replicate/v1`` (point ``ReplicateProvider(base_url=...)`` there); output files live under
``/replicate/files``, outside the API and without credentials, like ``replicate.delivery`` (on
the ``files_host`` name when one is set, so that they are on another origin).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ._simulator_asgi import HTTPFault, Reply, Request
from ._simulator_state import Pin, SimulatedJob, SimulatorState

__all__ = [
    "REPLICATE_FILES_PATH",
    "REPLICATE_PATH",
    "REPLICATE_WEBHOOK_SECRET",
    "cancel",
    "create_for_model",
    "create_for_version",
    "file",
    "get",
    "list_predictions",
    "prediction_object",
    "problem",
    "webhook_secret",
]

REPLICATE_PATH = "/replicate/v1"
REPLICATE_FILES_PATH = "/replicate/files"
REPLICATE_WEBHOOK_SECRET = "whsec_c2ltdWxhdGVkLXJlcGxpY2F0ZS1zaWduaW5nLWtleQ=="  # noqa: S105
"""The signing secret ``GET /webhooks/default/secret`` answers (a fixed test value)."""

_WORDS = {
    "queued": "starting",
    "in_progress": "processing",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}
_BODY_FIELDS = frozenset(
    {"input", "version", "webhook", "webhook_completed", "webhook_events_filter", "stream"}
)
_EVENTS = frozenset({"start", "output", "logs", "completed"})
_VERSION = re.compile(r"^(?:([\w.-]+/[\w.-]+):)?([0-9a-f]{64})$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PAGE = 100
_FLAGGED = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)


def problem(
    status: int,
    title: str,
    detail: str,
    headers: tuple[tuple[str, str], ...] = (),
    **extra: object,
) -> HTTPFault:
    """An error answer as Replicate sends them: RFC 9457 problem details."""
    body = json.dumps({"title": title, "detail": detail, "status": status, **extra}).encode()
    reply_headers = [("content-type", "application/problem+json"), *headers]
    return HTTPFault(Reply(status, reply_headers, (body,), len(body)))


def prediction_object(
    state: SimulatorState, job: SimulatedJob, request: Request
) -> dict[str, object]:
    """The prediction as of now (``data_removed`` once its output is past retention)."""
    view = state.view(job)
    pin = view.pin
    body: Mapping[str, object] = job.fields["body"]  # type: ignore[assignment]
    word = pin.word if pin is not None and pin.word else _WORDS[view.phase]
    phase = view.phase
    now = view.updated_at
    deadline = _deadline(job)
    finished_at = view.completed_at
    late = deadline is not None and (finished_at is None or finished_at > deadline)
    if pin is None and deadline is not None and late and now >= deadline:
        queued = deadline - job.created_wall < state.config.queue_seconds
        phase, word, finished_at = "cancelled", "aborted" if queued else "canceled", deadline
    removed = view.expired
    api = f"{request.origin()}{REPLICATE_PATH}/predictions/{job.id}"
    output = None
    if phase == "completed" and not removed and not (pin is not None and pin.empty):
        files = request.origin(state.config.files_host)
        output = f"{files}{REPLICATE_FILES_PATH}/{job.id}/output.mp4"
    started = job.created_wall + state.config.queue_seconds if phase != "queued" else None
    return {
        "id": job.id,
        "model": _model_name(job),
        "version": body.get("version", "hidden"),
        "input": {} if removed else body.get("input", {}),
        "logs": "" if removed else _logs(view.phase, view.progress, pin),
        "output": output,
        "data_removed": removed,
        "error": _error(job, phase, pin),
        "status": word,
        "source": "api",
        "created_at": _iso(job.created_wall),
        "started_at": None if started is None else _iso(min(started, now)),
        "completed_at": None if finished_at is None else _iso(finished_at),
        "deadline": None if deadline is None else _iso(deadline),
        "urls": {"get": api, "cancel": f"{api}/cancel", "web": f"https://replicate.com/p/{job.id}"},
        "metrics": _metrics(state, job, finished_at),
    }


def create_for_model(state: SimulatorState, request: Request, owner: str, name: str) -> Reply:
    """``POST /models/{owner}/{name}/predictions``: an official model, no version."""
    body = _body(request)
    if "version" in body:
        raise _invalid("version", "Additional property version is not allowed")
    return _create(state, request, body, f"{owner}/{name}")


def create_for_version(state: SimulatorState, request: Request) -> Reply:
    """``POST /predictions`` with ``version``: a version id, ``owner/name:id`` or ``owner/name``."""
    body = _body(request)
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise _invalid("version", "version is required")
    found = _VERSION.match(version)
    if found is None and not re.fullmatch(r"[\w.-]+/[\w.-]+", version):
        raise _invalid("version", f"Invalid version: {version!r}")
    return _create(state, request, body, version)


def get(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /predictions/{id}``."""
    return Reply.json(200, prediction_object(state, _job(state, task_id), request))


def cancel(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``POST /predictions/{id}/cancel``: a running or starting prediction becomes canceled;
    a finished one is answered as it is."""
    job = _job(state, task_id)
    view = state.view(job)
    if view.phase in ("queued", "in_progress"):
        state.pin(job.id, Pin("cancelled", progress=view.progress))
    return Reply.json(200, prediction_object(state, job, request))


def list_predictions(state: SimulatorState, request: Request) -> Reply:
    """``GET /predictions``: newest first, 100 a page, ``created_after``/``created_before``."""
    after = _time_param(request, "created_after")
    before = _time_param(request, "created_before")
    jobs = [
        job
        for job in reversed(list(state.jobs.values()))
        if state.get(job.id, "replicate") is not None
        and (after is None or job.created_wall >= after)
        and (before is None or job.created_wall < before)
    ]
    try:
        start = int(request.query.get("cursor", "0"))
    except ValueError:
        raise problem(400, "Invalid cursor", "cursor must be a page offset") from None
    page = jobs[start : start + _PAGE]
    following = None
    if start + _PAGE < len(jobs):
        query = "&".join(
            f"{k}={v}" for k, v in {**request.query, "cursor": str(start + _PAGE)}.items()
        )
        following = f"{request.origin()}{REPLICATE_PATH}/predictions?{query}"
    results = [prediction_object(state, job, request) for job in page]
    for item in results:
        item.pop("logs", None)
    return Reply.json(200, {"next": following, "previous": None, "results": results})


def webhook_secret(state: SimulatorState, request: Request) -> Reply:
    """``GET /webhooks/default/secret``."""
    return Reply.json(200, {"key": REPLICATE_WEBHOOK_SECRET})


def file(state: SimulatorState, request: Request, task_id: str) -> Reply:
    """``GET /replicate/files/{id}/output.mp4``: the video, until an hour after it finished."""
    job = state.get(task_id, "replicate")
    if job is None:
        raise problem(404, "Not found", "The requested file could not be found.")
    prediction = prediction_object(state, job, request)
    if prediction["output"] is None:
        raise problem(404, "Not found", "The requested file could not be found.")
    content = state.config.content
    if state.config.unique_content:
        tail = job.id.encode()
        chunks = itertools.chain(content.chunks(), (tail,))
        return Reply(200, [("content-type", "video/mp4")], chunks, content.size + len(tail))
    return Reply(200, [("content-type", "video/mp4")], content.chunks(), content.size)


def _create(
    state: SimulatorState, request: Request, body: Mapping[str, object], model: str
) -> Reply:
    data = body.get("input")
    if not isinstance(data, dict):
        raise _invalid("input", "input is required")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("input.prompt", "prompt is required")
    for name in ("webhook", "webhook_completed"):
        hook = body.get(name)
        if hook is not None and (not isinstance(hook, str) or not hook.startswith("http")):
            raise _invalid(name, f"{name} must be an HTTPS URL")
    events = body.get("webhook_events_filter")
    if events is not None and (
        not isinstance(events, list) or not set(events) <= _EVENTS or not events
    ):
        raise _invalid("webhook_events_filter", f"events must be among {sorted(_EVENTS)}")
    for key, value in data.items():
        if isinstance(value, str) and value.startswith("data:") and ";base64," not in value:
            raise _invalid(f"input.{key}", "data URLs must be base64-encoded")
    cancel_after = request.headers.get("cancel-after")
    if cancel_after is not None and _seconds(cancel_after) is None:
        raise problem(
            400, "Invalid Cancel-After header", f"Could not parse duration {cancel_after!r}"
        )
    job = state.create_job(
        shape="replicate",
        prompt=prompt,
        model=model,
        size=str(data.get("size") or data.get("aspect_ratio") or ""),
        seconds=str(data.get("duration", "")),
        fields={"body": dict(body), "cancel_after": cancel_after},
        reference=None,
    )
    return Reply.json(201, prediction_object(state, job, request))


def _body(request: Request) -> dict[str, object]:
    if request.content_type != "application/json":
        raise problem(415, "Unsupported media type", "Content-Type must be application/json")
    try:
        body = json.loads(request.body)
    except ValueError:
        raise problem(400, "Invalid JSON", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise problem(400, "Invalid JSON", "The request body must be a JSON object.")
    unknown = sorted(set(body) - _BODY_FIELDS)
    if unknown:
        raise _invalid("", f"Additional property {unknown[0]} is not allowed")
    return body


def _invalid(field: str, description: str) -> HTTPFault:
    return problem(
        422,
        "Input validation failed",
        description,
        invalid_fields=[{"type": "invalid", "field": field, "description": description}],
    )


def _job(state: SimulatorState, task_id: str) -> SimulatedJob:
    job = state.get(task_id, "replicate")
    if job is None:
        raise problem(404, "Not found", "The requested resource could not be found.")
    return job


def _model_name(job: SimulatedJob) -> str:
    found = _VERSION.match(job.model)
    if found is None:
        return job.model
    return found[1] or "replicate/unnamed"


def _deadline(job: SimulatedJob) -> float | None:
    header = job.fields.get("cancel_after")
    seconds = _seconds(header) if isinstance(header, str) else None
    return None if seconds is None else job.created_wall + seconds


def _seconds(duration: str) -> float | None:
    """A Go-style duration (``90s``, ``5m``, ``1h30m``) in seconds; ``None`` if unreadable."""
    text = duration.strip()
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _logs(phase: str, progress: int, pin: Pin | None) -> str:
    if pin is not None and pin.logs:
        return "\n".join(pin.logs)
    if pin is not None and pin.progress is None and pin.phase != "completed":
        return ""
    if phase == "queued":
        return ""
    lines = ["Using seed: 42", "Generating video..."]
    lines.extend(_bar(percent) for percent in range(0, progress + 1, 25))
    if progress % 25:
        lines.append(_bar(progress))
    return "\n".join(lines)


def _bar(percent: int) -> str:
    filled = percent // 10
    bar = "█" * filled + " " * (10 - filled)
    return f"{percent:3d}%|{bar}| {percent}/100 [00:{percent:02d}<00:10, 1.00it/s]"


def _error(job: SimulatedJob, phase: str, pin: Pin | None) -> str | None:
    if phase != "failed":
        return None
    if pin is not None and (pin.error_message or pin.error_code):
        if pin.error_message and pin.error_code:
            return f"{pin.error_message} ({pin.error_code})"
        return pin.error_message or pin.error_code
    if job.blocked:
        return _FLAGGED
    return "Prediction failed."


def _metrics(state: SimulatorState, job: SimulatedJob, finished_at: float | None) -> object:
    if finished_at is None:
        return {}
    started = job.created_wall + state.config.queue_seconds
    total = max(0.0, finished_at - job.created_wall)
    return {"predict_time": round(max(0.0, finished_at - started), 3), "total_time": total}


def _time_param(request: Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise problem(400, f"Invalid {name}", f"{name} must be an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(moment: float) -> str:
    if not math.isfinite(moment):
        moment = 0.0
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")
