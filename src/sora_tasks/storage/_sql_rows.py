"""Conversion between :class:`Task` / :class:`ImageData` and rows of the SQL tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._models import ImageData, Task, TaskStatus

__all__ = [
    "changed_columns",
    "image_from_row",
    "image_to_row",
    "further_images",
    "task_from_row",
    "task_to_row",
]

_NESTED = ("reference_image", "last_frame", "result", "error", "cost")
_LISTS = ("reference_images", "route_steps", "skipped")
_FIELDS = tuple(Task.model_fields)


def task_to_row(task: Task) -> dict[str, Any]:
    """The column values of ``task``, including the derived lookup columns."""
    row = task.model_dump(mode="python", exclude={*_NESTED, *_LISTS})
    row["status"] = task.status.value
    row["media_type"] = task.media_type.value
    for name in _NESTED:
        value = getattr(task, name)
        row[name] = None if value is None else value.model_dump(mode="json")
    for name in _LISTS:
        row[name] = [item.model_dump(mode="json") for item in getattr(task, name)]
    row["cost_amount"] = task.cost.amount if task.cost is not None else None
    row["cost_currency"] = task.cost.currency if task.cost is not None else None
    image = task.reference_image
    row["image_sha256"] = image.sha256 if image is not None else None
    row["render_seconds"] = (
        (task.completed_at - task.created_at).total_seconds()
        if task.status is TaskStatus.COMPLETED and task.completed_at is not None
        else None
    )
    return row


def further_images(task: Task) -> list[dict[str, Any]]:
    """The rows of ``sora_task_images`` for ``task``: its input images beyond the first frame."""
    first = task.reference_image.sha256 if task.reference_image else None
    return [
        {"task_id": task.id, "sha256": sha256}
        for sha256 in sorted(task.image_hashes)
        if sha256 != first
    ]


def task_from_row(row: Mapping[Any, Any]) -> Task:
    """Rebuild a :class:`Task` from a row of the tasks table (extra keys are ignored)."""
    return Task.model_validate({name: row[name] for name in _FIELDS})


def changed_columns(before: Task, after: Task) -> dict[str, Any]:
    """The columns whose values differ between two snapshots of one task."""
    old, new = task_to_row(before), task_to_row(after)
    return {key: value for key, value in new.items() if old[key] != value}


def image_to_row(image: ImageData) -> dict[str, Any]:
    """The column values of a reference image."""
    return {
        "sha256": image.sha256,
        "mime_type": image.mime_type,
        "byte_size": len(image.data),
        "width": image.width,
        "height": image.height,
        "data": image.data,
    }


def image_from_row(row: Mapping[Any, Any]) -> ImageData:
    """Rebuild :class:`ImageData` from a row of the images table."""
    return ImageData(
        data=bytes(row["data"]),
        mime_type=row["mime_type"],
        width=row["width"],
        height=row["height"],
        sha256=row["sha256"],
    )
