"""Reading a Veo long-running operation: ``done``, ``error``, the samples or the safety filter.

An operation is ``{name, metadata?, done?, error?, response?}``: ``done`` is left out while the
job runs (proto3 JSON drops a false boolean), ``error`` is a ``google.rpc.Status`` (``code``,
``message``, ``status``...). The Gemini API answers with
``response.generateVideoResponse.generatedSamples[].video.uri`` (a ``files/{id}:download`` URL);
Vertex AI's ``fetchPredictOperation`` with ``response.videos[]`` holding ``gcsUri`` or the video
itself in ``bytesBase64Encoded``. A finished operation with no sample was stopped by the safety
filter: ``raiMediaFilteredReasons`` says why. There is no queued state and no progress.

Veo has no status word, so the adapter names its states: ``running``, ``done`` and ``error``. A
``done`` that is not a boolean is kept verbatim as an unknown word (status ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from .._models import TaskError
from ._base import ProviderJob
from ._errors import MAX_CODE_CHARS, MAX_MESSAGE_CHARS, provider_text
from ._parsing import JobState, MalformedResponseError, build_job

__all__ = ["VEO_RETENTION", "VEO_WORDS", "inline_video", "parse_operation"]

VEO_RETENTION = timedelta(days=2)
"""How long the Gemini API keeps a generated video."""

VEO_WORDS: Mapping[str, JobState] = {
    "running": "PROCESSING",
    "done": "COMPLETED",
    "error": "FAILED",
    "filtered": "FAILED",
}
"""The adapter's names for an operation's states (Veo itself only says ``done``)."""

# google.rpc.Code numbers, for an error that gives no status name
_RPC_CODES = {
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}


def parse_operation(
    data: Mapping[str, object],
    *,
    seen_at: datetime,
    retention: timedelta | None = VEO_RETENTION,
) -> ProviderJob:
    """Normalise an operation read at ``seen_at``.

    A finished operation without a sample is FAILED ``content_filtered``, its filter reasons in
    the message. The result is kept ``retention`` after it was first seen finished (Veo says no
    finishing time), so ``expires_at`` is that much after ``seen_at``; ``None`` (Vertex AI: your
    bucket, or the video inline) sets no expiry.
    """
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedResponseError("the operation has no name")
    done = data.get("done", False)
    if not isinstance(done, bool):
        return build_job(external_id=name, raw_status=str(done), words=VEO_WORDS)
    if not done:
        return build_job(external_id=name, raw_status="running", words=VEO_WORDS)
    failure = data.get("error")
    if isinstance(failure, Mapping):
        return build_job(
            external_id=name, raw_status="error", words=VEO_WORDS, error=_rpc_error(failure)
        )
    response = data.get("response")
    body = response if isinstance(response, Mapping) else {}
    generated = body.get("generateVideoResponse")
    if isinstance(generated, Mapping):
        body = generated
    url = _result_url(body)
    if url is None and inline_video(body) is None:
        error = TaskError(code="content_filtered", message=_filtered(body))
        return build_job(
            external_id=name, raw_status="filtered", words=VEO_WORDS, error=error.model_dump()
        )
    return build_job(
        external_id=name,
        raw_status="done",
        words=VEO_WORDS,
        progress=100,
        result_url=url,
        completed_at=seen_at,
        expires_at=seen_at + retention if retention and url and url.startswith("http") else None,
    )


def inline_video(body: Mapping[str, object]) -> str | None:
    """The base64 video Vertex AI returns inline (no ``storageUri``), or ``None``."""
    video = _first_video(body)
    encoded = video.get("bytesBase64Encoded") or video.get("encodedVideo")
    return encoded if isinstance(encoded, str) and encoded else None


def _first_video(body: Mapping[str, object]) -> Mapping[str, object]:
    samples = body.get("generatedSamples")
    if isinstance(samples, list):
        for sample in samples:
            video = sample.get("video") if isinstance(sample, Mapping) else None
            if isinstance(video, Mapping):
                return video
    videos = body.get("videos")
    if isinstance(videos, list):
        for video in videos:
            if isinstance(video, Mapping):
                return video
    return {}


def _result_url(body: Mapping[str, object]) -> str | None:
    video = _first_video(body)
    uri = video.get("uri") or video.get("gcsUri")
    if isinstance(uri, str) and uri.startswith(("https://", "http://", "gs://")):
        return uri
    return None


def _filtered(body: Mapping[str, object]) -> str:
    reasons = body.get("raiMediaFilteredReasons")
    texts = (
        [r for r in reasons if isinstance(r, str) and r.strip()]
        if isinstance(reasons, list)
        else []
    )
    if not texts:
        return "Veo finished without a video (its safety filter removed it; no reason given)"
    return provider_text(
        "Veo's safety filter removed the video: " + " ".join(texts), MAX_MESSAGE_CHARS
    )


def _rpc_error(failure: Mapping[str, object]) -> dict[str, str]:
    """Code and message of a ``google.rpc.Status``: the ``ErrorInfo`` reason when it has one,
    else the status name, else the name of its code number."""
    code = _reason(failure.get("details")) or failure.get("status")
    number = failure.get("code")
    if not isinstance(code, str) or not code:
        known = _RPC_CODES.get(number) if isinstance(number, int) else None
        code = known or (f"rpc_{number}" if isinstance(number, int) else "operation_failed")
    message = failure.get("message")
    text = message if isinstance(message, str) and message.strip() else code
    return {
        "code": provider_text(code, MAX_CODE_CHARS),
        "message": provider_text(text, MAX_MESSAGE_CHARS),
    }


def _reason(details: object) -> str | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            reason = detail.get("reason")
            if isinstance(reason, str) and reason:
                return reason
    return None
