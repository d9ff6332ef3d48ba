"""One logging helper, so every record about a task carries the same context fields."""

from __future__ import annotations

import logging

from ._models import Task
from ._secrets import scrub

__all__ = ["log_task", "logger"]

logger = logging.getLogger("sora_tasks")


def log_task(
    level: int,
    message: str,
    task: Task,
    *,
    action: str,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log ``message`` with ``task_id``, ``external_id``, ``provider``, ``action`` and ``fields``.

    A ``request_id`` field (the provider's id of a failed request) is shown in the text too.

    Only task identifiers and the caller's fields are attached: never a request, a header or a
    provider object; the message, which may quote a provider's error, is scrubbed of every
    secret the process knows. ``exc_info`` attaches the exception being handled (it is an
    argument of the call, not a field of the record).
    """
    if not logger.isEnabledFor(level):
        return
    extra = {
        "task_id": task.id,
        "external_id": task.external_id,
        "provider": task.provider,
        "action": action,
        **fields,
    }
    context = f"task={task.id} provider={task.provider} external_id={task.external_id}"
    if fields.get("request_id") is not None:
        # the id a provider's support asks for: in the text too, not only in structured logs
        context += f" request_id={fields['request_id']}"
    logger.log(level, "%s [%s]", scrub(message), context, exc_info=exc_info, extra=extra)
