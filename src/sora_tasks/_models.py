"""The domain models: what a task is, what a request asks for, what pages and stats look like."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "GenerationRequest",
    "ImageData",
    "Limits",
    "MediaType",
    "ReferenceImage",
    "RouteStep",
    "SkippedProvider",
    "Task",
    "TaskCost",
    "TaskError",
    "TaskPage",
    "TaskQuery",
    "TaskResult",
    "TaskStats",
    "TaskStatus",
    "new_task_id",
]

Metadata = dict[str, JsonValue]
Progress = Annotated[int, Field(ge=0, le=100)]


def new_task_id() -> str:
    """Mint our id for a task: ``video_<uuid4>``, made before anything leaves the process."""
    return f"video_{uuid.uuid4()}"


class TaskStatus(enum.StrEnum):
    """The public status of a task. Finer reasons live in ``Task.error.code``."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED, FAILED and CANCELLED: nothing moves a task out of them."""
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class MediaType(enum.StrEnum):
    """What the task generates."""

    VIDEO = "VIDEO"
    IMAGE = "IMAGE"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Frozen):
    """Bounds on accepted input and on downloads. Every message names the limit it enforces.

    A download fails when it passes ``max_download_bytes``, averages fewer than
    ``download_min_bytes_per_second`` over ``download_speed_window`` seconds (0 turns that rule
    off), or receives nothing for ``download_stall_timeout`` seconds.
    """

    max_prompt_chars: int = Field(10_000, ge=1)
    max_image_bytes: int = Field(5 * 1024 * 1024, ge=1)
    max_metadata_bytes: int = Field(16 * 1024, ge=0)
    max_provider_options_bytes: int = Field(64 * 1024, ge=0)
    max_download_bytes: int = Field(4 * 1024**3, ge=1)
    download_min_bytes_per_second: int = Field(1024, ge=0)
    download_speed_window: float = Field(20.0, gt=0)
    download_stall_timeout: float = Field(30.0, gt=0)


class TaskError(_Frozen):
    """Why a task failed: a stable machine-readable ``code`` and a human ``message``.

    Codes the library itself sets: ``timeout``, ``expired``, ``lost``, ``submit_uncertain``,
    ``submit_rejected``, ``submit_failed``, ``provider_error`` and ``content_filtered`` (the
    provider finished but returned nothing, its safety filter having removed the output); any
    other code is the provider's own (``moderation_blocked``, say). ``request_id`` is the
    provider's id of the request that failed (see :attr:`ProviderError.request_id`), when the
    failure came from an answer that carried one.
    """

    code: str
    message: str
    retryable: bool = False
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ImageData:
    """A decoded reference image: type sniffed from its bytes, pixel size read from its header."""

    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    sha256: str

    @property
    def filename(self) -> str:
        """A file name with the extension of the real type (providers insist on one)."""
        extension = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
        return f"reference.{extension.get(self.mime_type, 'bin')}"


class ReferenceImage(_Frozen):
    """What is known of one of a task's input images. The bytes themselves live in the store."""

    sha256: str | None = None
    mime_type: str | None = None
    byte_size: int | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = Field(None, description="set when an http(s) URL was passed through")


class TaskResult(_Frozen):
    """Where the finished media is: at the provider until ``expires_at``, on disk once fetched,
    and in the archive (``archive_uri``, with the size and SHA-256 of what was uploaded).
    """

    url: str | None = None
    expires_at: datetime | None = None
    local_path: str | None = None
    byte_size: int | None = None
    sha256: str | None = None
    archive_uri: str | None = None
    archive_byte_size: int | None = None
    archive_sha256: str | None = None
    thumbnail_uri: str | None = None


class TaskCost(_Frozen):
    """What a task costs, or is expected to: ``amount`` in ``currency``.

    ``estimated`` holds until the figure rests on what was rendered (the provider's reported
    usage, or the seconds of video delivered); ``source`` says where the figure came from (the
    price table entry with its date and source, or the provider's usage).
    """

    amount: float = Field(ge=0)
    currency: str = "USD"
    estimated: bool = True
    source: str


class RouteStep(_Frozen):
    """One provider a routed task may go to, with the request as that provider takes it.

    A route may mix providers whose models take different names, frames or durations: each
    step holds the values checked against its own provider's capabilities.
    """

    provider: str
    model: str
    size: str
    seconds: int
    aspect_ratio: str | None = None
    resolution: str | None = None


class SkippedProvider(_Frozen):
    """A provider of the task's route that did not take the job, and why.

    ``code`` is one of ``unsupported`` (the request does not fit its capabilities),
    ``circuit_open`` (recent calls failed), ``unreachable`` (the connection was refused),
    ``rate_limited`` (a 429 that did nothing), ``unavailable`` (a 503 that did nothing),
    ``retired`` (the model or API is gone), ``auth`` (the credentials were refused) and
    ``not_tried`` (left out because a create elsewhere may have started a job).
    """

    provider: str
    code: str
    reason: str
    at: datetime


class Task(_Frozen):
    """One generation job, tracked under our ``id`` and the provider's ``external_id``.

    Tasks are immutable snapshots; every change goes through the store, which checks it against
    the state machine and bumps ``version``. ``started_at`` is when rendering began, as well as
    the provider's answers tell. The scheduling fields (``polled_at``, ``progress_at``,
    ``start_progress``, ``next_poll_at``, leases, ...) belong to the polling engine and are shown
    for observability. ``size``, ``aspect_ratio`` and ``resolution`` describe one frame (each
    completed from the others at creation; tasks stored before 0.3 carry ``size`` only).
    ``reference_image`` is the first frame, ``last_frame`` the last and ``reference_images``
    guide the look; ``provider_options`` were sent to the provider verbatim.
    ``content_pending`` is set while a COMPLETED task's video is still to be
    saved by the engine (see ``download_dir``): until then the task may yet end FAILED with
    ``error.code == "expired"``.
    A task created through a route records its name in ``route``, the providers it may still go
    to in ``route_steps`` (in order, each with its own request) and every provider passed over in
    ``skipped``; ``provider`` is the one that took (or is taking) the job.
    ``notify_url`` receives a signed webhook when the task ends (and on progress, with
    ``notify_progress``); both are fixed at creation.
    """

    id: str = Field(default_factory=new_task_id, pattern=r"^video_[0-9a-f-]{36}$")
    provider: str
    external_id: str | None = None
    user_id: str | None = None
    status: TaskStatus = TaskStatus.QUEUED
    media_type: MediaType = MediaType.VIDEO
    prompt: str
    model: str
    size: str
    seconds: int
    aspect_ratio: str | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    reference_image: ReferenceImage | None = None
    last_frame: ReferenceImage | None = None
    reference_images: list[ReferenceImage] = Field(default_factory=list)
    provider_options: dict[str, JsonValue] = Field(default_factory=dict)
    progress: Progress = 0
    result: TaskResult | None = None
    error: TaskError | None = None
    metadata: Metadata = Field(default_factory=dict)
    priority: int = 0
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    submission_id: str | None = None
    polled_at: datetime | None = None
    progress_at: datetime | None = None
    start_progress: Progress = 0
    next_poll_at: datetime | None = None
    deadline_at: datetime | None = None
    poll_failures: int = Field(0, ge=0)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    content_pending: bool = False
    route: str | None = None
    route_steps: list[RouteStep] = Field(default_factory=list)
    skipped: list[SkippedProvider] = Field(default_factory=list)
    cost: TaskCost | None = None
    notify_url: str | None = None
    notify_progress: bool = False
    version: int = Field(1, ge=1)

    @property
    def is_terminal(self) -> bool:
        """True once the task is COMPLETED, FAILED or CANCELLED."""
        return self.status.is_terminal

    @property
    def image_hashes(self) -> frozenset[str]:
        """The content hashes of the task's input images whose bytes the store keeps."""
        images = (self.reference_image, self.last_frame, *self.reference_images)
        return frozenset(image.sha256 for image in images if image and image.sha256)

    def _repr_html_(self) -> str:
        # the notebook's UI code is imported only when a notebook shows a task
        from .notebook import task_html

        return task_html(self)


class GenerationRequest(BaseModel):
    """What a caller asks for. ``TaskManager.create`` builds one from its keyword arguments.

    ``model``, ``size`` and ``seconds`` left as ``None`` take the provider's defaults; the frame
    may be asked for as a ``size`` (``"1280x720"``) or as an ``aspect_ratio`` (``"16:9"``) and a
    ``resolution`` (``"720p"``). Each image (``reference_image``, the first frame;
    ``last_frame``; each of ``reference_images``) may be bytes, a path, a data URL, bare base64
    or an http(s) URL. ``provider_options`` go into the provider's input verbatim, for anything
    the common fields do not cover. ``allow_unsupported`` is the explicit override for values
    the provider does not declare. ``notify_url`` (checked against the deployment's webhook
    rules) and ``notify_progress`` override the manager's defaults for this task.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: int | None = Field(None, ge=1)
    media_type: MediaType = MediaType.VIDEO
    aspect_ratio: str | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    audio: bool | None = None
    reference_image: bytes | Path | str | None = Field(None, repr=False)
    last_frame: bytes | Path | str | None = Field(None, repr=False)
    reference_images: list[bytes | Path | str] = Field(default_factory=list, repr=False)
    provider_options: dict[str, JsonValue] = Field(default_factory=dict)
    user_id: str | None = None
    provider: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    priority: int = 0
    deadline: timedelta | None = None
    allow_unsupported: bool = False
    notify_url: str | None = None
    notify_progress: bool | None = None


class TaskQuery(_Frozen):
    """Filters and paging for ``TaskStore.list``. Newest first unless ``order="asc"``."""

    user_id: str | None = None
    status: TaskStatus | None = None
    provider: str | None = None
    media_type: MediaType | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = Field(20, ge=1, le=500)
    cursor: str | None = None
    order: Literal["asc", "desc"] = "desc"


class TaskPage(_Frozen):
    """One page of tasks; pass ``next_cursor`` back to get the next one."""

    items: list[Task]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        """True when another page follows."""
        return self.next_cursor is not None


class TaskStats(_Frozen):
    """Counts and render times, for one user or for everyone.

    ``success_rate`` is completed / (completed + failed); render times run from creation to
    completion of COMPLETED tasks, in seconds. Each is ``None`` when there is nothing to measure.
    ``cost_total`` sums the tasks' :class:`TaskCost` by currency (estimates included, until a
    task's actual cost replaces its estimate); ``cost_by_user`` (``""`` for tasks without a
    user), ``cost_by_provider`` and ``cost_by_model`` split it, then by currency.
    """

    total: int
    by_status: dict[TaskStatus, int]
    by_provider: dict[str, int]
    success_rate: float | None
    render_seconds_mean: float | None
    render_seconds_p50: float | None
    render_seconds_p90: float | None
    cost_total: dict[str, float] = Field(default_factory=dict)
    cost_by_user: dict[str, dict[str, float]] = Field(default_factory=dict)
    cost_by_provider: dict[str, dict[str, float]] = Field(default_factory=dict)
    cost_by_model: dict[str, dict[str, float]] = Field(default_factory=dict)
