"""Turning resolved :class:`Settings` into providers, a store and a running TaskManager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pydantic

from ._settings import ConfigError, ProviderSettings, Settings
from .archive._base import DEFAULT_KEY_TEMPLATE
from .providers import (
    FalProvider,
    MultipartRelayProvider,
    OpenAIVideosProvider,
    RelayConfig,
    ReplicateProvider,
    RunwayProvider,
    VeoProvider,
)
from .providers._base import Provider
from .providers.openai import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from ._events import TaskEvent
    from ._manager import TaskManager
    from .storage import SQLStore

__all__ = ["build_provider", "build_store", "open_manager"]


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    """One provider from its settings; its key was resolved by :func:`load_settings`."""
    if settings.type == "fake":
        from .testing import FakeBehaviour, FakeProvider

        # fast enough for a demo, slow enough for the progress bar to be seen moving
        return FakeProvider(behaviour=FakeBehaviour(queued_for=0.5, render_for=3.0, poll_after=0.2))
    options: dict[str, Any] = {
        key: value
        for key, value in {"timeout": settings.timeout, "max_retries": settings.max_retries}.items()
        if value is not None
    }
    assert settings.api_key is not None
    if settings.type == "openai":
        return OpenAIVideosProvider(
            settings.api_key,
            # OPENAI_BASE_URL was applied by load_settings, to the provider named "openai" only
            base_url=settings.base_url or DEFAULT_BASE_URL,
            organization=settings.organization,
            project=settings.project,
            name=name,
            **options,
        )
    if settings.type in ("replicate", "fal", "runway", "veo"):
        extra: dict[str, Any] = {
            key: value
            for key, value in {"model": settings.model, "base_url": settings.base_url}.items()
            if value is not None
        }
        if settings.type == "replicate":
            return ReplicateProvider(settings.api_key, name=name, **extra, **options)
        if settings.type == "fal":
            return FalProvider(settings.api_key, name=name, **extra, **options)
        if settings.type == "veo":
            return VeoProvider(settings.api_key, name=name, **extra, **options)
        return RunwayProvider(settings.api_key, name=name, **extra, **options)
    assert settings.base_url is not None
    try:
        dialect = RelayConfig.model_validate(settings.dialect)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"provider {name!r}: dialect.{location}: {first['msg']}") from None
    return MultipartRelayProvider(
        settings.api_key, base_url=settings.base_url, config=dialect, name=name, **options
    )


def build_store(database_url: str | None) -> SQLStore:
    """The SQL store at ``database_url``, or SQLStore's embedded SQLite default."""
    try:
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        from .storage.sql import SQLStore
    except ImportError:
        raise ConfigError(
            'the command line needs the sql extra: pip install "sora-tasks[cli]"'
        ) from None
    try:
        return SQLStore(database_url)
    except NoSuchModuleError as exc:
        raise ConfigError(f"database URL: {exc}") from None
    except ArgumentError:
        # the URL itself is left out: it may hold a password
        raise ConfigError(
            "database URL is not a valid SQLAlchemy URL "
            "(e.g. sqlite+aiosqlite:///tasks.db or postgresql+asyncpg://user@host/db)"
        ) from None


@asynccontextmanager
async def open_manager(
    settings: Settings,
    *,
    poll: bool = False,
    on_event: Callable[[TaskEvent], object] | None = None,
) -> AsyncIterator[TaskManager]:
    """A running manager over every configured provider; ``poll`` starts the polling engine."""
    from ._manager import TaskManager

    providers = {name: build_provider(name, item) for name, item in settings.providers.items()}
    manager = TaskManager(
        providers=providers,
        store=build_store(settings.database_url),
        default_provider=settings.default_provider,
        routes=settings.routes,
        prices=settings.prices,
        budgets=settings.budgets,
        limits=settings.limits,
        policy=settings.policy,
        poll=poll,
        on_event=on_event,
        download_dir=settings.download_dir,
        archive=settings.archive,
        archive_key=settings.archive_key or DEFAULT_KEY_TEMPLATE,
        webhook_secret=settings.webhook_secret,
        webhook_policy=settings.webhook_policy,
    )
    async with manager:
        yield manager
