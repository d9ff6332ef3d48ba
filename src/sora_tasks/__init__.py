"""sora_tasks: AI video-generation jobs done right.

Submit a job to a provider, track it under our id and the provider's, poll it crash-safely,
fetch the video before its link expires, and never pay twice for one job.
"""

import logging

from ._budgets import BudgetAlert, BudgetLimit, Budgets
from ._circuits import CircuitPolicy, CircuitState, ProviderHealth
from ._events import TaskEvent
from ._exceptions import (
    BudgetExceededError,
    ConfigError,
    ConflictError,
    DownloadError,
    DuplicateExternalIdError,
    ImageDimensionsError,
    ImageError,
    ImageTooLargeError,
    InvalidImageEncodingError,
    InvalidRequestError,
    InvalidTransitionError,
    ManagerNotRunningError,
    PromptError,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTransportError,
    ProviderUnsupportedError,
    SoraTasksError,
    StoreNotMigratedError,
    StoreUnavailableError,
    SubmissionUncertainError,
    TaskFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    UnknownProviderError,
    UnsupportedImageTypeError,
    UnsupportedParameterError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from ._health import Health
from ._manager import TaskManager
from ._models import (
    GenerationRequest,
    Limits,
    MediaType,
    ReferenceImage,
    RouteStep,
    SkippedProvider,
    Task,
    TaskCost,
    TaskError,
    TaskPage,
    TaskResult,
    TaskStats,
    TaskStatus,
)
from ._options import CreateOptions, ManagerOptions
from ._outbox import WebhookDelivery, WebhookPolicy, WebhookState
from ._policy import PollingPolicy
from ._prices import Price, PriceTable, PriceTableError
from ._schedule import PollSchedule
from ._sync import SyncTaskManager
from ._version import __version__
from ._webhooks import (
    MemoryDeduplicator,
    SignedWebhooks,
    VerifiedWebhook,
    WebhookDeduplicator,
    WebhookReceiver,
    WebhookResult,
)

# a library logs but never configures logging: without a handler of the application's, its
# records go nowhere (and not to Python's last-resort stderr handler)
logging.getLogger("sora_tasks").addHandler(logging.NullHandler())

__all__ = [
    "BudgetAlert",
    "BudgetExceededError",
    "BudgetLimit",
    "Budgets",
    "CircuitPolicy",
    "CircuitState",
    "ConfigError",
    "ConflictError",
    "CreateOptions",
    "DownloadError",
    "DuplicateExternalIdError",
    "GenerationRequest",
    "Health",
    "ImageDimensionsError",
    "ImageError",
    "ImageTooLargeError",
    "InvalidImageEncodingError",
    "InvalidRequestError",
    "InvalidTransitionError",
    "Limits",
    "MemoryDeduplicator",
    "ManagerNotRunningError",
    "ManagerOptions",
    "MediaType",
    "PollSchedule",
    "PollingPolicy",
    "Price",
    "PriceTable",
    "PriceTableError",
    "PromptError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderHealth",
    "ProviderRateLimitError",
    "ProviderRejectedError",
    "ProviderResponseError",
    "ProviderServerError",
    "ProviderTransportError",
    "ProviderUnsupportedError",
    "ReferenceImage",
    "RouteStep",
    "SkippedProvider",
    "SoraTasksError",
    "StoreNotMigratedError",
    "StoreUnavailableError",
    "SubmissionUncertainError",
    "SyncTaskManager",
    "SignedWebhooks",
    "Task",
    "TaskCost",
    "TaskError",
    "TaskEvent",
    "TaskFailedError",
    "TaskManager",
    "TaskNotFoundError",
    "TaskNotReadyError",
    "TaskPage",
    "TaskResult",
    "TaskStats",
    "TaskStatus",
    "UnknownProviderError",
    "UnsupportedImageTypeError",
    "UnsupportedParameterError",
    "VerifiedWebhook",
    "WaitTimeoutError",
    "WebhookDeduplicator",
    "WebhookDelivery",
    "WebhookPolicy",
    "WebhookReceiver",
    "WebhookResult",
    "WebhookState",
    "WebhookVerificationError",
    "__version__",
]
