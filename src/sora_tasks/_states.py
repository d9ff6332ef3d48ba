"""The task state machine: which changes are legal. Pure functions, no I/O.

Every store applies every write through :func:`apply`, so the rules hold whatever the backend:

- QUEUED may move to any status; PROCESSING to any but QUEUED;
- terminal statuses (COMPLETED, FAILED, CANCELLED) absorb: once there, status, progress and error
  are frozen; the result (where the file went), metadata and scheduling fields may still change;
- progress never decreases, and COMPLETED means 100;
- the provider's ``external_id``, once bound, never changes, and neither does the provider (nor
  the request as that provider takes it): a routed task moves only while no job is bound;
- a COMPLETED task whose content is still to be saved (``content_pending``) is not done yet: it
  stays due for the engine and may still end FAILED (its video could not be saved in time).

It also defines, once, the **phases** the engine drives a task through (:class:`Phase`). Each is a
small predicate over stored columns (:data:`PHASES`) that the Python code evaluates with
:func:`phase_of` and the SQL store compiles into its queries, so the two cannot drift apart.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypedDict

from ._exceptions import InvalidTransitionError
from ._models import (
    Metadata,
    RouteStep,
    SkippedProvider,
    Task,
    TaskCost,
    TaskError,
    TaskResult,
    TaskStatus,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ENGINE_PHASES",
    "PHASES",
    "Condition",
    "Phase",
    "TaskChanges",
    "apply",
    "can_transition",
    "check_transition",
    "is_claimable",
    "phase_of",
]

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
    content_pending: bool
    # a routed task moves to the next provider of its route while no job is bound to it
    provider: str
    model: str
    size: str
    seconds: int
    aspect_ratio: str | None
    resolution: str | None
    route_steps: list[RouteStep]
    skipped: list[SkippedProvider]
    cost: TaskCost | None


class Phase(enum.StrEnum):
    """Where a task stands in the work the engine does for it.

    - ``WAITING``: not sent yet (no submission id, no provider job): to be submitted;
    - ``SUBMITTING``: a create was (or is being) sent and no provider job id is known: the
      engine resolves it under the submit-uncertain policy, never by resending blindly;
    - ``RENDERING``: bound to a provider job that has not ended: to be polled;
    - ``COLLECTING``: COMPLETED at the provider, its content not saved yet: to be fetched, by
      any worker, before the provider's link expires;
    - ``DONE``: nothing left to do.
    """

    WAITING = "waiting"
    SUBMITTING = "submitting"
    RENDERING = "rendering"
    COLLECTING = "collecting"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Condition:
    """One stored column compared with constants: null, not null, or one of ``values``."""

    null: bool | None = None
    values: frozenset[object] | None = None

    def holds(self, value: object) -> bool:
        """Whether ``value`` (the column's) satisfies the condition."""
        if self.null is not None and (value is None) != self.null:
            return False
        return self.values is None or value in self.values


_NULL, _SET = Condition(null=True), Condition(null=False)
_ACTIVE = Condition(values=frozenset({TaskStatus.QUEUED, TaskStatus.PROCESSING}))

PHASES: Final[Mapping[Phase, tuple[Mapping[str, Condition], ...]]] = {
    Phase.WAITING: ({"status": _ACTIVE, "submission_id": _NULL, "external_id": _NULL},),
    Phase.SUBMITTING: ({"status": _ACTIVE, "submission_id": _SET, "external_id": _NULL},),
    Phase.RENDERING: ({"status": _ACTIVE, "external_id": _SET},),
    Phase.COLLECTING: (
        {
            "status": Condition(values=frozenset({TaskStatus.COMPLETED})),
            "content_pending": Condition(values=frozenset({True})),
        },
    ),
    Phase.DONE: (
        {"status": Condition(values=frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED}))},
        {
            "status": Condition(values=frozenset({TaskStatus.COMPLETED})),
            "content_pending": Condition(values=frozenset({False})),
        },
    ),
}
"""Each phase as a disjunction of conjunctions of column conditions; together they partition
every task a store can hold."""

ENGINE_PHASES: Final = (Phase.SUBMITTING, Phase.RENDERING, Phase.COLLECTING)
"""The phases :meth:`TaskStore.claim_due` hands out (``WAITING`` goes through admission)."""


def _phase_table() -> dict[tuple[TaskStatus, bool, bool, bool], Phase]:
    """:data:`PHASES` evaluated once for every combination of the columns it reads.

    Keyed by status, whether ``submission_id`` and ``external_id`` are null, and
    ``content_pending``; a predicate over any other column (or comparing those ids with values)
    fails here, at import, rather than being read wrongly.
    """
    read = {name for alternatives in PHASES.values() for c in alternatives for name in c}
    if not read <= {"status", "submission_id", "external_id", "content_pending"} or any(
        condition.values is not None
        for alternatives in PHASES.values()
        for conditions in alternatives
        for name, condition in conditions.items()
        if name in ("submission_id", "external_id")
    ):
        raise AssertionError("PHASES reads more than phase_of's table is keyed by")
    table = {}
    for status, no_submission, no_job, pending in itertools.product(
        TaskStatus, (True, False), (True, False), (True, False)
    ):
        columns = {
            "status": status,
            "submission_id": None if no_submission else "set",
            "external_id": None if no_job else "set",
            "content_pending": pending,
        }
        (phase,) = {
            phase
            for phase, alternatives in PHASES.items()
            for conditions in alternatives
            if all(condition.holds(columns[name]) for name, condition in conditions.items())
        }  # the phases partition every task: exactly one holds
        table[status, no_submission, no_job, pending] = phase
    return table


_PHASE_OF: Final = _phase_table()


def phase_of(task: Task) -> Phase:
    """The phase ``task`` is in, by the predicates of :data:`PHASES` (evaluated once, at import,
    for every combination of the columns they read: this runs several times per poll)."""
    return _PHASE_OF[
        task.status, task.submission_id is None, task.external_id is None, task.content_pending
    ]


def is_claimable(task: Task, now: datetime) -> bool:
    """Due (``next_poll_at`` has come) and held by no live lease."""
    return (
        task.next_poll_at is not None
        and task.next_poll_at <= now
        and (task.lease_expires_at is None or task.lease_expires_at <= now)
    )


_FIELDS: Final = frozenset(TaskChanges.__annotations__)
_TERMINAL: Final = frozenset(status for status in TaskStatus if status.is_terminal)
# what moves with a routed task to the next provider of its route
_ROUTED: Final = frozenset(
    {"provider", "model", "size", "seconds", "aspect_ratio", "resolution", "route_steps"}
)
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
        "content_pending",
        "cost",  # the actual cost is often known only once the task has ended
    }
)


def can_transition(
    source: TaskStatus, target: TaskStatus, *, content_pending: bool = False
) -> bool:
    """Whether a task in ``source`` may move to ``target`` (staying put counts as a move).

    A COMPLETED task whose content is still pending may yet become FAILED.
    """
    if content_pending and source is TaskStatus.COMPLETED and target is TaskStatus.FAILED:
        return True
    return target in ALLOWED_TRANSITIONS[source]


def check_transition(
    source: TaskStatus, target: TaskStatus, *, content_pending: bool = False
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``source`` may move to ``target``."""
    if not can_transition(source, target, content_pending=content_pending):
        raise InvalidTransitionError(f"a {source.value} task cannot become {target.value}")


def apply(task: Task, changes: TaskChanges, *, now: datetime) -> Task:
    """Return ``task`` with ``changes`` applied, ``version`` bumped and ``updated_at`` = ``now``.

    Raises :class:`InvalidTransitionError` for anything the rules above forbid; the input task is
    never modified.
    """
    # runs twice per poll (the claim's lease, the poll's write): the common case is checked
    # with set operations first, the detail only when something is wrong
    if not _FIELDS.issuperset(changes):
        unknown = set(changes) - _FIELDS
        raise InvalidTransitionError(f"these task fields cannot be changed: {sorted(unknown)}")
    update: dict[str, Any] = dict(changes)
    source = task.status
    target = update.get("status", source)
    if not isinstance(target, TaskStatus):
        target = TaskStatus(target)
        update["status"] = target
    if target is not source:  # staying put is always allowed
        check_transition(source, target, content_pending=task.content_pending)
    collecting_failed = source is not target and task.content_pending

    if source in _TERMINAL and not collecting_failed:
        frozen = {key for key in update if key not in _MUTABLE_WHEN_TERMINAL}
        changed = {key for key in frozen if update[key] != getattr(task, key)}
        if changed:
            raise InvalidTransitionError(
                f"task {task.id} is {source.value}; its {', '.join(sorted(changed))} "
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
    moved = (
        set()
        if _ROUTED.isdisjoint(update)
        else {key for key in _ROUTED if key in update and update[key] != getattr(task, key)}
    )
    if moved and (task.external_id is not None or external_id is not None):
        # ids are provider-scoped: a job, once it exists, is polled where it was created
        raise InvalidTransitionError(
            f"task {task.id} is bound to a provider job; its {', '.join(sorted(moved))} "
            "can no longer change"
        )

    pending = bool(update.get("content_pending", task.content_pending))
    if target is not TaskStatus.COMPLETED:
        pending = update["content_pending"] = False
    elif pending and update.get("next_poll_at", task.next_poll_at) is None:
        raise InvalidTransitionError(
            f"task {task.id} completes with its content pending but is given no next_poll_at"
        )
    if target in _TERMINAL and source not in _TERMINAL:
        update["completed_at"] = now
        if target is TaskStatus.COMPLETED:
            update["progress"] = 100
            update["error"] = None
    if target in _TERMINAL and not pending:
        # done: nothing is due any more, and no lease can hold it
        update["next_poll_at"] = None
        update["lease_owner"] = None
        update["lease_expires_at"] = None
    update["version"] = task.version + 1
    update["updated_at"] = now
    return _replaced(task, update)


# a Task has no extra and no private attributes (checked here, once), so a copy is its field
# values and the names that were set: what model_copy(update=...) builds, at half its cost
if Task.__private_attributes__ or Task.model_config.get("extra") != "forbid":
    raise RuntimeError("Task gained private or extra attributes: _replaced must copy them")


def _replaced(task: Task, update: dict[str, Any]) -> Task:
    """``task.model_copy(update=update)``, made directly (it runs twice per poll)."""
    copied = object.__new__(Task)
    values = task.__dict__.copy()
    values.update(update)
    object.__setattr__(copied, "__dict__", values)
    object.__setattr__(copied, "__pydantic_fields_set__", task.model_fields_set | update.keys())
    object.__setattr__(copied, "__pydantic_extra__", None)
    object.__setattr__(copied, "__pydantic_private__", None)
    return copied
