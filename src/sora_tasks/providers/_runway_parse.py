"""Reading Runway's task object: status words, progress, output URLs and failures.

``GET /v1/tasks/{id}`` answers ``{id, status, createdAt, ...}`` where ``status`` is one of
``PENDING``, ``THROTTLED`` (waiting for one of the organisation's concurrency slots), ``RUNNING``
(with ``progress``, a fraction from 0 to 1), ``SUCCEEDED`` (with ``output``, a list of signed
URLs that expire within a day or two; reading the task again signs fresh ones), ``FAILED`` (with
``failure``, a message, and ``failureCode``, e.g. ``SAFETY.INPUT.TEXT``) and ``CANCELLED``
(the SDK's types; Runway's own guides spell it ``CANCELED``, so both are read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._models import TaskError
from ._base import ProviderJob
from ._errors import MAX_CODE_CHARS, MAX_MESSAGE_CHARS, provider_text
from ._parsing import JobState, MalformedResponseError, build_job, parse_timestamp

__all__ = ["RUNWAY_STATUS_WORDS", "parse_task", "progress_of", "result_url"]

RUNWAY_STATUS_WORDS: Mapping[str, JobState] = {
    "pending": "QUEUED",
    "throttled": "QUEUED",
    "running": "PROCESSING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
    "canceled": "CANCELLED",
}
"""Runway's status words, lower-cased, onto the library's states."""


def progress_of(value: object) -> int | None:
    """``progress`` (a fraction from 0 to 1) in percent; ``None`` when absent or unreadable."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0, min(100, round(value * 100)))


def result_url(output: object) -> str | None:
    """The video's URL: the first URL in ``output``."""
    if not isinstance(output, list):
        return None
    urls = (item for item in output if isinstance(item, str))
    return next((url for url in urls if url.startswith(("https://", "http://"))), None)


def parse_task(data: Mapping[str, object]) -> ProviderJob:
    """Normalise a task. A success without an output URL is FAILED (``content_filtered``):
    there is nothing to download, and polling it again would change nothing."""
    external_id = data.get("id")
    if not isinstance(external_id, str) or not external_id:
        raise MalformedResponseError("the task has no id")
    raw = data.get("status")
    word = raw if isinstance(raw, str) else ""
    url = result_url(data.get("output"))
    words = RUNWAY_STATUS_WORDS
    error: TaskError | None = None
    if word.lower() == "failed":
        code = data.get("failureCode")
        message = data.get("failure")
        error = TaskError(
            code=provider_text(code, MAX_CODE_CHARS)
            if isinstance(code, str) and code.strip()
            else "task_failed",
            message=provider_text(message, MAX_MESSAGE_CHARS)
            if isinstance(message, str) and message.strip()
            else "Runway failed the task without saying why",
        )
    elif word.lower() == "succeeded" and url is None:
        words = {**words, "succeeded": "FAILED"}
        error = TaskError(
            code="content_filtered", message="Runway finished the task but returned no video"
        )
    progress = progress_of(data.get("progress")) if word.lower() == "running" else None
    return build_job(
        external_id=external_id,
        raw_status=word,
        words=words,
        error=error.model_dump() if error is not None else None,
        progress=100 if word.lower() == "succeeded" and url else progress,
        result_url=url,
        created_at=parse_timestamp(data.get("createdAt")),
    )
