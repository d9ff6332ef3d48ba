"""Builders shared by the test suites: a task to store, a Video object, a create request."""

from __future__ import annotations

from typing import Any

from sora_tasks.providers import SubmitRequest
from sora_tasks.testing._task_factories import make_task, phase_grid

__all__ = ["make_task", "phase_grid", "submit_request", "video_object"]


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
