"""Builders shared by the test suites: a task to store, a Video object, a create request."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sora_tasks import Task, TaskStatus
from sora_tasks.providers import SubmitRequest


def make_task(now: datetime, **fields: Any) -> Task:
    """A valid task created at ``now``; ``fields`` override any default."""
    values: dict[str, Any] = {
        "provider": "fake",
        "prompt": "a calico cat playing piano",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": 4,
        "created_at": now,
        "updated_at": now,
    }
    return Task.model_validate(values | fields)


def phase_grid(now: datetime) -> list[Task]:
    """Tasks over every combination of the fields the phases and claims look at."""
    past, future = now - timedelta(hours=1), now + timedelta(hours=1)
    grid: list[Task] = []
    numbers = itertools.count()
    for status, external, submission, pending, due, lease in itertools.product(
        TaskStatus,
        (False, True),
        (False, True),
        (False, True),
        (None, past, future),
        (None, past, future),
    ):
        if pending and status is not TaskStatus.COMPLETED:
            continue  # the state machine never leaves content pending on another status
        grid.append(
            make_task(
                now,
                status=status,
                progress=100 if status is TaskStatus.COMPLETED else 0,
                external_id=f"job_{next(numbers)}" if external else None,
                submission_id="sub_1" if submission else None,
                content_pending=pending,
                next_poll_at=due,
                lease_owner="w0" if lease else None,
                lease_expires_at=lease,
            )
        )
    return grid


def video_object(**overrides: object) -> dict[str, object]:
    """An OpenAI Video object as the API answers it; ``overrides`` replace any field."""
    return {
        "id": "video_123",
        "object": "video",
        "model": "sora-2",
        "status": "queued",
        "progress": 0,
        "created_at": 1_712_697_600,
        "completed_at": None,
        "expires_at": None,
        "prompt": "a calico cat playing piano",
        "size": "720x1280",
        "seconds": "4",
        "remixed_from_video_id": None,
        "error": None,
        **overrides,
    }


def submit_request(**overrides: Any) -> SubmitRequest:
    """A create as the manager hands it to a provider; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "task_id": "video_00000000-0000-0000-0000-000000000001",
        "idempotency_key": "sub_abc123",
        "prompt": "a calico cat playing piano",
        "model": "sora-2",
        "size": "720x1280",
        "seconds": 4,
        **overrides,
    }
    return SubmitRequest(**fields)
