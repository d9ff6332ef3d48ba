"""The task state machine: which changes are legal. Pure functions, no I/O.

Every store applies every write through :func:`apply`, so the rules hold whatever the backend:

- QUEUED may move to any status; PROCESSING to any but QUEUED;
- terminal statuses (COMPLETED, FAILED, CANCELLED) absorb: once there, status, progress and error
  are frozen; the result (where the file went), metadata and scheduling fields may still change;
- progress never decreases, and COMPLETED means 100;
- the provider's ``external_id``, once bound, never changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, TypedDict

from ._exceptions import InvalidTransitionError
from ._models import Metadata, Task, TaskError, TaskResult, TaskStatus

__all__ = ["ALLOWED_TRANSITIONS", "TaskChanges", "apply", "can_transition", "check_transition"]

_Q, _P = TaskStatus.QUEUED, TaskStatus.PROCESSING
_C, _F, _X = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED

ALLOWED_TRANSITIONS: Final[dict[TaskStatus, frozenset[TaskStatus]]] = {
    _Q: frozenset({_Q, _P, _C, _F, _X}),
    _P: frozenset({_P, _C, _F, _X}),
    _C: frozenset({_C}),
    _F: frozenset({_F}),
    _X: frozenset({_X}),
}


class TaskChanges(TypedDict, total=False):
    """The fields a store write may change. Anything else about a task is fixed at creation."""

    status: TaskStatus
    external_id: str | None
    progress: int
    result: TaskResult | None
    error: TaskError | None
    metadata: Metadata
    priority: int
    submission_id: str | None
    submitted_at: datetime | None
    started_at: datetime | None
    polled_at: datetime | None
    progress_at: datetime | None
    start_progress: int
    next_poll_at: datetime | None
    deadline_at: datetime | None
    poll_failures: int
    lease_owner: str | None
    lease_expires_at: datetime | None


_FIELDS: Final = frozenset(TaskChanges.__annotations__)
# external_id stays writable so that a job started just as its task was cancelled is still
# recorded (and can be cancelled at the provider); the binding rule below keeps it write-once
_MUTABLE_WHEN_TERMINAL: Final = frozenset(
    {
        "result",
        "metadata",
        "external_id",
        "submitted_at",
        "polled_at",
        "next_poll_at",
        "lease_owner",
        "lease_expires_at",
        "poll_failures",
    }
)


def can_transition(source: TaskStatus, target: TaskStatus) -> bool:
    """Whether a task in ``source`` may move to ``target`` (staying put counts as a move)."""
    return target in ALLOWED_TRANSITIONS[source]


def check_transition(source: TaskStatus, target: TaskStatus) -> None:
    """Raise :class:`InvalidTransitionError` unless ``source`` may move to ``target``."""
    if not can_transition(source, target):
        raise InvalidTransitionError(f"a {source.value} task cannot become {target.value}")


def apply(task: Task, changes: TaskChanges, *, now: datetime) -> Task:
    """Return ``task`` with ``changes`` applied, ``version`` bumped and ``updated_at`` = ``now``.

    Raises :class:`InvalidTransitionError` for anything the rules above forbid; the input task is
    never modified.
    """
    unknown = set(changes) - _FIELDS
    if unknown:
        raise InvalidTransitionError(f"these task fields cannot be changed: {sorted(unknown)}")
    update: dict[str, Any] = dict(changes)
    target = update.get("status", task.status)
    if not isinstance(target, TaskStatus):
        target = TaskStatus(target)
        update["status"] = target
    check_transition(task.status, target)

    if task.status.is_terminal:
        frozen = {key for key in update if key not in _MUTABLE_WHEN_TERMINAL}
        changed = {key for key in frozen if update[key] != getattr(task, key)}
        if changed:
            raise InvalidTransitionError(
                f"task {task.id} is {task.status.value}; its {', '.join(sorted(changed))} "
                "can no longer change"
            )

    progress = update.get("progress", task.progress)
    if not 0 <= progress <= 100:
        raise InvalidTransitionError(f"progress must be within 0..100, got {progress}")
    if progress < task.progress:
        raise InvalidTransitionError(
            f"progress of task {task.id} cannot go back from {task.progress} to {progress}"
        )

    external_id = update.get("external_id", task.external_id)
    if task.external_id is not None and external_id != task.external_id:
        raise InvalidTransitionError(
            f"task {task.id} is already bound to provider job {task.external_id!r}"
        )

    if target.is_terminal and not task.status.is_terminal:
        update["completed_at"] = now
        update["next_poll_at"] = None
        update["lease_owner"] = None
        update["lease_expires_at"] = None
        if target is TaskStatus.COMPLETED:
            update["progress"] = 100
            update["error"] = None
    update["version"] = task.version + 1
    update["updated_at"] = now
    return task.model_copy(update=update)
