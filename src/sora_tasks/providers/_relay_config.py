"""How a multipart relay spells the video API, and the pure functions that read and write it.

Relays reselling video generation agree on the outline (multipart create, status by id, a result
URL or content endpoint) and differ in names. :class:`RelayConfig` holds every name; its defaults
follow the common "sora2-async" shape described in PROVIDERS.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._models import ImageData, TaskError, TaskStatus
from ._base import ProviderJob, SubmitRequest
from ._parsing import (
    DEFAULT_STATUS_WORDS,
    JobState,
    MalformedResponseError,
    build_job,
    first_string,
    lookup,
    parse_poll_after,
    parse_progress,
    parse_timestamp,
)

__all__ = ["FormPart", "RelayConfig", "form_parts", "parse_relay_job"]

FormPart = tuple[str | None, bytes | str, str | None]
"""``(filename, content, content type)``; a ``None`` filename makes a plain form field."""

Scalar = str | int | float | bool
_T = TypeVar("_T")


class RelayConfig(BaseModel):
    """Every name a relay may choose differently. Each default is the common choice.

    Request side: ``path_prefix`` (create is ``POST {prefix}``, status ``GET {prefix}/{id}``),
    ``auth_scheme`` (``Authorization: Bearer <key>`` or the raw key) and ``auth_header``; field
    names for prompt, model, seconds (``duration`` on some) and size; ``size_format`` sends the
    size as ``1280x720``, an aspect ratio (``16:9``) or an orientation (``landscape``), with
    ``size_values`` overriding single values; ``extra_fields`` are sent with every create (``hd``,
    ``watermark``, ``private``); ``image_mode`` sends the reference as a file part or as a URL
    string (bytes become a data URL).

    Response side: ``envelope`` unwraps ``{"data": {...}}``; ``id_fields``, ``status_fields`` and
    ``progress_fields`` are tried in order; ``status_words`` maps words case-insensitively;
    ``result_url_fields`` are dotted paths (``metadata.url``, ``result_urls.0``); ``content_path``
    is the fallback download endpoint under the job (``None`` when the relay has none).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path_prefix: str = "/v1/videos"
    auth_scheme: Literal["bearer", "raw"] = "bearer"
    auth_header: str = "Authorization"
    prompt_field: str = "prompt"
    model_field: str = "model"
    seconds_field: str = "seconds"
    size_field: str = "size"
    size_format: Literal["size", "aspect_ratio", "orientation"] = "size"
    size_values: dict[str, str] = Field(default_factory=dict)
    extra_fields: dict[str, Scalar] = Field(default_factory=dict)
    image_field: str = "input_reference"
    image_mode: Literal["file", "url"] = "file"
    envelope: str | None = "data"
    id_fields: tuple[str, ...] = ("id", "task_id")
    status_fields: tuple[str, ...] = ("status", "state")
    status_words: dict[str, JobState] = Field(default_factory=lambda: dict(DEFAULT_STATUS_WORDS))
    progress_fields: tuple[str, ...] = ("progress",)
    result_url_fields: tuple[str, ...] = (
        "video_url",
        "url",
        "download_url",
        "metadata.url",
        "result_urls.0",
    )
    content_path: str | None = "/content"
    error_field: str = "error"
    error_code_fields: tuple[str, ...] = ("error_code",)
    error_message_fields: tuple[str, ...] = ("error_message", "fail_reason", "failure_reason")
    created_at_fields: tuple[str, ...] = ("created_at", "created", "create_time")
    completed_at_fields: tuple[str, ...] = ("completed_at", "finished_at", "finish_time")
    expires_at_fields: tuple[str, ...] = ("expires_at", "expire_at")

    @field_validator("status_words")
    @classmethod
    def _lower_case_words(cls, words: dict[str, JobState]) -> dict[str, JobState]:
        return {word.strip().lower(): state for word, state in words.items()}

    @field_validator("path_prefix")
    @classmethod
    def _one_leading_slash(cls, prefix: str) -> str:
        return "/" + prefix.strip("/")


def form_parts(request: SubmitRequest, config: RelayConfig) -> dict[str, FormPart]:
    """The multipart fields of a create, named and formatted as ``config`` says."""
    values: dict[str, Scalar] = {
        config.prompt_field: request.prompt,
        config.model_field: request.model,
        config.seconds_field: str(request.seconds),
        config.size_field: _size_value(request.size, config),
        **config.extra_fields,
        **{key: _scalar(value) for key, value in request.provider_options.items()},
    }
    parts: dict[str, FormPart] = {key: (None, _text(value), None) for key, value in values.items()}
    image = request.image
    if image is not None and config.image_mode == "file":
        parts[config.image_field] = (image.filename, image.data, image.mime_type)
    elif image is not None:
        parts[config.image_field] = (None, _data_url(image), None)
    elif request.image_url is not None:
        parts[config.image_field] = (None, request.image_url, None)
    return parts


def _size_value(size: str, config: RelayConfig) -> str:
    if size in config.size_values or config.size_format == "size":
        return config.size_values.get(size, size)
    width, _, height = size.partition("x")
    wide, tall = int(width) > int(height), int(width) < int(height)
    if config.size_format == "orientation":
        return "landscape" if wide else "portrait" if tall else "square"
    return "16:9" if wide else "9:16" if tall else "1:1"


def _scalar(value: object) -> Scalar:
    # a form field holds text: structured options travel as their JSON
    if isinstance(value, Scalar):
        return value
    return json.dumps(value, separators=(",", ":"))


def _text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _data_url(image: ImageData) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def parse_relay_job(
    data: Mapping[str, object], config: RelayConfig, headers: Mapping[str, str]
) -> ProviderJob:
    """Normalise a relay's job object (create or status answer) as ``config`` describes it.

    A job the relay calls done without naming a video, when there is no content path to fetch
    it from instead, is FAILED with code ``content_filtered``: there is nothing to download.
    """
    job = _unwrap(data, config)
    external_id = first_string(job, config.id_fields)
    if external_id is None:
        raise MalformedResponseError(f"no job id under any of {', '.join(config.id_fields)}")
    parsed = build_job(
        external_id=external_id,
        raw_status=first_string(job, config.status_fields) or "",
        words=config.status_words,
        error=_error(job, config),
        progress=_first(job, config.progress_fields, parse_progress),
        result_url=first_string(job, config.result_url_fields),
        created_at=_first(job, config.created_at_fields, parse_timestamp),
        completed_at=_first(job, config.completed_at_fields, parse_timestamp),
        expires_at=_first(job, config.expires_at_fields, parse_timestamp),
        poll_after=parse_poll_after(headers),
    )
    if (
        parsed.status is TaskStatus.COMPLETED
        and parsed.result_url is None
        and config.content_path is None
    ):
        empty = TaskError(
            code="content_filtered", message="the relay reported the job done but named no video"
        )
        return parsed.model_copy(update={"status": TaskStatus.FAILED, "error": empty})
    return parsed


def _unwrap(data: Mapping[str, object], config: RelayConfig) -> Mapping[str, object]:
    inner = data.get(config.envelope) if config.envelope else None
    if isinstance(inner, Mapping) and first_string(data, config.id_fields) is None:
        return inner
    return data


def _first(
    job: Mapping[str, object], paths: tuple[str, ...], parse: Callable[[object], _T | None]
) -> _T | None:
    for path in paths:
        value = parse(lookup(job, path))
        if value is not None:
            return value
    return None


def _error(job: Mapping[str, object], config: RelayConfig) -> object:
    nested = job.get(config.error_field)
    if nested:
        return nested
    code = first_string(job, config.error_code_fields)
    message = first_string(job, config.error_message_fields)
    return None if code is None and message is None else {"code": code, "message": message}
