"""The keyword arguments that pass through ``**options``, typed, so a misspelt one is caught.

``generate(prompt, **options)`` hands its options to :meth:`TaskManager.create`, and
``SyncTaskManager(**options)`` to :class:`TaskManager`. Typed as ``Unpack`` of the dicts here,
``generate("a cat", secnds=4)`` is a type-checker error; at run time, :func:`check_options`
makes it a ``TypeError`` that names the closest valid argument.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

import pydantic

from ._models import Limits, MediaType
from ._policy import PollingPolicy

if TYPE_CHECKING:
    from ._budgets import BudgetAlert, Budgets
    from ._circuits import CircuitPolicy
    from ._events import TaskEvent
    from ._outbox import WebhookPolicy
    from ._prices import PriceTable
    from .archive._base import Archive
    from .providers._base import Provider
    from .storage._base import TaskStore

__all__ = ["CreateOptions", "ManagerOptions", "check_options"]


class CreateOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`TaskManager.create` (all but ``prompt``)."""

    model: str | None
    size: str | None
    seconds: int | None
    aspect_ratio: str | None
    resolution: str | None
    reference_image: bytes | os.PathLike[str] | str | None
    last_frame: bytes | os.PathLike[str] | str | None
    reference_images: Sequence[bytes | os.PathLike[str] | str]
    negative_prompt: str | None
    seed: int | None
    audio: bool | None
    provider_options: Mapping[str, Any] | None
    user_id: str | None
    provider: str | None
    media_type: MediaType
    metadata: Mapping[str, Any] | None
    priority: int
    deadline: timedelta | None
    allow_unsupported: bool
    notify_url: str | None
    notify_progress: bool | None


class ManagerOptions(TypedDict, total=False):
    """The keyword arguments of :class:`TaskManager`."""

    providers: Mapping[str, Provider] | Provider | None
    store: TaskStore | None
    default_provider: str | None
    limits: Limits | None
    policy: PollingPolicy | None
    poll: bool
    on_event: Callable[[TaskEvent], object] | None
    download_dir: str | os.PathLike[str] | None
    checksum_downloads: bool
    clock: Callable[[], datetime]
    webhook_secrets: Mapping[str, str | pydantic.SecretStr] | None
    archive: Archive | str | None
    archive_key: str
    routes: Mapping[str, Sequence[str]] | None
    circuit: CircuitPolicy | None
    prices: PriceTable | None
    budgets: Budgets | None
    on_budget_alert: Callable[[BudgetAlert], object] | None
    notify_url: str | None
    notify_progress: bool
    webhook_secret: str | pydantic.SecretStr | None
    webhook_policy: WebhookPolicy | None


def check_options(function: str, given: Iterable[str], allowed: type[Any]) -> None:
    """Raise ``TypeError`` for a keyword of ``given`` that ``allowed`` (a TypedDict) lacks."""
    names: frozenset[str] = allowed.__optional_keys__ | allowed.__required_keys__
    for name in given:
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}{hint}")
