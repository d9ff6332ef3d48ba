"""The provider interface: what the manager needs from any video-generation service.

An adapter turns one service's wire format into these types. It never touches the store and keeps
no task state of its own: the manager owns both.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr

from .._exceptions import ProviderUnsupportedError
from .._models import ImageData, MediaType, Task, TaskError, TaskStatus
from .._schedule import PollSchedule

__all__ = [
    "ContentStream",
    "Provider",
    "ProviderCapabilities",
    "ProviderJob",
    "SubmitRequest",
]

ContentVariant = Literal["video", "thumbnail", "spritesheet"]


class ProviderCapabilities(BaseModel):
    """What a provider (or one of its models) declares it accepts and how it wants to be treated.

    ``None`` for ``models``, ``sizes``, ``aspect_ratios``, ``resolutions`` or ``seconds`` means
    "any value". The manager checks every request against these before storing it, unless the
    request sets ``allow_unsupported``. The frame is checked three ways: a request's ``size``,
    ``aspect_ratio`` and ``resolution`` are first completed from one another (``1280x720`` is
    ``16:9`` at ``720p``), so an adapter that speaks sizes and one that speaks ratios both get
    what they need. ``negative_prompt``, ``seed``, ``last_frame`` and ``provider_options`` say
    whether those fields are accepted at all; ``audio`` holds the values of the audio switch the
    model takes (empty: no switch); ``max_reference_images`` caps ``reference_images``;
    ``image_matches_size`` demands a first frame of exactly the requested size.
    ``schedule`` describes the provider's pace (``schedule.expected_seconds`` is the starting
    belief of how long a job takes, before the engine has learned it);
    ``min_poll_interval`` is a floor no poll goes under; ``poll_hint_is_floor`` says whether the
    provider's poll-after hints are rules (a floor) or mere advice (ignored by the schedule);
    ``max_in_flight`` caps jobs running at once (further tasks wait locally, QUEUED).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: frozenset[str] | None = None
    sizes: frozenset[str] | None = None
    seconds: frozenset[int] | None = None
    aspect_ratios: frozenset[str] | None = None
    resolutions: frozenset[str] | None = None
    media_types: frozenset[MediaType] = frozenset({MediaType.VIDEO})
    default_model: str
    default_size: str
    default_seconds: int
    image_upload: bool = True
    image_url: bool = False
    max_image_bytes: int | None = None
    image_matches_size: bool = True
    last_frame: bool = False
    max_reference_images: int = Field(0, ge=0)
    negative_prompt: bool = False
    seed: bool = False
    audio: frozenset[bool] = frozenset()
    provider_options: bool = True
    can_cancel: bool = False
    can_delete: bool = False
    can_list: bool = False
    max_in_flight: int | None = Field(None, ge=1)
    min_poll_interval: float = Field(1.0, ge=0)
    poll_hint_is_floor: bool = False
    schedule: PollSchedule = PollSchedule()


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """One create, as the manager hands it to a provider.

    ``idempotency_key`` is the task's submission id: stable across retries of the same attempt,
    so a provider that honours idempotency keys never starts a second job for it.
    ``attempted_at`` is when this attempt was first sent (it narrows :meth:`Provider.find`);
    ``deadline_at`` is when the task gives up, for APIs that take a server-side deadline.
    ``size``, ``aspect_ratio`` and ``resolution`` always describe the same frame (the manager
    completes each from the others); an adapter sends whichever its API takes. Images are
    checked bytes (:class:`ImageData`) or http(s) URLs passed through; ``image`` /
    ``image_url`` is the first frame. ``provider_options`` go into the provider's input verbatim,
    over anything the adapter mapped.
    """

    task_id: str
    idempotency_key: str
    prompt: str
    model: str
    size: str
    seconds: int
    media_type: MediaType = MediaType.VIDEO
    image: ImageData | None = None
    image_url: str | None = None
    attempted_at: datetime | None = None
    deadline_at: datetime | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    last_frame: ImageData | str | None = None
    reference_images: tuple[ImageData | str, ...] = ()
    provider_options: Mapping[str, JsonValue] = field(default_factory=dict)


class ProviderJob(BaseModel):
    """A provider's view of one job, normalised.

    ``status`` is ``None`` when the provider's word is unknown (``raw_status`` keeps it).
    ``poll_after`` is the provider's hint, in seconds, of when to ask again.
    ``queue_position`` is how many jobs wait ahead of this one, where the provider says.
    ``render_seconds`` is the compute time the provider reports for the job (what it bills by,
    for Replicate's ``metrics.predict_time``), when it reports one.
    """

    model_config = ConfigDict(frozen=True)

    external_id: str
    status: TaskStatus | None
    raw_status: str = ""
    progress: int | None = Field(None, ge=0, le=100)
    error: TaskError | None = None
    result_url: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    poll_after: float | None = None
    queue_position: int | None = Field(None, ge=0)
    expired: bool = False
    render_seconds: float | None = Field(None, ge=0)


class ContentStream(abc.ABC):
    """An open download of a job's content: its declared length, type and MD5, and its bytes.

    ``md5`` is the digest of the whole body as the server declared it (``Content-MD5``,
    ``x-goog-hash``), or ``None``; a saver checks it. A stream that had to start over (see
    :meth:`aiter_restartable`) describes the new body in these attributes from then on.
    """

    content_length: int | None = None
    content_type: str | None = None
    md5: bytes | None = None

    @abc.abstractmethod
    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive."""

    def aiter_restartable(self, restart: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
        """Yield the body like :meth:`aiter_bytes`, but allowed to start it over from byte zero.

        A stream that cannot continue where it broke off awaits ``restart()`` (the consumer
        discards what it has) and then yields the whole body again. The default never restarts.
        """
        return self.aiter_bytes()


class Provider(abc.ABC):
    """A video-generation service. Subclass it to add one.

    Required: :attr:`capabilities`, :meth:`submit`, :meth:`status` and :meth:`open_content`.
    :meth:`cancel`, :meth:`delete` and :meth:`find` raise :class:`ProviderUnsupportedError` or
    return ``None`` unless the service offers them (and ``capabilities`` says so).
    """

    honours_call_bounds: ClassVar[bool] = False
    """Whether every call ends by the bound the engine sets around it (adapters built on the
    library's HTTP client do); otherwise the engine adds a cancel scope of its own."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> ProviderCapabilities:
        """What this provider accepts and how often it may be polled."""

    def capabilities_for(self, model: str) -> ProviderCapabilities | None:
        """What ``model`` accepts, or ``None`` when this adapter does not know the model.

        Adapters that reach many models (each with its own durations, ratios and inputs) override
        it; the default answers :attr:`capabilities` for every model those declare. A request
        for an unknown model is refused unless it carries ``provider_options`` (the model's own
        input) or ``allow_unsupported``.
        """
        capabilities = self.capabilities
        if capabilities.models is None or model in capabilities.models:
            return capabilities
        return None

    def check(self, request: SubmitRequest) -> None:  # noqa: B027 - optional hook
        """Refuse a request the capabilities allow but the provider's rules between fields do
        not (Veo renders 1080p only at 8 seconds, say), with an :class:`InvalidRequestError`.

        The manager calls it before anything is stored (``task_id`` and ``idempotency_key`` are
        empty then); the default accepts everything.
        """

    @abc.abstractmethod
    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """Start a job. Raise :class:`SubmissionUncertainError` when it may have started anyway."""

    @abc.abstractmethod
    async def status(self, external_id: str) -> ProviderJob:
        """Read the job's current state."""

    @abc.abstractmethod
    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        """Open a streamed download of a finished job's content.

        The manager passes the stored ``task``, so an adapter can use what it recorded (the
        result URL the job named, say) instead of asking the provider again.
        """

    async def cancel(self, external_id: str) -> ProviderJob | None:
        """Ask the provider to stop the job; returns its new state when the API says."""
        raise ProviderUnsupportedError(f"{type(self).__name__} cannot cancel jobs")

    async def delete(self, external_id: str) -> None:
        """Delete the job and its assets at the provider."""
        raise ProviderUnsupportedError(f"{type(self).__name__} cannot delete jobs")

    async def find(self, request: SubmitRequest) -> ProviderJob | None:
        """Look for a job this request already started (reconciling an uncertain submit).

        Returns ``None`` when no such job is found or the provider cannot search.
        """
        return None

    async def webhook_secret(self) -> SecretStr | None:
        """The ``whsec_`` secret that signs this provider's Standard Webhooks deliveries, when
        the provider can tell it (fetched once and cached); ``None`` otherwise.

        :meth:`TaskManager.handle_webhook` asks for it when ``webhook_secrets`` names none.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections. The manager calls it on exit for providers it was given."""
