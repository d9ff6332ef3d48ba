"""Reading Replicate's prediction object: status words, progress from the logs, output, errors.

A prediction is ``{id, model, version, input, output, error, logs, status, metrics,
created_at, started_at, completed_at, data_removed, urls, ...}``
(https://replicate.com/docs/topics/predictions/lifecycle). Its status is one of ``starting``,
``processing``, ``succeeded``, ``failed`` and ``canceled``, plus ``aborted`` for a prediction
whose ``Cancel-After`` deadline passed before it started
(https://replicate.com/changelog/2025-10-16-prediction-deadlines). Progress is only in the
model's ``logs``, where many models print tqdm bars (`` 45%|████▌  | 9/20``) or step counts.
Outputs and the prediction's data are removed an hour after it finishes
(https://replicate.com/docs/topics/predictions/data-retention): ``data_removed`` then says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta

from .._models import TaskError
from ._base import ProviderJob
from ._errors import MAX_CODE_CHARS, MAX_MESSAGE_CHARS, provider_text
from ._parsing import JobState, MalformedResponseError, build_job, parse_timestamp

__all__ = [
    "REPLICATE_RETENTION",
    "REPLICATE_STATUS_WORDS",
    "error_code",
    "parse_prediction",
    "progress_from_logs",
    "result_url",
]

REPLICATE_RETENTION = timedelta(hours=1)
"""How long Replicate keeps an API prediction's outputs after it finishes."""

REPLICATE_STATUS_WORDS: Mapping[str, JobState] = {
    "starting": "QUEUED",
    "processing": "PROCESSING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
    "aborted": "CANCELLED",
}

# only the end of the logs is read: the latest progress line is there, and logs can be long
_LOG_TAIL_CHARS = 4096
_PERCENT = re.compile(r"(?<![\d.])(\d{1,3})%\s*\|")
_STEPS = re.compile(r"(?<![\d/:.-])(\d{1,6})\s*/\s*(\d{1,6})(?![\d/:.-])")
_ERROR_CODE = re.compile(r"\b(E\d{3,5})\b")
# Replicate ends many messages with their code: "... (E005)", "... (code: PA)"
_TRAILING_CODE = re.compile(r"\((?:code:\s*)?([A-Za-z][\w.-]{0,63})\)\s*$")
_MODERATION = re.compile(r"flagged|sensitive|safety|nsfw|content polic", re.IGNORECASE)


def progress_from_logs(logs: object) -> int | None:
    """The percentage the newest progress line of ``logs`` shows, or ``None`` if none does.

    A tqdm bar's percentage wins over its ``n/N`` count; a bare ``n/N`` counts as progress
    only when ``0 < N`` and ``n <= N``.
    """
    if not isinstance(logs, str) or not logs:
        return None
    for line in reversed(logs[-_LOG_TAIL_CHARS:].splitlines()):
        if (found := _PERCENT.search(line)) is not None:
            return min(100, int(found[1]))
        steps = [(int(n), int(total)) for n, total in _STEPS.findall(line)]
        steps = [(n, total) for n, total in steps if total > 0 and n <= total]
        if steps:
            n, total = steps[-1]
            return math.floor(100 * n / total)
    return None


def error_code(message: str) -> str:
    """A stable code for a failed prediction's ``error`` string.

    Safety refusals become ``moderation_blocked``; a code Replicate quotes (a trailing
    ``(E1234)`` or ``(code: PA)``, or an ``E1234`` anywhere) is kept; anything else is
    ``prediction_failed``.
    """
    if _MODERATION.search(message):
        return "moderation_blocked"
    found = _TRAILING_CODE.search(message) or _ERROR_CODE.search(message)
    return found[1] if found is not None else "prediction_failed"


def result_url(output: object) -> str | None:
    """The video's URL: the output itself, the first URL of a list, or a ``video`` field."""
    if isinstance(output, Mapping):
        output = output.get("video") or output.get("url")
    if isinstance(output, list):
        output = next((item for item in output if isinstance(item, str) and item), None)
    if isinstance(output, str) and output.startswith(("https://", "http://")):
        return output
    return None


def parse_prediction(
    data: Mapping[str, object], *, retention: timedelta = REPLICATE_RETENTION
) -> ProviderJob:
    """Normalise a prediction. A success without output is FAILED (``content_filtered``); a
    success whose data Replicate removed is FAILED with ``expired``."""
    external_id = data.get("id")
    if not isinstance(external_id, str) or not external_id:
        raise MalformedResponseError("the prediction has no id")
    raw = data.get("status")
    word = raw if isinstance(raw, str) else ""
    url = result_url(data.get("output"))
    completed_at = parse_timestamp(data.get("completed_at"))
    error: TaskError | None = None
    message = data.get("error")
    if isinstance(message, str) and message.strip():
        text = provider_text(message, MAX_MESSAGE_CHARS)
        error = TaskError(code=provider_text(error_code(message), MAX_CODE_CHARS), message=text)
    words = REPLICATE_STATUS_WORDS
    if word == "succeeded" and data.get("data_removed") is True:
        words = {**words, "succeeded": "EXPIRED"}
        error = TaskError(code="expired", message="Replicate removed the prediction's output")
        url = None
    elif word == "succeeded" and url is None:
        words = {**words, "succeeded": "FAILED"}
        error = TaskError(
            code="content_filtered", message="the prediction succeeded but returned no video"
        )
    metrics = data.get("metrics")
    predict_time = metrics.get("predict_time") if isinstance(metrics, Mapping) else None
    return build_job(
        external_id=external_id,
        raw_status=word,
        words=words,
        error=error.model_dump() if error is not None else None,
        progress=100 if word == "succeeded" else progress_from_logs(data.get("logs")),
        result_url=url,
        created_at=parse_timestamp(data.get("created_at")),
        completed_at=completed_at,
        expires_at=completed_at + retention if completed_at is not None and url else None,
        render_seconds=_seconds(predict_time),
    )


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
