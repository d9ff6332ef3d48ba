"""Configuration from flags, environment, a TOML file and defaults, in that order.

The command line reads it for every command, and ``TaskManager()`` without providers reads it
the same way (:mod:`sora_tasks._build`). pydantic-settings merges the layers: the flags come in
as init values, then the environment (``SORA_TASKS_*`` and each provider type's conventional key
variable), then the file, found by the first two. The file (``--config``, else
``$SORA_TASKS_CONFIG``, else ``./sora-tasks.toml``, else ``config.toml`` in the user config
directory) may name several providers, and routes over them (``[routes]``
``veo = ["veo", "fal:fal-ai/veo3.1"]``), a price table of its own laid over the shipped one
(``prices = "prices.csv"``) and spending limits (``[budgets]``). Keys are referred to by the name
of the environment variable that holds them (``api_key_env``); a key written in the file itself
is accepted with a warning. Nothing here ever puts a key in a message.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ._budgets import BudgetLimit, Budgets
from ._durations import parse_duration
from ._exceptions import ConfigError
from ._models import Limits
from ._outbox import WebhookPolicy
from ._policy import PollingPolicy
from ._prices import PriceTable

__all__ = [
    "FAKE",
    "KEY_VARIABLES",
    "OPENAI",
    "BudgetSettings",
    "ConfigError",
    "Flags",
    "ProviderSettings",
    "Settings",
    "database_url",
    "key_variables_hint",
    "load_settings",
]

FAKE = "fake"
OPENAI = "openai"
RETIRED_OPENAI = (
    "OpenAI's own video endpoint (api.openai.com/v1/videos) was shut down on 2026-09-24: set "
    "OPENAI_BASE_URL to the OpenAI-compatible server to use (a relay or a self-hosted one)"
)
LOCAL_CONFIG = Path("sora-tasks.toml")

_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderSettings(_Strict):
    """One named provider of the file: ``[providers.<name>]``.

    ``dialect`` holds :class:`~sora_tasks.providers.RelayConfig` fields for ``type = "relay"``;
    ``model`` is the default model (``type = "replicate"``, ``"fal"``, ``"runway"`` or
    ``"veo"``). A provider's key is read from ``api_key_env``, else from its conventional
    variable (``REPLICATE_API_TOKEN``, ``FAL_KEY``, ``RUNWAYML_API_SECRET``, ``GEMINI_API_KEY``,
    ...).
    """

    type: Literal["openai", "relay", "fake", "replicate", "fal", "runway", "veo"]
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    timeout: float | None = pydantic.Field(None, gt=0)
    max_retries: int | None = pydantic.Field(None, ge=0)
    organization: str | None = None
    project: str | None = None
    dialect: dict[str, Any] = pydantic.Field(default_factory=dict)


class BudgetSettings(_Strict):
    """The ``[budgets]`` table: limits per user and overall, over one rolling ``window``."""

    per_user: float | None = pydantic.Field(None, gt=0)
    overall: float | None = pydantic.Field(None, gt=0)
    window: str = "1d"
    currency: str = "USD"
    alert_at: tuple[float, ...] = (0.8,)

    def budgets(self) -> Budgets:
        """The :class:`Budgets` this table describes."""
        try:
            window = parse_duration(self.window)

            def limit(amount: float | None) -> BudgetLimit | None:
                if amount is None:
                    return None
                return BudgetLimit(amount, window=window, currency=self.currency)

            return Budgets(
                per_user=limit(self.per_user),
                overall=limit(self.overall),
                alert_at=self.alert_at,
            )
        except ValueError as exc:
            raise ConfigError(f"budgets: {exc}") from None


class _File(_Strict):
    default_provider: str | None = None
    database_url: str | None = None
    download_dir: Path | None = None
    archive: str | None = None
    archive_key: str | None = None
    providers: dict[str, ProviderSettings] = pydantic.Field(default_factory=dict)
    routes: dict[str, list[str]] = pydantic.Field(default_factory=dict)
    prices: Path | None = None
    budgets: BudgetSettings | None = None
    policy: dict[str, Any] = pydantic.Field(default_factory=dict)
    limits: dict[str, Any] = pydantic.Field(default_factory=dict)
    webhooks: dict[str, Any] = pydantic.Field(default_factory=dict)


@dataclass(frozen=True)
class Flags:
    """What the command line itself says; ``None`` leaves the choice to the lower layers."""

    config: Path | None = None
    database_url: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one invocation.

    ``providers`` holds every usable provider by name, keys resolved; ``fallback`` is true when
    none was configured and the built-in fake provider stands in. ``notes`` are warnings for the
    user (a key in the file, a provider left out), free of secrets.
    """

    providers: Mapping[str, ProviderSettings]
    default_provider: str
    routes: Mapping[str, list[str]] = field(default_factory=dict)
    prices: PriceTable | None = None
    budgets: Budgets | None = None
    database_url: str | None = None
    download_dir: Path | None = None
    archive: str | None = None
    archive_key: str | None = None
    policy: PollingPolicy = field(default_factory=PollingPolicy)
    limits: Limits = field(default_factory=Limits)
    webhook_secret: SecretStr | None = None
    webhook_policy: WebhookPolicy = field(default_factory=WebhookPolicy)
    config_file: Path | None = None
    fallback: bool = False
    notes: tuple[str, ...] = ()


class _Layers(BaseSettings):
    """What the flags, the environment and the config file say, merged in that order over the
    defaults by pydantic-settings (see :meth:`settings_customise_sources`)."""

    model_config = SettingsConfigDict(env_prefix="SORA_TASKS_", env_ignore_empty=True, frozen=True)

    # --config, SORA_TASKS_CONFIG; then the file found where files are looked for
    config: Path | None = None
    # --provider, SORA_TASKS_PROVIDER, the file's default_provider
    provider: str | None = None
    # --database-url, SORA_TASKS_DATABASE_URL, the file's database_url
    database_url: str | None = None
    # SORA_TASKS_ARCHIVE, the file's archive
    archive: str | None = None
    # the rest of the file, which has no other layer
    file: _File = pydantic.Field(default_factory=_File)
    # each provider type's conventional key variables, the first one set wins (environment only)
    openai: SecretStr | None = pydantic.Field(None, validation_alias="OPENAI_API_KEY")
    replicate: SecretStr | None = pydantic.Field(None, validation_alias="REPLICATE_API_TOKEN")
    veo: SecretStr | None = pydantic.Field(
        None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    fal: SecretStr | None = pydantic.Field(None, validation_alias="FAL_KEY")
    runway: SecretStr | None = pydantic.Field(None, validation_alias="RUNWAYML_API_SECRET")
    openai_base_url: str | None = pydantic.Field(None, validation_alias="OPENAI_BASE_URL")
    # the deployment's secret for signing outgoing webhooks: the environment only, never the file
    webhook_secret: SecretStr | None = pydantic.Field(
        None, validation_alias="SORA_TASKS_WEBHOOK_SECRET"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as init values), then the environment, then the config file."""
        return init_settings, _Environment(settings_cls), _ConfigFile(settings_cls)

    def key(self, kind: str) -> SecretStr | None:
        """The key the conventional variables of provider type ``kind`` hold, if any."""
        value = getattr(self, kind) if kind in KEY_VARIABLES else None
        return value if isinstance(value, SecretStr) else None


class _Environment(EnvSettingsSource):
    """The environment, for every layered value except the file's own content."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "file":
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _ConfigFile(PydanticBaseSettingsSource):
    """The config file named by the layers above it, or found in the usual places."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read at once in __call__

    def __call__(self) -> dict[str, Any]:
        named = self.current_state.get("config")
        flagged = "config" in self.settings_sources_data.get("InitSettingsSource", {})
        where = "--config" if flagged else "SORA_TASKS_CONFIG"
        path = find_config_file(Path(named) if named is not None else None, where)
        if path is None:
            return {}
        file = _read(path)
        layered = {
            "provider": file.default_provider,
            "database_url": file.database_url,
            "archive": file.archive,
        }
        values = {name: value for name, value in layered.items() if value is not None}
        return {**values, "config": path, "file": file}


def _variables(info: FieldInfo) -> tuple[str, ...]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (str(alias),)


KEY_VARIABLES: Mapping[str, tuple[str, ...]] = {
    kind: _variables(_Layers.model_fields[kind])
    for kind in ("openai", "replicate", "veo", "fal", "runway")
}
"""Each provider type's conventional key variables (fields of ``_Layers``). A provider named
after its type is configured when one is set (``openai`` also needs ``OPENAI_BASE_URL``: see
:data:`RETIRED_OPENAI`). A new type is one field there, and one branch in
``_build.build_provider``."""


def key_variables_hint() -> str:
    """The variables that configure a provider, for messages: ``A with B, C or D, E``."""
    return ", ".join(
        "OPENAI_API_KEY with OPENAI_BASE_URL" if kind == OPENAI else " or ".join(names)
        for kind, names in KEY_VARIABLES.items()
    )


def find_config_file(named: Path | None, where: str) -> Path | None:
    """The file to read: one ``named`` (by ``where``) must exist; the implicit ones are used if
    present."""
    if named is not None:
        if not named.is_file():
            raise ConfigError(f"config file {str(named)!r} ({where}) does not exist")
        return named
    for candidate in (LOCAL_CONFIG, _user_config()):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _user_config() -> Path | None:
    try:
        import platformdirs
    except ImportError:  # installed with the sql extra; without it there is no user directory
        return None
    return Path(platformdirs.user_config_dir("sora-tasks")) / "config.toml"


def load_settings(flags: Flags) -> Settings:
    """Merge flags, environment, file and defaults, in that order of precedence."""
    given = {name: value for name, value in asdict(flags).items() if value is not None}
    layers = _Layers(**given)
    file, path = layers.file, layers.config
    notes: list[str] = []
    providers = _providers(layers, notes)
    default = layers.provider or next(iter(providers), FAKE)
    fallback = not providers
    if default == FAKE and FAKE not in providers:
        providers[FAKE] = ProviderSettings(type="fake")
    routes = _routes(file.routes, providers, {*file.providers, *KEY_VARIABLES}, notes)
    if default not in providers and default not in routes:
        known = ", ".join(sorted({*providers, *routes}))
        hint = " (set OPENAI_API_KEY and OPENAI_BASE_URL to use it)" if default == OPENAI else ""
        if flags.provider is not None:
            where = "--provider"
        elif default != file.default_provider:
            where = "SORA_TASKS_PROVIDER"
        else:
            where = f"default_provider in {str(path)!r}"
        raise ConfigError(f"no provider named {default!r} ({where}){hint}; configured: {known}")
    return Settings(
        providers=providers,
        default_provider=default,
        routes=routes,
        prices=_prices(file.prices, path),
        budgets=file.budgets.budgets() if file.budgets is not None else None,
        database_url=database_url(layers.database_url),
        download_dir=file.download_dir,
        archive=layers.archive,
        archive_key=file.archive_key,
        policy=_model(PollingPolicy, _policy_table(file.policy), "policy"),
        limits=_model(Limits, file.limits, "limits"),
        webhook_secret=layers.webhook_secret,
        webhook_policy=_model(WebhookPolicy, file.webhooks, "webhooks"),
        config_file=path,
        fallback=fallback,
        notes=tuple(notes),
    )


def _read(path: Path) -> _File:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    return _model(_File, data, f"config file {str(path)!r}")


def _providers(layers: _Layers, notes: list[str]) -> dict[str, ProviderSettings]:
    providers: dict[str, ProviderSettings] = {}
    declared = dict(layers.file.providers)
    retired = False
    if OPENAI not in declared and layers.openai_base_url:
        declared[OPENAI] = ProviderSettings(type="openai")
    elif OPENAI not in declared and layers.openai is not None:
        # a key alone would send every job to an endpoint that no longer exists
        retired = True
        notes.append(f"OPENAI_API_KEY is set but no provider was made of it: {RETIRED_OPENAI}")
    for kind in KEY_VARIABLES:
        if kind != OPENAI and kind not in declared and layers.key(kind) is not None:
            declared[kind] = ProviderSettings(type=kind)
    for name, settings in declared.items():
        if settings.api_key is not None:
            notes.append(
                f"config file {str(layers.config)!r} holds the API key of provider {name!r}; "
                'prefer api_key_env = "VARIABLE" and keep the key in the environment'
            )
        resolved = _resolve(name, settings, layers)
        if resolved is None:
            variables = (
                (settings.api_key_env,)
                if settings.api_key_env
                else KEY_VARIABLES.get(settings.type, ())
            )
            notes.append(
                f"provider {name!r} left out: environment variable "
                f"{' or '.join(variables)} is not set"
            )
            continue
        providers[name] = resolved
    if retired and not providers:
        raise ConfigError(f"no provider configured: {RETIRED_OPENAI}")
    return providers


def _prices(table: Path | None, config: Path | None) -> PriceTable | None:
    """The shipped price table with the file's own laid over it (relative to the file)."""
    if table is None:
        return None
    if not table.is_absolute() and config is not None:
        table = config.parent / table
    try:
        return PriceTable.shipped().extended(PriceTable.load(table))
    except OSError as exc:
        raise ConfigError(f"prices: cannot read {str(table)!r}: {exc.strerror}") from None


def _routes(
    declared: Mapping[str, list[str]],
    providers: Mapping[str, ProviderSettings],
    known: set[str],
    notes: list[str],
) -> dict[str, list[str]]:
    """The file's routes, each without the providers left out (a key not set): a route keeps
    working on the providers that are configured, and says which are missing. A provider the
    file does not declare at all is an error."""
    routes: dict[str, list[str]] = {}
    for name, steps in declared.items():
        names = [step.partition(":")[0].strip() for step in steps]
        for provider in names:
            if provider not in providers and provider not in known:
                raise ConfigError(f"route {name!r} names provider {provider!r}, not declared")
        kept = [step for step, provider in zip(steps, names, strict=True) if provider in providers]
        missing = [step for step in steps if step not in kept]
        if missing:
            notes.append(f"route {name!r} goes without {', '.join(missing)} (not configured)")
        if not kept:
            raise ConfigError(f"route {name!r}: none of its providers is configured")
        routes[name] = kept
    return routes


def _resolve(name: str, settings: ProviderSettings, layers: _Layers) -> ProviderSettings | None:
    """Fill in the key and base URL from the environment; ``None`` when the key is missing."""
    if settings.type == "fake":
        return settings
    changes: dict[str, object] = {}
    if name == OPENAI and layers.openai_base_url:
        changes["base_url"] = layers.openai_base_url
    key: SecretStr | None = None
    if settings.api_key_env is not None:
        # a variable the file names: read as it is, there is no field for it
        value = os.environ.get(settings.api_key_env)
        key = SecretStr(value) if value else None
    elif settings.api_key is None or name == settings.type:
        key = layers.key(settings.type)
    if key is not None:
        changes["api_key"] = key
    elif settings.api_key is None:
        if settings.type == "relay" and settings.api_key_env is None:
            raise ConfigError(f"provider {name!r}: a relay needs api_key_env (or api_key)")
        return None
    if settings.type == "relay" and not (changes.get("base_url") or settings.base_url):
        raise ConfigError(f"provider {name!r}: a relay needs base_url")
    return settings.model_copy(update=changes)


def database_url(value: str | None) -> str | None:
    """A SQLAlchemy URL as given, or a bare path as an SQLite file URL."""
    if value is None or "://" in value:
        return value
    # a bare path names an SQLite file
    return f"sqlite+aiosqlite:///{Path(value).expanduser()}"


def _policy_table(table: Mapping[str, Any]) -> dict[str, Any]:
    policy = dict(table)
    deadline = policy.get("deadline")
    if isinstance(deadline, str):
        try:
            policy["deadline"] = parse_duration(deadline)
        except ValueError as exc:
            raise ConfigError(f"policy.deadline: {exc}") from None
    return policy


def _model(model: type[_M], data: Mapping[str, Any], where: str) -> _M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        # the input is left out on purpose: it may be a key
        first = exc.errors(include_input=False, include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {location}: {first['msg']}") from None
