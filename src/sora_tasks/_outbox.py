"""The webhook outbox: which status changes owe a notification, and what a delivery row holds.

Pure functions, no I/O. Every store calls :func:`events_for` inside :meth:`TaskStore.update`,
with the snapshot before and after the change, and writes what it returns in the same
transaction as the task, so a status change and the notification it owes are stored together or
not at all. The sender (:mod:`sora_tasks._notify`) delivers the rows later, at least once.
"""

from __future__ import annotations

import enum
import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._models import Task, TaskStatus
from ._secrets import scrub
from ._states import Phase, phase_of

__all__ = [
    "MAX_ERROR_CHARS",
    "WebhookDelivery",
    "WebhookPolicy",
    "WebhookState",
    "backoff",
    "clip_error",
    "events_for",
    "payload_of",
]

MAX_ERROR_CHARS: Final = 500
"""A delivery's ``last_error`` is clipped to this many characters."""

_TERMINAL_TYPES: Final = {
    TaskStatus.COMPLETED: "video.completed",
    TaskStatus.FAILED: "video.failed",
    TaskStatus.CANCELLED: "video.cancelled",
}
PROGRESS_TYPE: Final = "video.progress"
# jitter needs no cryptographic quality
_RNG: Final = random.Random()  # noqa: S311


class WebhookState(enum.StrEnum):
    """Where a delivery stands: to be sent (again), received with a 2xx, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(BaseModel):
    """One outbox row: a notification owed to a task's ``notify_url``.

    ``id`` is sent as the ``webhook-id`` header, the same on every attempt, so receivers can
    drop duplicates. ``seq`` orders a task's deliveries (it is the task's version when the event
    was recorded): a later one is not sent before every earlier one is delivered or given up.
    ``attempts`` counts the attempts begun (a worker killed during a POST counted one);
    ``armed_at`` starts the give-up clock, and :meth:`TaskStore.retry_webhooks` resets it.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    task_id: str
    seq: int
    type: str
    url: str
    payload: dict[str, Any]
    state: WebhookState = WebhookState.PENDING
    attempts: int = Field(0, ge=0)
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    armed_at: datetime
    delivered_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


class WebhookPolicy(BaseModel):
    """How outgoing webhooks are sent, retried and given up.

    Attempt ``n`` (from 1) that fails is retried after ``first_retry * 2**(n-1)`` seconds,
    capped at ``max_retry``, each wait drawn at random between half and all of it (jitter, so
    a receiver that was down is not hit by every retry at once). A delivery is given up
    (``failed``, the last error kept) after ``max_attempts`` attempts or once ``max_age`` has
    passed since it was recorded (or re-armed), whichever comes first. Each attempt may take
    ``connect_timeout`` seconds to resolve the host, then the POST ``connect_timeout`` seconds to
    connect and ``timeout`` seconds in all. A sender keeps up to
    ``batch_size`` deliveries in flight, each under a lease of ``lease_seconds`` (longer than an
    attempt can take: a peer takes a delivery over only once its sender is surely gone), and looks
    for due ones every ``idle_wait`` seconds when it has room. ``allow_private``
    lets notify URLs name loopback, private and link-local addresses (tests, one-host setups);
    metadata addresses stay refused even then.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_retry: float = Field(5.0, gt=0)
    max_retry: float = Field(3600.0, gt=0)
    max_attempts: int = Field(12, ge=1)
    max_age: timedelta = Field(timedelta(days=1), gt=timedelta(0))
    connect_timeout: float = Field(5.0, gt=0)
    timeout: float = Field(15.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    batch_size: int = Field(16, ge=1)
    idle_wait: float = Field(1.0, gt=0)
    allow_private: bool = False

    @model_validator(mode="after")
    def _lease_outlasts_a_post(self) -> Self:
        attempt = self.connect_timeout + self.timeout  # the host lookup, then the POST
        if self.lease_seconds <= attempt:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be longer than connect_timeout "
                f"+ timeout ({attempt:g}), or a peer could send a delivery still in flight again"
            )
        return self


def backoff(attempts: int, policy: WebhookPolicy, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (jittered, see the policy)."""
    ceiling = min(policy.max_retry, policy.first_retry * 2.0 ** min(attempts - 1, 32))
    draw: float = (rng or _RNG).random()
    return ceiling * (0.5 + 0.5 * draw)


def events_for(before: Task, after: Task, *, now: datetime) -> list[WebhookDelivery]:
    """The deliveries a change from ``before`` to ``after`` owes (none, or one).

    A task owes one when it has a ``notify_url`` and becomes done (``video.completed`` once its
    content is saved, ``video.failed``, ``video.cancelled``), or, when it asked for progress
    events, when its progress moves while it is not done.
    """
    if after.notify_url is None:
        return []
    done_now = phase_of(after) is Phase.DONE
    if done_now and phase_of(before) is not Phase.DONE:
        kind = _TERMINAL_TYPES[after.status]
    elif after.notify_progress and not after.is_terminal and after.progress != before.progress:
        kind = PROGRESS_TYPE
    else:
        return []
    return [
        WebhookDelivery(
            task_id=after.id,
            seq=after.version,
            type=kind,
            url=after.notify_url,
            payload=payload_of(kind, after, now),
            next_attempt_at=now,
            created_at=now,
            armed_at=now,
        )
    ]


def payload_of(kind: str, task: Task, now: datetime) -> dict[str, Any]:
    """The JSON body of a delivery: ``type``, ``timestamp`` and the task as ``data``.

    ``data`` is the task in the REST API's camelCase shape, without ``providerOptions`` (which
    may carry credentials for the provider) and without ``videoUrl`` (this library does not know
    where the host serves content); every string is scrubbed of known secrets.
    """
    error = task.error
    data = {
        "videoId": task.id,
        "userId": task.user_id,
        "status": task.status.value,
        "mediaType": task.media_type.value,
        "prompt": task.prompt,
        "model": task.model,
        "size": task.size,
        "seconds": task.seconds,
        "progress": task.progress,
        "error": {"code": error.code, "message": error.message} if error else None,
        "externalTaskId": task.external_id,
        "provider": task.provider,
        "route": task.route,
        "cost": task.cost.model_dump(mode="json") if task.cost is not None else None,
        "metadata": task.metadata,
        "createdAt": task.created_at.isoformat(),
        "updatedAt": task.updated_at.isoformat(),
        "completedAt": task.completed_at.isoformat() if task.completed_at else None,
    }
    body = {"type": kind, "timestamp": now.isoformat(), "data": data}
    scrubbed: dict[str, Any] = json.loads(scrub(json.dumps(body)))
    return scrubbed


def clip_error(text: str) -> str:
    """``text`` scrubbed of secrets and clipped to :data:`MAX_ERROR_CHARS`."""
    text = scrub(text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
