"""The JSON shapes of the REST API, in the camelCase the original video-task backend spoke."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from .._models import MediaType, Task, TaskStats, TaskStatus

__all__ = [
    "CostBody",
    "CreateTaskBody",
    "ErrorBody",
    "ProblemAnswer",
    "ProblemBody",
    "StatsBody",
    "TaskBody",
    "TaskListBody",
    "WebhookAnswer",
]


class CreateTaskBody(BaseModel):
    """``POST /tasks``. Unknown fields are refused: a misspelt ``referenceImage`` must not
    silently start a paid job without its image.
    """

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: int | None = Field(None, description="the video length; `duration` is a synonym")
    duration: int | None = None
    aspect_ratio: str | None = Field(None, description='e.g. "16:9", with `resolution` for `size`')
    resolution: str | None = Field(None, description='e.g. "720p"')
    reference_image: str | None = Field(
        None,
        description='the first frame: a data URL ("data:image/png;base64,..."), bare base64 or '
        "an http(s) URL",
    )
    last_frame: str | None = Field(None, description="the last frame, as `referenceImage`")
    reference_images: list[str] = Field(
        default_factory=list, max_length=16, description="images guiding the look"
    )
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    provider_options: dict[str, JsonValue] = Field(
        default_factory=dict, description="sent into the provider's input verbatim"
    )
    media_type: MediaType = MediaType.VIDEO
    provider: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    notify_url: str | None = Field(
        None,
        description="an http(s) URL that receives a signed webhook (Standard Webhooks) when the "
        "task ends; private and metadata addresses are refused",
    )
    notify_progress: bool | None = Field(
        None, description="also notify each time progress moves (default: the deployment's)"
    )


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=AliasGenerator(serialization_alias=to_camel))


class ErrorBody(_Out):
    """Why a task failed."""

    code: str
    message: str


class CostBody(_Out):
    """What a task costs, or is expected to (``estimated``), and where the figure came from."""

    amount: float
    currency: str
    estimated: bool
    source: str


class TaskBody(_Out):
    """One task as the API shows it. ``videoUrl`` is this API's content route once COMPLETED."""

    video_id: str
    user_id: str | None
    status: TaskStatus
    media_type: MediaType
    prompt: str
    model: str
    size: str
    aspect_ratio: str | None
    resolution: str | None
    seconds: int
    negative_prompt: str | None
    seed: int | None
    audio: bool | None
    provider_options: dict[str, JsonValue]
    progress: int
    video_url: str | None
    error: ErrorBody | None
    external_task_id: str | None
    provider: str
    route: str | None
    cost: CostBody | None
    metadata: dict[str, JsonValue]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, task: Task, video_url: str | None) -> TaskBody:
        """The API view of ``task``."""
        return cls(
            video_id=task.id,
            user_id=task.user_id,
            status=task.status,
            media_type=task.media_type,
            prompt=task.prompt,
            model=task.model,
            size=task.size,
            aspect_ratio=task.aspect_ratio,
            resolution=task.resolution,
            seconds=task.seconds,
            negative_prompt=task.negative_prompt,
            seed=task.seed,
            audio=task.audio,
            provider_options=task.provider_options,
            progress=task.progress,
            video_url=video_url,
            error=ErrorBody(code=task.error.code, message=task.error.message)
            if task.error
            else None,
            external_task_id=task.external_id,
            provider=task.provider,
            route=task.route,
            cost=CostBody(**task.cost.model_dump()) if task.cost is not None else None,
            metadata=task.metadata,
            created_at=task.created_at,
            updated_at=task.updated_at,
            completed_at=task.completed_at,
        )


class TaskListBody(_Out):
    """A page of tasks; pass ``nextCursor`` as ``cursor`` for the next one."""

    items: list[TaskBody]
    next_cursor: str | None
    has_more: bool


class StatsBody(_Out):
    """Counts by status (all five, zeros included) and provider, success rate, render times,
    and cost totals by currency: overall, then by user, provider and model."""

    total: int
    by_status: dict[TaskStatus, int]
    by_provider: dict[str, int]
    success_rate: float | None
    render_seconds_mean: float | None
    render_seconds_p50: float | None
    render_seconds_p90: float | None
    cost_total: dict[str, float]
    cost_by_user: dict[str, dict[str, float]]
    cost_by_provider: dict[str, dict[str, float]]
    cost_by_model: dict[str, dict[str, float]]

    @classmethod
    def of(cls, stats: TaskStats) -> StatsBody:
        """The API view of ``stats``."""
        return cls(
            total=stats.total,
            by_status={status: stats.by_status.get(status, 0) for status in TaskStatus},
            by_provider=stats.by_provider,
            success_rate=stats.success_rate,
            render_seconds_mean=stats.render_seconds_mean,
            render_seconds_p50=stats.render_seconds_p50,
            render_seconds_p90=stats.render_seconds_p90,
            cost_total=stats.cost_total,
            cost_by_user=stats.cost_by_user,
            cost_by_provider=stats.cost_by_provider,
            cost_by_model=stats.cost_by_model,
        )


class ProblemBody(_Out):
    """The ``error`` member of every error answer. ``field`` and ``limit`` are set when known."""

    code: str
    message: str
    field: str | None = None
    limit: JsonValue = None


class ProblemAnswer(_Out):
    """Every error answer: ``{"error": {...}}``."""

    error: ProblemBody


class WebhookAnswer(_Out):
    """What became of a webhook delivery (see :class:`WebhookResult`)."""

    outcome: str
    webhook_id: str
