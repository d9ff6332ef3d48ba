"""The state machine, over every pair of statuses."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from sora_tasks import InvalidTransitionError, Task, TaskError, TaskResult, TaskStatus
from sora_tasks._states import (
    ALLOWED_TRANSITIONS,
    PHASES,
    Phase,
    TaskChanges,
    apply,
    can_transition,
    phase_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)

LEGAL = {
    (TaskStatus.QUEUED, TaskStatus.QUEUED),
    (TaskStatus.QUEUED, TaskStatus.PROCESSING),
    (TaskStatus.QUEUED, TaskStatus.COMPLETED),
    (TaskStatus.QUEUED, TaskStatus.FAILED),
    (TaskStatus.QUEUED, TaskStatus.CANCELLED),
    (TaskStatus.PROCESSING, TaskStatus.PROCESSING),
    (TaskStatus.PROCESSING, TaskStatus.COMPLETED),
    (TaskStatus.PROCESSING, TaskStatus.FAILED),
    (TaskStatus.PROCESSING, TaskStatus.CANCELLED),
    (TaskStatus.COMPLETED, TaskStatus.COMPLETED),
    (TaskStatus.FAILED, TaskStatus.FAILED),
    (TaskStatus.CANCELLED, TaskStatus.CANCELLED),
}


def task_in(status: TaskStatus, **fields: object) -> Task:
    values: dict[str, object] = {
        "provider": "fake",
        "prompt": "p",
        "model": "m",
        "size": "1280x720",
        "seconds": 4,
        "created_at": NOW,
        "updated_at": NOW,
        "status": status,
        "progress": 100 if status is TaskStatus.COMPLETED else 0,
    }
    values.update(fields)
    return Task.model_validate(values)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(TaskStatus, TaskStatus)))
def test_every_pair_of_statuses(source: TaskStatus, target: TaskStatus) -> None:
    task = task_in(source)
    assert can_transition(source, target) is ((source, target) in LEGAL)
    if (source, target) in LEGAL:
        moved = apply(task, {"status": target}, now=LATER)
        assert moved.status is target
        assert moved.version == task.version + 1
        assert moved.updated_at == LATER
        assert task.status is source, "the input snapshot must not change"
    else:
        with pytest.raises(
            InvalidTransitionError, match=f"{source.value} task cannot become {target.value}"
        ):
            apply(task, {"status": target}, now=LATER)


def test_the_table_is_the_legal_set() -> None:
    assert {(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets} == LEGAL


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_terminal_states_absorb(status: TaskStatus) -> None:
    task = task_in(status)
    with pytest.raises(InvalidTransitionError):
        apply(task, {"error": TaskError(code="late", message="too late")}, now=LATER)
    if status is not TaskStatus.COMPLETED:
        with pytest.raises(InvalidTransitionError):
            apply(task, {"progress": 50}, now=LATER)
    kept = apply(
        task, {"result": TaskResult(local_path="/tmp/v.mp4"), "metadata": {"k": 1}}, now=LATER
    )
    assert kept.status is status and kept.metadata == {"k": 1}


def test_entering_a_terminal_state_stamps_completion_and_clears_scheduling() -> None:
    task = task_in(
        TaskStatus.PROCESSING,
        progress=40,
        next_poll_at=NOW,
        lease_owner="w",
        lease_expires_at=LATER,
    )
    done = apply(task, {"status": TaskStatus.COMPLETED}, now=LATER)
    assert (done.progress, done.completed_at, done.next_poll_at, done.lease_owner) == (
        100,
        LATER,
        None,
        None,
    )
    failed = apply(
        task, {"status": TaskStatus.FAILED, "error": TaskError(code="x", message="y")}, now=LATER
    )
    assert failed.progress == 40 and failed.completed_at == LATER and failed.error is not None


@pytest.mark.parametrize(
    ("before", "after", "ok"), [(0, 0, True), (10, 50, True), (50, 49, False), (99, 0, False)]
)
def test_progress_never_decreases(before: int, after: int, ok: bool) -> None:
    task = task_in(TaskStatus.PROCESSING, progress=before)
    if ok:
        assert apply(task, {"progress": after}, now=LATER).progress == after
    else:
        with pytest.raises(InvalidTransitionError, match="cannot go back"):
            apply(task, {"progress": after}, now=LATER)


@pytest.mark.parametrize("value", [-1, 101])
def test_progress_stays_within_bounds(value: int) -> None:
    with pytest.raises(InvalidTransitionError, match=r"0\.\.100"):
        apply(task_in(TaskStatus.PROCESSING), {"progress": value}, now=LATER)


def test_external_id_binds_once() -> None:
    bound = apply(task_in(TaskStatus.QUEUED), {"external_id": "job_1"}, now=LATER)
    assert apply(bound, {"external_id": "job_1"}, now=LATER).external_id == "job_1"
    with pytest.raises(InvalidTransitionError, match="already bound"):
        apply(bound, {"external_id": "job_2"}, now=LATER)


def test_a_cancelled_task_may_still_record_the_job_it_started() -> None:
    cancelled = task_in(TaskStatus.CANCELLED)
    assert apply(cancelled, {"external_id": "job_1"}, now=LATER).external_id == "job_1"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidTransitionError, match="cannot be changed"):
        apply(task_in(TaskStatus.QUEUED), {"prompt": "new"}, now=LATER)  # type: ignore[typeddict-unknown-key]


def _phase_by_table(task: Task) -> Phase:
    """The phase as :data:`PHASES` defines it, evaluated condition by condition."""
    matches = [
        phase
        for phase, alternatives in PHASES.items()
        if any(
            all(condition.holds(getattr(task, name)) for name, condition in conditions.items())
            for conditions in alternatives
        )
    ]
    assert len(matches) == 1, matches  # the phases partition every task
    return matches[0]


@pytest.mark.parametrize("status", list(TaskStatus))
def test_phase_of_follows_the_table_on_every_combination(status: TaskStatus) -> None:
    for submission_id, external_id, pending in itertools.product(
        (None, "sub_1"), (None, "job_1"), (False, True)
    ):
        task = task_in(status).model_copy(
            update={
                "submission_id": submission_id,
                "external_id": external_id,
                "content_pending": pending,
            }
        )
        assert phase_of(task) is _phase_by_table(task), (submission_id, external_id, pending)


def test_apply_builds_what_model_copy_would() -> None:
    task = task_in(TaskStatus.PROCESSING, external_id="job_1", submission_id="sub_1")
    changes: TaskChanges = {"progress": 40, "lease_owner": "w1", "lease_expires_at": LATER}
    applied = apply(task, changes, now=LATER)
    expected = task.model_copy(
        update={**changes, "content_pending": False, "version": 2, "updated_at": LATER}
    )
    assert applied == expected
    assert applied.model_fields_set == expected.model_fields_set
    assert applied.model_dump() == expected.model_dump()
    assert task.progress == 0 and task.version == 1  # the input is left as it was
    assert applied.model_copy(update={"progress": 50}).progress == 50
