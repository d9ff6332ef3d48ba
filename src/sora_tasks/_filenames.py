"""What a downloaded file is called when the caller names no path: the task id, and the
extension of what it holds (an image task's file is not a ``.mp4``)."""

from __future__ import annotations

from ._models import MediaType, Task

__all__ = ["default_filename"]

_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_DEFAULTS = {MediaType.VIDEO: ".mp4", MediaType.IMAGE: ".png"}
_MAJOR = {MediaType.VIDEO: "video/", MediaType.IMAGE: "image/"}


def default_filename(task: Task, content_type: str | None = None) -> str:
    """``<task id><extension>``: from ``content_type`` when it is a known type of the task's
    media (a provider that answers every variant as ``video/mp4`` does not make an image an
    MP4), else the media type's usual one (``.mp4``, ``.png``)."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    extension = _EXTENSIONS.get(essence) if essence.startswith(_MAJOR[task.media_type]) else None
    return f"{task.id}{extension or _DEFAULTS[task.media_type]}"
