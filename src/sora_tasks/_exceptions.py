"""The exceptions raised by sora_tasks.

Every error derives from one root, so ``except SoraTasksError`` catches them all::

    SoraTasksError
    ├── InvalidRequestError            bad input: nothing was stored or sent
    │   ├── PromptError                missing, blank or too long prompt
    │   ├── ImageError
    │   │   ├── InvalidImageEncodingError   not valid base64 / data URL
    │   │   ├── ImageTooLargeError          over Limits.max_image_bytes
    │   │   ├── UnsupportedImageTypeError   not an image, or not PNG/JPEG/WebP
    │   │   └── ImageDimensionsError        pixel size differs from the requested size
    │   ├── UnsupportedParameterError  model/size/seconds/media type the provider does not declare
    │   ├── UnknownProviderError       no provider registered under that name
    │   └── BudgetExceededError        the task would pass a spending limit
    ├── TaskNotFoundError              no such task (or it belongs to another user)
    ├── InvalidTransitionError         the state machine forbids the change
    ├── ConflictError                  a write lost a race (stale version or lease)
    ├── DuplicateExternalIdError       the provider's id is already bound to another task
    ├── StoreUnavailableError          the database cannot be reached (or stays locked)
    │   └── StoreNotMigratedError      its schema is missing or older than the code: migrate
    ├── TaskNotReadyError              the task has no result to download yet
    ├── TaskFailedError                a waited-for task ended FAILED or CANCELLED
    ├── WaitTimeoutError               ``wait`` gave up before the task finished
    ├── ManagerNotRunningError         a call needs ``async with TaskManager(...)``
    ├── ConfigError                    the environment or config file names no usable provider
    ├── DownloadError                  truncated, oversized or corrupt content
    ├── WebhookVerificationError       a webhook delivery was refused (nothing changed)
    └── ProviderError                  a provider call failed
        ├── ProviderUnsupportedError   the provider cannot do this (cancel, list, ...)
        ├── ProviderTransportError     the request failed on the wire, or took too long
        ├── ProviderResponseError      an answer too large, too deep, unreadable or about
        │                              another job
        ├── SubmissionUncertainError   a create may or may not have reached the provider
        └── ProviderHTTPError          the provider answered with an error status
            ├── ProviderAuthError      401, 403
            ├── ProviderRejectedError  400, 404, 409, 422 and other final 4xx
            ├── ProviderRateLimitError 429
            └── ProviderServerError    5xx

Messages name the problem and, where there is one, the limit. No message ever contains a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import Task

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "DownloadError",
    "DuplicateExternalIdError",
    "ImageDimensionsError",
    "ImageError",
    "ImageTooLargeError",
    "InvalidImageEncodingError",
    "InvalidRequestError",
    "InvalidTransitionError",
    "ManagerNotRunningError",
    "PromptError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimitError",
    "ProviderRejectedError",
    "ProviderResponseError",
    "ProviderServerError",
    "ProviderTransportError",
    "ProviderUnsupportedError",
    "SoraTasksError",
    "StoreNotMigratedError",
    "StoreUnavailableError",
    "SubmissionUncertainError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskNotReadyError",
    "UnknownProviderError",
    "UnsupportedImageTypeError",
    "UnsupportedParameterError",
    "WaitTimeoutError",
    "WebhookVerificationError",
]


class SoraTasksError(Exception):
    """Root of every error raised by sora_tasks."""


class InvalidRequestError(SoraTasksError, ValueError):
    """A request was rejected before anything was stored or sent.

    ``field`` names the offending input; ``limit`` is the bound it broke, when there is one.
    """

    def __init__(self, message: str, *, field: str, limit: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


class PromptError(InvalidRequestError):
    """The prompt is missing, blank after stripping, or longer than the limit."""


class ImageError(InvalidRequestError):
    """The reference image cannot be used."""


class InvalidImageEncodingError(ImageError):
    """The reference image is not valid base64 or a well-formed data URL."""


class ImageTooLargeError(ImageError):
    """The decoded reference image is larger than ``Limits.max_image_bytes``."""


class UnsupportedImageTypeError(ImageError):
    """The bytes are not an image, or not one of PNG, JPEG and WebP."""


class ImageDimensionsError(ImageError):
    """The image's pixel size differs from the requested video size."""


class UnsupportedParameterError(InvalidRequestError):
    """A model, size, duration or media type the provider does not declare."""


class UnknownProviderError(InvalidRequestError):
    """No provider is registered under the requested name."""


class BudgetExceededError(InvalidRequestError):
    """The task's estimated cost would take spending past a limit; nothing was stored or sent.

    ``limit`` is the limit's amount; ``spent`` what its window already holds, ``estimate`` the
    task's cost, both in ``currency``; ``user_id`` is the user limited (``None``: everyone).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: float,
        spent: float,
        estimate: float,
        currency: str,
        user_id: str | None,
    ) -> None:
        super().__init__(message, field="budget", limit=limit)
        self.spent = spent
        self.estimate = estimate
        self.currency = currency
        self.user_id = user_id


class TaskNotFoundError(SoraTasksError, LookupError):
    """No task has that id, or it belongs to another user."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class InvalidTransitionError(SoraTasksError):
    """The state machine forbids the requested change."""


class ConflictError(SoraTasksError):
    """A conditional write lost: the task changed since it was read, or the lease was taken over."""


class DuplicateExternalIdError(SoraTasksError):
    """The provider's job id is already bound to another task."""


class StoreUnavailableError(SoraTasksError):
    """The task store cannot be reached, or stayed locked past its timeout. Retry later.

    A write that raised this did not happen, unless the connection was lost while its commit
    was under way: then the message says that the outcome is unknown. The message names the
    kind of failure but never the connection details (they may carry a password).
    """


class StoreNotMigratedError(StoreUnavailableError):
    """The database has no sora-tasks tables, or an older schema than this code needs.

    Run ``await store.migrate()`` or ``sora-tasks db upgrade`` once. It is a kind of
    :class:`StoreUnavailableError` so that workers started before the migration back off and
    carry on once it has run, instead of dying.
    """


class TaskNotReadyError(SoraTasksError):
    """The task has no downloadable result (it has not completed)."""


class TaskFailedError(SoraTasksError):
    """The awaited task ended in FAILED or CANCELLED; ``task`` holds it, ``task.error`` says why."""

    def __init__(self, task: Task) -> None:
        reason = f": {task.error.code}: {task.error.message}" if task.error else ""
        super().__init__(f"task {task.id} ended {task.status.value}{reason}")
        self.task = task


class WaitTimeoutError(SoraTasksError, TimeoutError):
    """``wait`` ran out of time; the task goes on in the background."""


class ManagerNotRunningError(SoraTasksError, RuntimeError):
    """The call needs a running manager: use ``async with TaskManager(...) as manager``."""


class ConfigError(SoraTasksError, ValueError):
    """The configuration (environment variables, config file) cannot be used; the message says
    where and why, never a secret."""


class DownloadError(SoraTasksError):
    """The content could not be fetched whole; no file was left at the target path."""


class WebhookVerificationError(SoraTasksError):
    """A webhook was refused: missing or malformed headers, a bad signature, a stale timestamp,
    or a body over the size or nesting limit.

    Nothing was changed; answer it with a 400. The message says why (and names the limit it
    broke), and never contains the secret.
    """


class ProviderError(SoraTasksError):
    """A provider call failed. ``retryable`` says whether trying again later may succeed.

    ``request_id`` is the id the provider gave the failed request (its ``x-request-id`` or
    equivalent header), when it answered with one: quote it to the provider's support.
    """

    retryable: bool = False

    def __init__(
        self, message: str, *, provider: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.request_id = request_id


class ProviderUnsupportedError(ProviderError):
    """The provider does not offer this operation."""


class ProviderTransportError(ProviderError):
    """The request failed on the wire (connect error, timeout, dropped connection), or the
    whole call took longer than its total time limit."""

    retryable = True


class ProviderResponseError(ProviderError):
    """The provider answered, but the answer cannot be used: larger or more deeply nested than
    the limit, not the JSON the API promises, or about another job than the one asked about.

    ``limit`` is the bound it broke, when there is one (bytes or nesting levels).
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        limit: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, request_id=request_id)
        self.limit = limit


class SubmissionUncertainError(ProviderError):
    """A create may have reached the provider: it must not be sent again blindly."""

    retryable = False


class ProviderHTTPError(ProviderError):
    """The provider answered with an error status; ``status_code`` and ``code`` say which."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        provider: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, request_id=request_id)
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after


class ProviderAuthError(ProviderHTTPError):
    """The provider refused the credentials (401, 403)."""


class ProviderRejectedError(ProviderHTTPError):
    """The provider rejected the request for good (a final 4xx)."""


class ProviderRateLimitError(ProviderHTTPError):
    """The provider asked us to slow down (429)."""

    retryable = True


class ProviderServerError(ProviderHTTPError):
    """The provider failed (5xx)."""

    retryable = True
