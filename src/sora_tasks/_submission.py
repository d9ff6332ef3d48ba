"""The create a stored task stands for, rebuilt from the task and the images the store keeps."""

from __future__ import annotations

from collections.abc import Iterable

from ._models import ImageData, ReferenceImage, Task
from .providers._base import SubmitRequest
from .storage._base import TaskStore

__all__ = ["submit_request"]


async def submit_request(
    task: Task, store: TaskStore, images: Iterable[ImageData] = ()
) -> SubmitRequest:
    """The :class:`SubmitRequest` for ``task``'s current attempt.

    ``images`` are ones the caller already holds (at admission); any other image the task names is
    read from the store by its hash.
    """
    assert task.submission_id is not None
    known = {image.sha256: image for image in images}

    async def load(reference: ReferenceImage | None) -> ImageData | str | None:
        if reference is None:
            return None
        if reference.sha256 is None:
            return reference.url
        if reference.sha256 not in known:
            known[reference.sha256] = await store.get_image(reference.sha256)
        return known[reference.sha256]

    first = await load(task.reference_image)
    return SubmitRequest(
        task_id=task.id,
        idempotency_key=task.submission_id,
        attempted_at=task.submitted_at,
        deadline_at=task.deadline_at,
        prompt=task.prompt,
        model=task.model,
        size=task.size,
        aspect_ratio=task.aspect_ratio,
        resolution=task.resolution,
        seconds=task.seconds,
        media_type=task.media_type,
        image=first if isinstance(first, ImageData) else None,
        image_url=first if isinstance(first, str) else None,
        negative_prompt=task.negative_prompt,
        seed=task.seed,
        audio=task.audio,
        last_frame=await load(task.last_frame),
        reference_images=tuple(
            [image for image in [await load(ref) for ref in task.reference_images] if image]
        ),
        provider_options=task.provider_options,
    )
