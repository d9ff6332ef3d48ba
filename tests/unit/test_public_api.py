"""The export lists are the contract: a change here is a change of public API."""

from __future__ import annotations

import sora_tasks
import sora_tasks.providers
import sora_tasks.storage
import sora_tasks.testing

CORE = {
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
    "SignedWebhooks",
    "SkippedProvider",
    "SoraTasksError",
    "StoreNotMigratedError",
    "StoreUnavailableError",
    "SubmissionUncertainError",
    "SyncTaskManager",
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
}


def test_core_exports_are_locked() -> None:
    assert set(sora_tasks.__all__) == CORE
    for name in sora_tasks.__all__:
        assert getattr(sora_tasks, name) is not None


def test_subpackage_exports_named_in_the_design() -> None:
    assert {"InMemoryStore", "TaskStore"} <= set(sora_tasks.storage.__all__)
    assert {
        "Provider",
        "ProviderCapabilities",
        "ProviderJob",
        "SubmitRequest",
        "ContentStream",
        "FalProvider",
        "VeoProvider",
    } <= set(sora_tasks.providers.__all__)
    assert {
        "FakeProvider",
        "FalSimulatorHarness",
        "VeoSimulatorHarness",
        "create_simulator_app",
    } <= set(sora_tasks.testing.__all__)


def test_every_error_derives_from_the_root() -> None:
    for name in sora_tasks.__all__:
        value = getattr(sora_tasks, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, sora_tasks.SoraTasksError), name


def test_public_names_have_docstrings() -> None:
    for name in sora_tasks.__all__:
        value = getattr(sora_tasks, name)
        if isinstance(value, type):
            assert value.__doc__, name


def test_archive_exports_are_locked_and_documented() -> None:
    import sora_tasks.archive

    assert set(sora_tasks.archive.__all__) == {
        "DEFAULT_KEY_TEMPLATE",
        "Archive",
        "ArchiveError",
        "ArchiveProblem",
        "ArchivedObject",
        "InvalidArchiveError",
        "ObstoreArchive",
        "archive_key",
        "archive_stream",
        "check_key_template",
        "open_archive",
        "verify_archive",
    }
    for name in sora_tasks.archive.__all__:
        value = getattr(sora_tasks.archive, name)
        if callable(value):
            assert value.__doc__, name
    assert issubclass(sora_tasks.archive.ArchiveError, sora_tasks.SoraTasksError)
    assert issubclass(sora_tasks.archive.InvalidArchiveError, sora_tasks.InvalidRequestError)
