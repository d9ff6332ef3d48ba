"""The CLI's configuration: flags over environment over the TOML file over defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest

from sora_tasks._build import build_provider, build_store
from sora_tasks._durations import parse_duration
from sora_tasks._settings import (
    KEY_VARIABLES,
    ConfigError,
    Flags,
    ProviderSettings,
    Settings,
    load_settings,
)
from sora_tasks.providers import (
    FalProvider,
    MultipartRelayProvider,
    OpenAIVideosProvider,
    ReplicateProvider,
    RunwayProvider,
    VeoProvider,
)
from sora_tasks.testing import FakeProvider

CANARY = "sk-canary-7d1e0b"

TWO_PROVIDERS = """
default_provider = "main"
database_url = "sqlite+aiosqlite:///from-file.db"

[providers.main]
type = "openai"
base_url = "https://main.example/v1"
api_key_env = "MAIN_KEY"

[providers.relay]
type = "relay"
base_url = "https://relay.example"
api_key_env = "RELAY_KEY"

[providers.relay.dialect]
path_prefix = "/api/v2/videos"
auth_scheme = "raw"

[policy]
deadline = "90m"
max_poll_failures = 3

[policy.schedule]
first_interval = 0.5

[limits]
max_prompt_chars = 500
"""

KEYS = {"MAIN_KEY": "main-secret", "RELAY_KEY": "relay-secret"}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./sora-tasks.toml or user config file may leak into a test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))


def load(flags: Flags, env: Mapping[str, str]) -> Settings:
    """The settings with ``env`` as the only variables set of those the layers read."""
    ours = {"OPENAI_BASE_URL", *(name for names in KEY_VARIABLES.values() for name in names)}
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name in ours or name.upper().startswith("SORA_TASKS_"):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings(flags)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def secret(settings: Settings, provider: str) -> str:
    key = settings.providers[provider].api_key
    assert key is not None
    return key.get_secret_value()


def test_nothing_configured_falls_back_to_the_fake_provider_and_the_default_database() -> None:
    settings = load(Flags(), {})
    assert settings.fallback
    assert settings.default_provider == "fake"
    assert set(settings.providers) == {"fake"}
    assert settings.database_url is None
    assert settings.config_file is None


def test_openai_environment_variables_configure_the_openai_provider() -> None:
    env = {"OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    settings = load(Flags(), env)
    assert not settings.fallback
    assert settings.default_provider == "openai"
    assert settings.providers["openai"].base_url == "http://127.0.0.1:9/v1"
    assert secret(settings, "openai") == CANARY


def test_an_aggregators_conventional_variable_configures_it() -> None:
    settings = load(Flags(), {"REPLICATE_API_TOKEN": CANARY})
    assert settings.default_provider == "replicate"
    assert settings.providers["replicate"].type == "replicate"
    assert secret(settings, "replicate") == CANARY
    built = build_provider("replicate", settings.providers["replicate"])
    assert isinstance(built, ReplicateProvider)
    assert CANARY not in repr(built)


def test_gemini_api_key_alone_configures_veo(tmp_path: Path) -> None:
    settings = load(Flags(), {"GEMINI_API_KEY": CANARY})
    assert settings.providers["veo"].type == "veo"
    assert secret(settings, "veo") == CANARY
    built = build_provider("veo", settings.providers["veo"])
    assert isinstance(built, VeoProvider) and CANARY not in repr(built)
    config = write(
        tmp_path / "c.toml",
        '[providers.google]\ntype = "veo"\nmodel = "veo-3.1-fast-generate-preview"\n',
    )
    named = load(Flags(config=config), {"GEMINI_API_KEY": CANARY})
    fast = build_provider("google", named.providers["google"])
    assert fast.capabilities.default_model == "veo-3.1-fast-generate-preview"


def test_a_file_names_a_model_on_an_aggregator(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[providers.veo]\ntype = "replicate"\nmodel = "google/veo-3.1-fast"\n'
        'api_key_env = "TEAM_REPLICATE"\n',
    )
    settings = load(Flags(config=config), {"TEAM_REPLICATE": CANARY})
    provider = build_provider("veo", settings.providers["veo"])
    assert isinstance(provider, ReplicateProvider)
    assert provider.capabilities.default_model == "google/veo-3.1-fast"
    left_out = load(Flags(config=config), {})
    assert any("TEAM_REPLICATE is not set" in note for note in left_out.notes)


def test_runways_conventional_variable_configures_it() -> None:
    settings = load(Flags(), {"RUNWAYML_API_SECRET": CANARY})
    assert settings.default_provider == "runway"
    assert secret(settings, "runway") == CANARY
    built = build_provider("runway", settings.providers["runway"])
    assert isinstance(built, RunwayProvider)
    assert built.capabilities.default_model == "gen4_turbo"
    assert CANARY not in repr(built)


def test_a_file_names_a_model_on_runway(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[providers.runway-veo]\ntype = "runway"\nmodel = "veo3.1"\n'
        'base_url = "http://127.0.0.1:9/runway/v1"\n',
    )
    settings = load(Flags(config=config), {"RUNWAYML_API_SECRET": CANARY})
    provider = build_provider("runway-veo", settings.providers["runway-veo"])
    assert isinstance(provider, RunwayProvider)
    assert provider.capabilities.default_model == "veo3.1"
    assert "127.0.0.1:9/runway/v1" in repr(provider)
    left_out = load(Flags(config=config), {})
    assert any("RUNWAYML_API_SECRET is not set" in note for note in left_out.notes)


def test_a_file_names_several_providers_with_keys_taken_from_the_environment(
    tmp_path: Path,
) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    settings = load(Flags(config=config), KEYS)
    assert settings.default_provider == "main"
    assert set(settings.providers) == {"main", "relay"}
    assert secret(settings, "main") == "main-secret"
    assert secret(settings, "relay") == "relay-secret"
    assert settings.providers["relay"].dialect == {
        "path_prefix": "/api/v2/videos",
        "auth_scheme": "raw",
    }
    assert settings.policy.deadline == timedelta(minutes=90)
    assert settings.policy.max_poll_failures == 3
    assert settings.policy.schedule is not None
    assert settings.policy.schedule.first_interval == 0.5
    assert settings.limits.max_prompt_chars == 500
    assert settings.notes == ()


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, "main"),
        (None, {"SORA_TASKS_PROVIDER": "relay"}, "relay"),
        ("main", {"SORA_TASKS_PROVIDER": "relay"}, "main"),
        ("fake", {}, "fake"),
    ],
)
def test_the_default_provider_is_the_flag_then_the_environment_then_the_file(
    tmp_path: Path, flag: str | None, env: dict[str, str], expected: str
) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    settings = load(Flags(config=config, provider=flag), {**KEYS, **env})
    assert settings.default_provider == expected
    assert expected in settings.providers


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, None, "sqlite+aiosqlite:///from-file.db"),
        (None, "postgresql+asyncpg://u@h/env", "postgresql+asyncpg://u@h/env"),
        (
            "sqlite+aiosqlite:///flag.db",
            "postgresql+asyncpg://u@h/env",
            "sqlite+aiosqlite:///flag.db",
        ),
        ("tasks.db", None, "sqlite+aiosqlite:///tasks.db"),
    ],
)
def test_the_database_is_the_flag_then_the_environment_then_the_file(
    tmp_path: Path, flag: str | None, env: str | None, expected: str
) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    environment = {**KEYS, **({"SORA_TASKS_DATABASE_URL": env} if env else {})}
    settings = load(Flags(config=config, database_url=flag), environment)
    assert settings.database_url == expected


def test_the_config_file_is_the_flag_then_the_environment_then_local_then_user(
    tmp_path: Path,
) -> None:
    user = write(tmp_path / "user-config" / "sora-tasks" / "config.toml", "")
    assert load(Flags(), {}).config_file == user
    local = write(tmp_path / "sora-tasks.toml", "")
    assert load(Flags(), {}).config_file == Path("sora-tasks.toml")
    assert local.is_file()
    from_env = write(tmp_path / "env.toml", "")
    assert load(Flags(), {"SORA_TASKS_CONFIG": str(from_env)}).config_file == from_env
    flag = write(tmp_path / "flag.toml", "")
    assert load(Flags(config=flag), {"SORA_TASKS_CONFIG": str(from_env)}).config_file == flag


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(SORA_TASKS_CONFIG\) does not exist"):
        load(Flags(), {"SORA_TASKS_CONFIG": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match=r"\(--config\) does not exist"):
        load(Flags(config=tmp_path / "missing.toml"), {})


def test_openai_base_url_overrides_the_file_for_the_provider_named_openai_only(
    tmp_path: Path,
) -> None:
    config = write(
        tmp_path / "c.toml",
        '[providers.openai]\ntype = "openai"\nbase_url = "https://file.example/v1"\n'
        '[providers.other]\ntype = "openai"\nbase_url = "https://other.example/v1"\n'
        'api_key_env = "OTHER_KEY"\n',
    )
    env = {"OPENAI_API_KEY": "k", "OTHER_KEY": "o", "OPENAI_BASE_URL": "https://env.example/v1"}
    settings = load(Flags(config=config), env)
    assert settings.providers["openai"].base_url == "https://env.example/v1"
    assert settings.providers["other"].base_url == "https://other.example/v1"


def test_a_key_written_in_the_file_works_with_a_warning_that_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    config = write(
        tmp_path / "c.toml",
        f'[providers.inline]\ntype = "openai"\napi_key = "{CANARY}"\n',
    )
    settings = load(Flags(config=config), {})
    assert secret(settings, "inline") == CANARY
    assert len(settings.notes) == 1
    assert "api_key_env" in settings.notes[0]
    assert CANARY not in repr(settings)
    assert all(CANARY not in note for note in settings.notes)


def test_the_environment_key_of_the_openai_provider_beats_one_in_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[providers.openai]\ntype = "openai"\napi_key = "file"\n')
    settings = load(Flags(config=config), {"OPENAI_API_KEY": "env"})
    assert secret(settings, "openai") == "env"


def test_a_provider_whose_key_variable_is_unset_is_left_out_with_a_note(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    settings = load(Flags(config=config), {"MAIN_KEY": "m"})
    assert set(settings.providers) == {"main"}
    assert any("RELAY_KEY" in note for note in settings.notes)


def test_choosing_a_provider_that_is_left_out_is_an_error_naming_it(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    with pytest.raises(ConfigError, match="no provider named 'relay'"):
        load(Flags(config=config, provider="relay"), {"MAIN_KEY": "m"})


def test_an_unknown_provider_is_an_error_naming_where_it_was_chosen(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", 'default_provider = "nope"\n[providers.main]\ntype = "fake"\n'
    )
    with pytest.raises(ConfigError, match=r"'nope' \(default_provider in '.*c\.toml'\)"):
        load(Flags(config=config), {})
    with pytest.raises(ConfigError, match=r"'gone' \(SORA_TASKS_PROVIDER\); configured: main"):
        load(Flags(config=config), {"SORA_TASKS_PROVIDER": "gone"})
    with pytest.raises(ConfigError, match=r"'flag' \(--provider\)"):
        load(Flags(config=config, provider="flag"), {"SORA_TASKS_PROVIDER": "gone"})


def test_choosing_openai_without_a_key_says_which_variable_to_set() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load(Flags(provider="openai"), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_provider = [", "not valid TOML"),
        ("colour = 'blue'", "colour: Extra inputs are not permitted"),
        ('[providers.x]\ntype = "carrier-pigeon"', "providers.x.type"),
        ('[providers.r]\ntype = "relay"\nbase_url = "https://r.example"', "api_key_env"),
        ('[providers.r]\ntype = "relay"\napi_key = "k"', "base_url"),
        ('[policy]\ndeadline = "soon"', "policy.deadline"),
        ("[policy]\nmax_poll_failures = 0", "policy: max_poll_failures"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=message):
        load(Flags(config=config), {})


def test_a_config_error_never_quotes_the_offending_value(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", f'[providers.x]\ntype = "openai"\ntimeout = "{CANARY}"\n')
    with pytest.raises(ConfigError) as raised:
        load(Flags(config=config), {})
    assert "providers.x.timeout" in str(raised.value)
    assert CANARY not in str(raised.value)


def test_providers_are_built_from_their_settings(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    settings = load(Flags(config=config, provider="fake"), KEYS)
    built = {name: build_provider(name, item) for name, item in settings.providers.items()}
    assert isinstance(built["main"], OpenAIVideosProvider)
    assert "main.example" in repr(built["main"])
    assert isinstance(built["relay"], MultipartRelayProvider)
    assert isinstance(built["fake"], FakeProvider)


def test_a_bad_relay_dialect_is_a_config_error() -> None:
    settings = ProviderSettings.model_validate(
        {"type": "relay", "base_url": "https://r", "api_key": "k", "dialect": {"auth": 1}}
    )
    with pytest.raises(ConfigError, match=r"provider 'r': dialect\.auth"):
        build_provider("r", settings)


def test_a_bad_database_url_is_a_config_error_that_hides_the_url() -> None:
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL") as raised:
        build_store(f"::{CANARY}::")
    assert CANARY not in str(raised.value)
    with pytest.raises(ConfigError, match="nosuchdb"):
        build_store("nosuchdb://somewhere/db")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("45", timedelta(seconds=45)),
        ("0", timedelta(0)),
        (" 1.5 h ", timedelta(minutes=90)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "d", "30x", "-5", "1h-3m", "nan", "inf", "3dd", "9" * 400 + "w"]
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


FAL_CONFIG = """
[providers.fal]
type = "fal"

[providers.fal-kling]
type = "fal"
model = "fal-ai/kling-video/v3/pro/text-to-video"
api_key_env = "KLING_KEY"
"""


def test_fal_providers_take_their_key_from_fal_key_and_their_model_from_the_file(
    tmp_path: Path,
) -> None:
    config = write(tmp_path / "c.toml", FAL_CONFIG)
    settings = load(Flags(config=config), {"FAL_KEY": CANARY, "KLING_KEY": "k2"})
    assert secret(settings, "fal") == CANARY and secret(settings, "fal-kling") == "k2"
    built = {name: build_provider(name, item) for name, item in settings.providers.items()}
    assert isinstance(built["fal"], FalProvider)
    assert built["fal"].capabilities.default_model == "fal-ai/veo3.1"
    assert "queue.fal.run" in repr(built["fal"])
    kling = built["fal-kling"]
    assert kling.capabilities.default_model == "fal-ai/kling-video/v3/pro/text-to-video"
    assert CANARY not in repr(built["fal"])


def test_a_fal_provider_without_its_key_is_left_out_naming_fal_key(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[providers.fal]\ntype = "fal"\n')
    settings = load(Flags(config=config), {})
    assert "fal" not in settings.providers
    assert any("FAL_KEY" in note for note in settings.notes)


def test_the_archive_is_the_environment_then_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "elsewhere" / "archive.toml",
        'archive = "s3://from-file/videos"\narchive_key = "{provider}/{task_id}.mp4"\n',
    )
    from_file = load(Flags(config=config), {})
    assert (from_file.archive, from_file.archive_key) == (
        "s3://from-file/videos",
        "{provider}/{task_id}.mp4",
    )
    from_env = load(Flags(config=config), {"SORA_TASKS_ARCHIVE": "memory://"})
    assert from_env.archive == "memory://"
    assert load(Flags(), {}).archive is None


def test_fal_key_alone_configures_a_fal_provider() -> None:
    settings = load(Flags(), {"FAL_KEY": CANARY})
    assert settings.providers["fal"].type == "fal" and secret(settings, "fal") == CANARY
    built = build_provider("fal", settings.providers["fal"])
    assert isinstance(built, FalProvider) and CANARY not in repr(built)


ROUTED = (
    '[providers.veo]\ntype = "replicate"\napi_key_env = "TEAM_REPLICATE"\n'
    '[providers.backup]\ntype = "fake"\n'
    '[routes]\n"veo-3.1" = ["veo:google/veo-3.1", "backup"]\n'
)


def test_a_file_names_routes_over_its_providers(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", ROUTED)
    flags = Flags(config=config, provider="veo-3.1")
    settings = load(flags, {"TEAM_REPLICATE": CANARY})
    assert settings.routes == {"veo-3.1": ["veo:google/veo-3.1", "backup"]}
    assert settings.default_provider == "veo-3.1"
    # a provider left out for want of its key leaves the route to the others, and says so
    short = load(flags, {})
    assert short.routes == {"veo-3.1": ["backup"]}
    assert any("route 'veo-3.1' goes without veo:google/veo-3.1" in n for n in short.notes)


def test_a_route_naming_an_undeclared_provider_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[routes]\nveo = ["fake", "nope"]\n')
    with pytest.raises(ConfigError, match="route 'veo' names provider 'nope', not declared"):
        load(Flags(config=config), {})


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    env = {**KEYS, "SORA_TASKS_PROVIDER": "", "SORA_TASKS_DATABASE_URL": ""}
    settings = load(Flags(config=config), env)
    assert settings.default_provider == "main"
    assert settings.database_url == "sqlite+aiosqlite:///from-file.db"
    # Veo's first variable empty: the second one is used
    veo = load(Flags(), {"GEMINI_API_KEY": "", "GOOGLE_API_KEY": CANARY})
    assert secret(veo, "veo") == CANARY


def test_the_file_content_comes_from_the_file_only() -> None:
    env = {"SORA_TASKS_FILE": '{"providers": {"x": {"type": "fake"}}}', "SORA_TASKS_OPENAI": "k"}
    settings = load(Flags(), env)
    assert settings.fallback
    assert set(settings.providers) == {"fake"}


def test_keys_from_the_environment_are_never_shown() -> None:
    env = {
        "OPENAI_API_KEY": CANARY,
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "REPLICATE_API_TOKEN": CANARY,
        "FAL_KEY": CANARY,
        "RUNWAYML_API_SECRET": CANARY,
        "GOOGLE_API_KEY": CANARY,
    }
    settings = load(Flags(), env)
    assert set(settings.providers) == {"openai", "replicate", "veo", "fal", "runway"}
    assert all(secret(settings, name) == CANARY for name in settings.providers)
    assert CANARY not in repr(settings)
    assert CANARY not in str(settings.notes)


def test_the_webhook_secret_comes_from_the_environment_only(tmp_path: Path) -> None:
    secret_value = "whsec_" + "A" * 32
    config = write(tmp_path / "c.toml", '[webhooks]\nmax_attempts = 3\nwebhook_secret = "x"\n')
    with pytest.raises(ConfigError, match="webhook_secret"):
        load(Flags(config=config), {"SORA_TASKS_WEBHOOK_SECRET": secret_value})
    config = write(tmp_path / "d.toml", "[webhooks]\nmax_attempts = 3\n")
    settings = load(Flags(config=config), {"SORA_TASKS_WEBHOOK_SECRET": secret_value})
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == secret_value
    assert settings.webhook_policy.max_attempts == 3
    assert secret_value not in repr(settings)
    assert load(Flags(), {"SORA_TASKS_WEBHOOK_SECRET": ""}).webhook_secret is None
