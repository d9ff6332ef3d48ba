"""Pure helpers that read provider payloads tolerantly: statuses, progress, times, nested fields.

Providers disagree on small things (``"36%"`` or ``0.36``, seconds or milliseconds, ``status`` or
``state``); these functions absorb the differences so each adapter only says where to look.
Anything unreadable becomes ``None`` rather than an exception, except a body that is not a JSON
object at all (:class:`MalformedResponseError`, or :class:`JSONLimitError` when it nests too
deep). Every string kept from a payload goes through ``provider_text``: no secret, no control
character, a bounded length.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

from .._exceptions import ProviderResponseError
from .._models import TaskError, TaskStatus
from .._secrets import scrub
from ._base import ProviderJob
from ._errors import MAX_CODE_CHARS, error_fields, provider_text
from ._json import DEFAULT_MAX_JSON_DEPTH, JSONLimitError, loads

__all__ = [
    "DEFAULT_STATUS_WORDS",
    "JSONLimitError",
    "JobState",
    "MalformedResponseError",
    "build_job",
    "first_string",
    "json_object",
    "lookup",
    "parse_poll_after",
    "parse_progress",
    "parse_timestamp",
    "same_job",
]

JobState = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED", "EXPIRED"]

_WORDS: dict[JobState, str] = {
    "QUEUED": "queued pending submitted not_start notstarted preparing created starting",
    "PROCESSING": "processing in_progress running generating",
    "COMPLETED": "completed complete success succeeded finished",
    "FAILED": "failed failure fail error",
    "CANCELLED": "cancelled canceled",
    "EXPIRED": "expired",
}
DEFAULT_STATUS_WORDS: Mapping[str, JobState] = {
    word: state for state, words in _WORDS.items() for word in words.split()
}
"""Status words seen across OpenAI-shaped APIs and relays (compared case-insensitively)."""

_MS_THRESHOLD = 1e12


class MalformedResponseError(ValueError):
    """A success response whose body is not the JSON object the adapter expects."""


def json_object(body: bytes, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> dict[str, object]:
    """Decode a JSON object, or raise :class:`MalformedResponseError`.

    Nesting deeper than ``max_depth`` raises :class:`~._json.JSONLimitError` (a ``ValueError``
    too) before the parser sees it.
    """
    try:
        data = loads(body, max_depth=max_depth)
    except JSONLimitError:
        raise
    except ValueError:
        raise MalformedResponseError("the response body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedResponseError(f"expected a JSON object, got {type(data).__name__}")
    return data


def lookup(data: object, path: str) -> object:
    """Follow a dotted path such as ``metadata.url`` or ``result_urls.0``; ``None`` if absent."""
    for part in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def first_string(data: object, paths: Iterable[str]) -> str | None:
    """The first non-blank string found at any of ``paths``."""
    for path in paths:
        value = lookup(data, path)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def parse_progress(value: object) -> int | None:
    """Percent from an int (``36``), a fraction (``0.36``) or a string (``"36%"``, ``"0.36"``).

    A float of at most 1 is a fraction; anything else is a percentage. Clamped to 0 to 100.
    """
    percent = False
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            value = float(text.rstrip("%").strip()) if "." in text else int(text.rstrip("%"))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    if isinstance(value, float) and not percent and 0 <= value <= 1:
        value *= 100
    return max(0, min(100, int(value)))


def parse_timestamp(value: object) -> datetime | None:
    """A UTC time from unix seconds, unix milliseconds (above 1e12) or an ISO 8601 string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return _iso(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    seconds = value / 1000 if value > _MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_poll_after(headers: Mapping[str, str]) -> float | None:
    """The ``openai-poll-after-ms`` hint in seconds, when it is a usable number."""
    try:
        milliseconds = float(headers.get("openai-poll-after-ms", ""))
    except ValueError:
        return None
    return milliseconds / 1000 if math.isfinite(milliseconds) and milliseconds >= 0 else None


def build_job(
    *,
    external_id: str,
    raw_status: str,
    words: Mapping[str, JobState],
    error: object = None,
    **fields: object,
) -> ProviderJob:
    """A :class:`ProviderJob` from a provider's status word and error payload.

    ``expired`` becomes FAILED with ``expired=True`` and error code ``expired``; an unknown word
    gives status ``None`` with ``raw_status`` kept, so the manager decides how long to wait.
    Strings are cleaned (``provider_text``); an id that holds a known secret is refused, since
    it could be neither stored as it is nor polled once masked.
    """
    if scrub(external_id) != external_id:
        raise MalformedResponseError("the job id contains a secret of ours; it is not kept")
    state = words.get(raw_status.strip().lower())
    raw_status = provider_text(raw_status, MAX_CODE_CHARS)
    for name, value in fields.items():
        if isinstance(value, str):
            fields[name] = scrub(value)
    task_error = _task_error(error)
    if state == "EXPIRED":
        message = task_error.message if task_error else "the provider let the job expire"
        task_error = TaskError(code="expired", message=message)
    status = (
        TaskStatus.FAILED if state == "EXPIRED" else None if state is None else TaskStatus(state)
    )
    return ProviderJob.model_validate(
        {
            "external_id": external_id,
            "status": status,
            "raw_status": raw_status,
            "error": task_error,
            "expired": state == "EXPIRED",
            **fields,
        }
    )


def same_job(job: ProviderJob, external_id: str, *, provider: str) -> ProviderJob:
    """``job``, when it is the one asked about; a status or cancel answer about another job
    (a proxy's mix-up, a cache keyed wrongly) must not move this task, so it is refused."""
    if job.external_id != external_id:
        raise ProviderResponseError(
            f"asked {provider} about job {external_id!r} but the answer is about job "
            f"{provider_text(job.external_id, MAX_CODE_CHARS)!r}",
            provider=provider,
        )
    return job


def _task_error(payload: object) -> TaskError | None:
    code, message = error_fields(payload)
    if code is None and message is None:
        return None
    return TaskError(code=code or "provider_error", message=message or code or "")
