"""Tasks to store: one valid task, and a grid over every field the phases and claims look at."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from .._models import Task, TaskStatus

__all__ = ["make_task", "phase_grid"]


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
